//! Finding out why jobs fail, through the API a dashboard and a script use: lists carry each
//! job's latest error, and `error=` / `input=` search the lists (bounded per page, saying how
//! far they searched, and going on with `next`).

use std::time::Duration;

use jobhost_tests::server::Server;
use jobhost_tests::{plugin_dir, EXAMPLE_PLUGINS};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

fn ids(page: &Value) -> Vec<String> {
    page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn failed_lists_show_the_latest_error_and_search_by_error_text_and_input_field() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let failed = |customer: &str| {
        let answer =
            server.post("/v1/jobs", &json!({"job": "error", "input": {"customer": customer, "n": 5}}));
        answer.body["id"].as_str().unwrap().to_owned()
    };
    let (acme, zeta) = (failed("acme"), failed("zeta"));
    let slow = server
        .post("/v1/jobs", &json!({"job": "sleep", "input": 30, "timeout_seconds": 1, "max_attempts": 1}));
    let slow = slow.body["id"].as_str().unwrap().to_owned();
    for id in [&acme, &zeta, &slow] {
        assert_eq!(server.wait_finished(id, LONG)["status"], "error");
    }

    // Counted by factory (the store's counts are by queue): through an index, up to 100,000.
    let counted = server.get("/v1/jobs/count?job=error&status=error,completed");
    assert_eq!(counted.body, json!({"count": 2, "at_least": false}), "{counted:?}");
    assert_eq!(server.get("/v1/jobs/count?job=error&queue=nowhere").body["count"], 0);
    assert_eq!(server.get("/v1/jobs/count?job=error&status=bogus").status, 400);
    assert_eq!(server.get("/v1/jobs/count").status, 400, "the factory is what is counted");

    let list = server.get("/v1/jobs/summaries?status=error");
    let last: Vec<&str> =
        list.body["jobs"].as_array().unwrap().iter().map(|j| j["last_error"].as_str().unwrap()).collect();
    assert_eq!(last.len(), 3);
    assert!(last[0].contains("An error occurred."), "{last:?}");
    assert!(last[2].contains("timed out"), "{last:?}");
    assert_eq!(list.body.get("searched"), None, "no search, no count of it");

    // Any case; the full list and the summaries alike.
    for path in ["/v1/jobs", "/v1/jobs/summaries"] {
        let found = server.get(&format!("{path}?error=TIMED%20OUT"));
        assert_eq!((ids(&found.body), &found.body["searched"]), (vec![slow.clone()], &json!(3)), "{found:?}");
    }
    let found = server.get("/v1/jobs?input=customer%3Dacme");
    assert_eq!(ids(&found.body), std::slice::from_ref(&acme));
    assert_eq!(ids(&server.get("/v1/jobs?input=n%3D5&order=newest").body), [zeta.clone(), acme.clone()]);
    assert_eq!(ids(&server.get("/v1/jobs?input=customer%3Dacme&error=occurred&status=error").body), [acme]);
    assert!(ids(&server.get("/v1/jobs?input=customer%3Dnobody").body).is_empty());
    // The CLI searches alike, and says how far.
    let listed = jobhost_tests::jobhost(["list", "--error", "timed out", "--server", &server.url]);
    assert_eq!(listed.code, 0, "{listed:?}");
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert!(rows.len() == 1 && rows[0].starts_with(&format!("{slow} ")), "{listed:?}");
    assert!(listed.stderr.contains("searched 3 job(s)"), "{listed:?}");
    // A page of one match goes on after it.
    let first = server.get("/v1/jobs?input=n%3D5&limit=1");
    assert_eq!(first.body["next"], json!(ids(&first.body)[0]));

    for (query, says) in [
        ("input=customer", "is not `field=value`"),
        ("input=%3Dacme", "is not `field=value`"),
        (&*format!("error={}", "x".repeat(201)), "longer than 200"),
    ] {
        let refused = server.get(&format!("/v1/jobs?{query}"));
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{query}: {refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(says), "{refused:?}");
    }
}

