//! Queue pauses kept in the store: a queue paused through the API stays paused across a
//! restart of the embedded store's host, and on PostgreSQL a pause through one host stops the
//! queue on every host sharing the store, until a resume through any of them.

use std::time::{Duration, Instant};

use jobhost_tests::server::Server;
use jobhost_tests::stores::{postgres_skipped, Schema};
use jobhost_tests::{holds_for, jobhost, plugin_dir, EXAMPLE_PLUGINS};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

fn queue(server: &Server, name: &str) -> Value {
    let queues = server.get("/v1/queues").body;
    queues.as_array().unwrap().iter().find(|q| q["name"] == name).cloned().unwrap_or(Value::Null)
}

fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_paused_queue_stays_paused_across_a_restart_and_says_who_paused_it() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "host_name = \"night-shift\"\n").unwrap();
    let start =
        || Server::start(&dir.path().join("data"), plugins.path(), &["--config", config.to_str().unwrap()]);
    let mut server = start();
    let paused = server.post_empty("/v1/queues/default/stop");
    assert_eq!((paused.status, &paused.body["processing"]), (200, &json!(false)), "{paused:?}");
    assert_eq!(paused.body["paused"]["by"], "night-shift");
    let at = paused.body["paused"]["at"].as_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");

    server.kill();
    server = start();
    // Submitted after the restart: it stays queued, the pause as it was.
    let waiting = server.add("echo", json!("later"));
    holds_for(Duration::from_secs(1), "a paused queue runs nothing after a restart", || {
        server.job(&waiting)["status"] == "queued"
    });
    let shown = queue(&server, "default");
    assert_eq!(
        (&shown["processing"], &shown["paused"]["by"], &shown["paused"]["at"]),
        (&json!(false), &json!("night-shift"), &json!(at))
    );
    let listed = jobhost(["queues", "--server", &server.url]);
    let row: Vec<&str> = listed.stdout.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[0], row[1], &row[7..9]), ("default", "paused", &["by", "night-shift"][..]), "{listed:?}");

    // Resumed from the CLI: it runs, and a restart keeps it running.
    let resumed = jobhost(["queue", "start", "default", "--server", &server.url]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(resumed.stdout.contains("default: processing"), "{resumed:?}");
    assert_eq!(server.wait_finished(&waiting, LONG)["status"], "completed");
    server.kill();
    server = start();
    assert_eq!(queue(&server, "default")["paused"], Value::Null);
    let id = server.add("echo", json!(1));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
}

#[test]
fn a_pause_through_one_postgresql_host_holds_on_every_host_until_any_resumes() {
    if postgres_skipped("pauses::a_pause_through_one_postgresql_host_holds_on_every_host_until_any_resumes") {
        return;
    }
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let schema = Schema::new();
    let url = schema.url();
    let host = |name: &str| {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, format!("host_name = \"{name}\"\n")).unwrap();
        Server::start(
            &dir.path().join(format!("{name}-data")),
            plugins.path(),
            &["--config", file.to_str().unwrap(), "--store-url", &url],
        )
    };
    let a = host("host-a");
    let mut b = host("host-b");
    let first = a.add("echo", json!(0));
    assert_eq!(a.wait_finished(&first, LONG)["status"], "completed");

    assert_eq!(a.post_empty("/v1/queues/default/stop").status, 200);
    // Host B stops claiming within a second or so; wait until it says so, then jobs wait.
    until("host B stops the paused queue", || queue(&b, "default")["processing"] == false);
    assert_eq!(queue(&b, "default")["paused"]["by"], "host-a");
    let jobs: Vec<String> = (0..5).map(|n| b.add("echo", json!(n))).collect();
    holds_for(Duration::from_secs(2), "no host runs a paused queue", || {
        jobs.iter().all(|id| b.job(id)["status"] == "queued")
    });

    // B restarted: still paused.
    b.kill();
    b = host("host-b");
    assert_eq!(queue(&b, "default")["processing"], false);
    holds_for(Duration::from_secs(1), "a restarted host keeps the pause", || {
        jobs.iter().all(|id| b.job(id)["status"] == "queued")
    });

    // Resumed through B: both hosts run again, A without being asked.
    assert_eq!(b.post_empty("/v1/queues/default/start").body["paused"], Value::Null);
    until("host A starts the resumed queue", || queue(&a, "default")["processing"] == true);
    for id in &jobs {
        assert_eq!(a.wait_finished(id, LONG)["status"], "completed");
    }
}
