//! Throughput history kept in the store: what `/v1/stats` (the dashboard's chart and latency
//! table) shows survives a restart of the host, and on PostgreSQL covers every host.

use std::time::Duration;

use jobhost_tests::server::Server;
use jobhost_tests::stores::{postgres_skipped, Schema};
use jobhost_tests::{plugin_dir, wait_for_condition, EXAMPLE_PLUGINS};
use serde_json::{json, Value};

use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

fn totals(server: &Server) -> Value {
    server.get("/v1/stats").body["queues"]["default"].clone()
}

#[test]
fn the_last_hour_survives_a_restart() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let start = || Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let mut server = start();
    let mut ids: Vec<String> = (0..3).map(|n| server.add("echo", json!(n))).collect();
    ids.extend((0..2).map(|_| server.add("error", json!(null))));
    for id in &ids {
        server.wait_finished(id, LONG);
    }
    let before = server.get("/v1/stats").body;
    assert_eq!(before["queues"]["default"], json!({"completed": 3, "failed": 2, "retried": 0}), "{before}");
    assert_eq!(before["samples"], 5);

    // A stop writes what the host counted; the next host reads it back.
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());
    server = start();
    let after = server.get("/v1/stats").body;
    assert_eq!(after["queues"], before["queues"], "{after}");
    assert_eq!((&after["samples"], &after["run_ms"]["max"]), (&before["samples"], &before["run_ms"]["max"]));
}

#[test]
fn on_postgresql_every_host_shows_every_hosts_history() {
    if postgres_skipped("history::on_postgresql_every_host_shows_every_hosts_history") {
        return;
    }
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let schema = Schema::new();
    let url = schema.url();
    let host = |name: &str, extra: &[&str]| {
        let mut args = vec!["--store-url", url.as_str()];
        args.extend_from_slice(extra);
        Server::start(&dir.path().join(name), plugins.path(), &args)
    };
    // A runs nothing (its queues stopped here): what it shows is B's, read from the store.
    let a = host("a", &["--paused"]);
    let b = host("b", &[]);
    let ids: Vec<String> =
        (0..4).map(|n| a.add("echo", json!(n))).chain([a.add("error", json!(null))]).collect();
    for id in &ids {
        b.wait_finished(id, LONG);
    }
    wait_for_condition(LONG, "host A shows host B's counts", || {
        totals(&a) == json!({"completed": 4, "failed": 1, "retried": 0})
    });
    assert_eq!(a.get("/v1/stats").body["samples"], 5);
}