#[test]
fn a_search_examines_at_most_ten_thousand_jobs_a_page_and_goes_on_with_next() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    for batch in 0..2 {
        let jobs: Vec<Value> = (0..5_001)
            .map(|i| json!({"job": "echo", "hold": true, "input": {"n": batch * 5_001 + i}}))
            .collect();
        assert_eq!(server.post("/v1/jobs/batch", &json!({"jobs": jobs})).status, 201);
    }
    // The one match is the 10,002nd job: the first page stops at the bound, the next finds it.
    let first = server.get("/v1/jobs/summaries?input=n%3D10001");
    assert_eq!((ids(&first.body).len(), &first.body["searched"]), (0, &json!(10_000)), "{:?}", first.body);
    let next = first.body["next"].as_str().expect("a search stopped at its bound goes on").to_owned();
    let second = server.get(&format!("/v1/jobs/summaries?input=n%3D10001&after={next}"));
    assert_eq!(
        (ids(&second.body), &second.body["searched"], &second.body["next"]),
        (vec!["10002".to_owned()], &json!(2), &Value::Null)
    );
}

fn operation(server: &Server, id: &str) -> Value {
    server.get(&format!("/v1/operations/{id}")).body
}

fn until_ended(server: &Server, id: &str) -> Value {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let now = operation(server, id);
        if now["state"] != "running" {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "operation {id} still running: {now}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bulk_retry_and_removal_run_in_the_background_with_progress_and_can_be_cancelled() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    // 3,000 cancelled jobs in `bulk` (held, then cancelled: nothing runs), 10 in `other`.
    let cancelled = |queue: &str, n: usize| {
        let jobs: Vec<Value> =
            (0..n).map(|i| json!({"job": "echo", "queue": queue, "hold": true, "input": i})).collect();
        for id in ids(&server.post("/v1/jobs/batch", &json!({"jobs": jobs})).body) {
            assert_eq!(server.post_empty(&format!("/v1/jobs/{id}/cancel")).status, 200);
        }
    };
    cancelled("bulk", 3_000);
    cancelled("other", 10);
    assert_eq!(server.post_empty("/v1/queues/bulk/stop").status, 200, "retried jobs stay queued");

    let started =
        server.post("/v1/operations", &json!({"action": "retry", "status": ["cancelled"], "queue": "bulk"}));
    assert_eq!(started.status, 202, "{started:?}");
    assert_eq!((&started.body["total"], &started.body["action"]), (&json!(3_000), &json!("retry")));
    let id = started.body["id"].as_str().unwrap().to_owned();
    let ended = until_ended(&server, &id);
    assert_eq!(
        (&ended["state"], &ended["done"], &ended["skipped"]),
        (&json!("completed"), &json!(3_000), &json!(0)),
        "{ended}"
    );
    let queues = server.get("/v1/queues").body;
    let counts =
        |name: &str| queues.as_array().unwrap().iter().find(|q| q["name"] == name).unwrap()["jobs"].clone();
    assert_eq!(counts("bulk"), json!({"queued": 3_000}));
    assert_eq!(counts("other"), json!({"cancelled": 10}), "another queue is left alone");
    assert_eq!(server.get("/v1/operations").body.as_array().unwrap().len(), 1);

    // Cancelled at once: it stops between two pages, leaving the rest as they were. 10,000
    // cancelled jobs (a group's, cancelled in one request), one transaction each to remove.
    let jobs: Vec<Value> =
        (0..10_000).map(|i| json!({"job": "echo", "queue": "many", "hold": true, "input": i})).collect();
    let batch = server.post("/v1/jobs/batch", &json!({"jobs": jobs, "group": {"name": "many"}}));
    let group = batch.body["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(server.post_empty(&format!("/v1/groups/{group}/cancel")).body["cancelled"], 10_000);
    let removal = server.post("/v1/operations", &json!({"action": "remove", "queue": "other"}));
    let removal = removal.body["id"].as_str().unwrap().to_owned();
    assert_eq!(until_ended(&server, &removal)["done"], 10);
    let slow =
        server.post("/v1/operations", &json!({"action": "remove", "status": ["cancelled"], "queue": "many"}));
    let slow = slow.body["id"].as_str().unwrap().to_owned();
    let cancel = server.post_empty(&format!("/v1/operations/{slow}/cancel"));
    assert_eq!(cancel.status, 200, "{cancel:?}");
    let stopped = until_ended(&server, &slow);
    assert_eq!(stopped["state"], "cancelled", "{stopped}");
    let removed = stopped["done"].as_u64().unwrap();
    assert!(removed < 10_000, "{stopped}");
    let left = server.get("/v1/queues").body;
    let left =
        left.as_array().unwrap().iter().find(|q| q["name"] == "many").unwrap()["jobs"]["cancelled"].clone();
    assert_eq!(left, json!(10_000 - removed), "what it did not reach is left as it was");

    for (body, says) in [
        (json!({"action": "retry", "status": ["queued"]}), "only error, cancelled jobs can be retried"),
        (json!({"action": "remove", "status": ["processing"]}), "can be removed, not `processing`"),
    ] {
        let refused = server.post("/v1/operations", &body);
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(says), "{refused:?}");
    }
    // At most four run at once on a host: a fifth waits (a client looping on POST would
    // otherwise start a thread a request).
    let busy: Vec<u16> = (0..6)
        .map(|_| {
            server
                .post("/v1/operations", &json!({"action": "retry", "queue": "many", "status": ["cancelled"]}))
                .status
        })
        .collect();
    assert!(busy.contains(&409), "{busy:?}");
    assert!(busy.iter().filter(|s| **s == 202).count() <= 4, "{busy:?}");
    for bad in
        [json!({"action": "remove", "queue": "q".repeat(65)}), json!({"action": "remove", "job": "../x"})]
    {
        let refused = server.post("/v1/operations", &bad);
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains("is not a name"), "{refused:?}");
    }
    let refused = server.post("/v1/operations", &json!({"action": "purge"}));
    assert_eq!(refused.status, 400, "{refused:?}");
    for missing in ["999", "0", "01", "x"] {
        let answer = server.get(&format!("/v1/operations/{missing}"));
        assert_eq!((answer.status, answer.code()), (404, "unknown_operation"), "{missing}: {answer:?}");
    }
}

