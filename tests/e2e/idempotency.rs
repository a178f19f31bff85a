//! `Idempotency-Key` over HTTP against the real binary on the embedded store (the PostgreSQL
//! store's lost commit is in `postgres`; both stores' races in `stores`): a repeat gets what
//! the first request made, marked replayed, across a restart; another request with the key is
//! refused; a bad key is refused; parallel repeats make one job; the window ends.

use std::time::Duration;

use jobhost_tests::server::Server;
use jobhost_tests::{plugin_dir, EXAMPLE_PLUGINS};
use serde_json::json;
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(30);

fn serve(dir: &TempDir, plugins: &TempDir, config: &str) -> Server {
    let file = dir.path().join("jobhost.toml");
    std::fs::write(&file, config).unwrap();
    Server::start(&dir.path().join("data"), plugins.path(), &["--config", file.to_str().unwrap()])
}

fn jobs(server: &Server) -> usize {
    server.get("/v1/jobs?limit=1000").body["jobs"].as_array().unwrap().len()
}

#[test]
fn a_repeated_submission_gets_what_the_first_made_even_after_a_restart() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let mut server = serve(&dir, &plugins, "");
    let body = json!({"job": "echo", "input": "once"});
    let first = server.post_keyed("/v1/jobs", "order-42", &body);
    assert_eq!((first.status, first.header("idempotent-replayed")), (201, None), "{first:?}");
    let id = first.body["id"].as_str().unwrap().to_owned();
    server.wait_finished(&id, LONG);
    let repeat = server.post_keyed("/v1/jobs", "order-42", &body);
    assert_eq!((repeat.status, repeat.header("idempotent-replayed")), (201, Some("true")), "{repeat:?}");
    // The job as it is now.
    assert_eq!(
        (repeat.body["id"].as_str(), repeat.body["status"].as_str()),
        (Some(id.as_str()), Some("completed"))
    );
    assert_eq!(jobs(&server), 1);
    // The same key with another request: refused, nothing made.
    let other = server.post_keyed("/v1/jobs", "order-42", &json!({"job": "echo", "input": "twice"}));
    assert_eq!((other.status, other.code()), (422, "idempotency_key_reused"), "{other:?}");
    let elsewhere = server.post_keyed("/v1/jobs/batch", "order-42", &json!({"jobs": [body.clone()]}));
    assert_eq!(elsewhere.code(), "idempotency_key_reused", "{elsewhere:?}");
    assert_eq!(jobs(&server), 1);

    // Batches and schedules likewise; a quoted key (the IETF draft's form) is the same key.
    let batch = json!({"jobs": [{"job": "echo", "hold": true}, {"job": "echo", "hold": true}]});
    let made = server.post_keyed("/v1/jobs/batch", "\"batch-7\"", &batch);
    assert_eq!(made.status, 201, "{made:?}");
    let again = server.post_keyed("/v1/jobs/batch", "batch-7", &batch);
    assert_eq!((again.header("idempotent-replayed"), &again.body), (Some("true"), &made.body));
    let schedule = json!({"job": "echo", "cron": "0 3 * * *"});
    let made = server.post_keyed("/v1/schedules", "nightly", &schedule);
    let again = server.post_keyed("/v1/schedules", "nightly", &schedule);
    assert_eq!((made.status, again.status, again.header("idempotent-replayed")), (201, 201, Some("true")));
    assert_eq!(made.body["id"], again.body["id"]);
    assert_eq!(server.get("/v1/schedules").body.as_array().unwrap().len(), 1);

    // Kept across a restart.
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0));
    let server = serve(&dir, &plugins, "");
    let repeat = server.post_keyed("/v1/jobs", "order-42", &body);
    assert_eq!((repeat.status, repeat.body["id"].as_str()), (201, Some(id.as_str())), "{repeat:?}");
    // What it made deleted since: the repeat says so rather than make it again.
    assert_eq!(server.delete(&format!("/v1/jobs/{id}")).status, 200);
    let gone = server.post_keyed("/v1/jobs", "order-42", &body);
    assert_eq!((gone.status, gone.code()), (409, "idempotent_result_gone"), "{gone:?}");
    assert_eq!(jobs(&server), 2);
    let schedule_id = made.body["id"].as_str().unwrap();
    assert_eq!(server.delete(&format!("/v1/schedules/{schedule_id}")).status, 200);
    let gone = server.post_keyed("/v1/schedules", "nightly", &schedule);
    assert_eq!((gone.status, gone.code()), (409, "idempotent_result_gone"), "{gone:?}");
}

#[test]
fn parallel_repeats_make_one_job_and_bad_keys_are_refused() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = serve(&dir, &plugins, "");
    let body = json!({"job": "echo", "input": "racing", "hold": true});
    let answers: Vec<_> = std::thread::scope(|s| {
        let racers: Vec<_> =
            (0..20).map(|_| s.spawn(|| server.post_keyed("/v1/jobs", "race", &body))).collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let ids: std::collections::BTreeSet<_> = answers.iter().map(|a| a.body["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|a| a.status == 201), "{answers:?}");
    assert_eq!(answers.iter().filter(|a| a.header("idempotent-replayed").is_none()).count(), 1);
    assert_eq!(jobs(&server), 1);

    let long = "k".repeat(256);
    for key in ["", " ", "naïve", long.as_str(), "two words"] {
        let refused = server.post_keyed("/v1/jobs", key, &body);
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{key:?}: {refused:?}");
        assert!(
            refused.body["error"]["message"].as_str().unwrap().contains("Idempotency-Key"),
            "{refused:?}"
        );
    }
    let twice = server.send_with(
        "POST",
        "/v1/jobs",
        &[("content-type", "application/json"), ("idempotency-key", "a"), ("idempotency-key", "b")],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(twice.status, 400, "{twice:?}");
    assert_eq!(jobs(&server), 1);
}

#[test]
fn after_its_window_a_key_makes_anew() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = serve(&dir, &plugins, "idempotency_window = \"1s\"\n");
    let body = json!({"job": "echo", "hold": true});
    let first = server.post_keyed("/v1/jobs", "short", &body);
    assert_eq!(first.status, 201);
    jobhost_tests::wait_for_condition(LONG, "the key's window ends", || {
        let answer = server.post_keyed("/v1/jobs", "short", &body);
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.header("idempotent-replayed").is_none()
    });
    assert_eq!(jobs(&server), 2);
}