#[test]
fn a_search_through_large_inputs_stops_at_32_mib_a_page_and_goes_on() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let pad = "x".repeat(64 * 1024);
    for batch in 0..6 {
        let jobs: Vec<Value> = (0..100)
            .map(|i| json!({"job": "echo", "hold": true, "input": {"n": batch * 100 + i, "pad": pad}}))
            .collect();
        assert_eq!(server.post("/v1/jobs/batch", &json!({"jobs": jobs})).status, 201);
    }
    // 600 jobs of 64 KiB: more than a page searches; each page reports what it read, and the
    // pages together read every job once.
    let (mut searched, mut pages, mut after) = (0, 0, String::new());
    loop {
        let page = server.get(&format!("/v1/jobs/summaries?input=n%3D599&after={after}"));
        assert_eq!(page.status, 200, "{page:?}");
        let read = page.body["searched"].as_u64().unwrap();
        assert!(read <= 520, "a page read {read} jobs of 64 KiB");
        searched += read;
        pages += 1;
        match page.body["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => {
                assert_eq!(ids(&page.body), ["600"]);
                break;
            }
        }
    }
    assert_eq!((searched, pages), (600, 2));
}

/// A panic keeps its message in `errors` and where it happened in `backtrace` (the job's own
/// page only; lists leave it out), whether plugin code runs in worker processes or in the host.
#[test]
fn a_panic_records_its_message_and_where_it_happened_in_both_isolation_modes() {
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    for isolation in ["process", "none"] {
        let dir = TempDir::new().unwrap();
        let server = Server::start(&dir.path().join("data"), plugins.path(), &["--isolation", isolation]);
        let id = server.post("/v1/jobs", &json!({"job": "fatal", "max_attempts": 1})).body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = server.wait_finished(&id, LONG);
        assert_eq!(job["status"], "error", "{isolation}: {job}");
        let error = job["errors"][0].as_str().unwrap();
        assert_eq!(error.split_once("] ").unwrap().1, "An error occurred.", "{isolation}: {job}");
        let backtrace =
            job["backtrace"].as_str().unwrap_or_else(|| panic!("{isolation}: no backtrace: {job}"));
        let (stamp, text) = backtrace.split_once("] ").unwrap();
        assert_eq!(stamp, error.split_once("] ").unwrap().0, "{isolation}: stamped as its error");
        assert!(text.starts_with("panicked at plugins/fatal/src/lib.rs:"), "{isolation}: {backtrace}");
        let first = text.lines().nth(1).unwrap_or_default();
        assert!(
            first.trim_start().starts_with("0: fatal::fatal"),
            "{isolation}: the job's frame first: {backtrace}"
        );
        let listed = server.get("/v1/jobs?status=error");
        assert_eq!(listed.body["jobs"][0]["id"], json!(id));
        assert_eq!(listed.body["jobs"][0].get("backtrace"), None, "lists leave it out");
        // A failure that is no panic brings none.
        let plain = server.post("/v1/jobs", &json!({"job": "error"})).body["id"].as_str().unwrap().to_owned();
        assert_eq!(server.wait_finished(&plain, LONG).get("backtrace"), None, "{isolation}");
    }
}

/// An operator's selection: only the jobs named, and of those only the ones the filter still
/// matches when reached; cancel takes pending jobs.
#[test]
fn operations_on_selected_jobs_change_only_those_the_filter_still_matches() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugin_dir(&EXAMPLE_PLUGINS));
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let jobs: Vec<Value> =
        (0..6).map(|i| json!({"job": "echo", "queue": "sel", "hold": true, "input": i})).collect();
    let held = ids(&server.post("/v1/jobs/batch", &json!({"jobs": jobs})).body);
    let finished = server.add("echo", json!("done"));
    assert_eq!(server.wait_finished(&finished, LONG)["status"], "completed");

    // Cancel three of the held jobs (one named twice: it counts once), and a finished one
    // (passed over: not pending).
    let picked = vec![held[0].clone(), held[2].clone(), held[4].clone(), held[2].clone(), finished.clone()];
    let started = server.post("/v1/operations", &json!({"action": "cancel", "ids": picked}));
    assert_eq!((started.status, &started.body["total"]), (202, &json!(4)), "{started:?}");
    let ended = until_ended(&server, started.body["id"].as_str().unwrap());
    assert_eq!(
        (&ended["done"], &ended["skipped"], &ended["ids"][3]),
        (&json!(3), &json!(1), &json!(finished))
    );
    let status = |id: &str| server.job(id)["status"].as_str().unwrap().to_owned();
    let now: Vec<String> = held.iter().map(|id| status(id)).collect();
    assert_eq!(now, ["cancelled", "held", "cancelled", "held", "cancelled", "held"]);
    assert_eq!(status(&finished), "completed");

    // Retry two of them, naming a held one too (passed over), within queue `sel` only
    // (paused, so that the retried ones stay queued to be seen).
    assert_eq!(server.post_empty("/v1/queues/sel/stop").status, 200);
    let retry = json!({"action": "retry", "queue": "sel", "ids": [held[0], held[1], held[2]]});
    let ended = until_ended(&server, server.post("/v1/operations", &retry).body["id"].as_str().unwrap());
    assert_eq!((&ended["done"], &ended["skipped"]), (&json!(2), &json!(1)), "{ended}");
    assert_eq!(status(&held[0]), "queued");
    assert_eq!(status(&held[4]), "cancelled", "not selected: left alone");

    let too_many: Vec<String> = (1..=1001).map(|n| n.to_string()).collect();
    for (body, says) in [
        (json!({"action": "remove", "ids": too_many}), "ids: at most 1000"),
        (json!({"action": "remove", "ids": ["12", "x1"]}), "ids[1]: \"x1\" is not a job id"),
        (json!({"action": "cancel", "status": ["error"]}), "can be cancelled, not `error`"),
        (json!({"action": "remove", "ids": ["+12"]}), "ids[0]: \"+12\" is not a job id"),
        // Empty lists select nothing: never "every job".
        (json!({"action": "remove", "ids": []}), "ids: an empty list selects nothing"),
        (json!({"action": "cancel", "status": []}), "status: an empty list selects nothing"),
    ] {
        let refused = server.post("/v1/operations", &body);
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{refused:?}");
        assert!(refused.body["error"]["message"].as_str().unwrap().contains(says), "{refused:?}");
    }
}
