//! The HTTP API over loopback, served in this process by `jobhost::runtime::run` over a real
//! store and the real plugins: m01.remote's documented scenario, every error code (with the
//! stored data unchanged after each), auth, and the OpenAPI document. A new case of a table is
//! one `check(request, expected)` line.

use std::time::Duration;

use jobhost::config::{Config, Limits, QueueTable};
use jobhost_tests::{App, Expect, Request, EXAMPLE_PLUGINS};
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(30);

fn errors(job: &Value) -> Vec<String> {
    job["errors"]
        .as_array()
        .expect("errors is a list")
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

/// `[2026-11-22T16:40:00.123456+00:00] An error occurred.`
fn assert_m01_error(line: &str) {
    let (stamp, message) = line.split_once("] ").expect("[time] message");
    let stamp = stamp.strip_prefix('[').expect("starts with [");
    chrono::DateTime::parse_from_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"));
    assert!(stamp.ends_with("+00:00") && stamp.len() == 32, "UTC with microseconds: {stamp}");
    assert_eq!(message, "An error occurred.");
}

/// Settings whose queues do not start by themselves (`serve --paused`).
fn paused() -> Config {
    Config { default_queue: QueueTable { autostart: false, ..QueueTable::default() }, ..Config::default() }
}

fn with_limits(limits: Limits) -> Config {
    Config { limits, ..Config::default() }
}

#[test]
fn m01_remote_readme_scenario_through_the_api() {
    let server = App::with_config(paused());

    // A queued job has no result and can be cancelled at once.
    let job1 = server.add("echo", json!({"foo": "bar"}));
    let job = server.job(&job1);
    assert_eq!((job["status"].as_str(), &job["result"]), (Some("queued"), &Value::Null));
    let cancelled = server.post_empty(&format!("/v1/jobs/{job1}/cancel"));
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (200, Some("cancelled")));

    let echo = server.add("echo", json!({"foo": "bar"}));
    let error = server.add("error", Value::Null);
    let fatal = server.add("fatal", Value::Null);
    let started = server.post_empty("/v1/queues/default/start");
    assert_eq!((started.status, started.body["processing"].as_bool()), (200, Some(true)), "{started:?}");

    // echo: the result is the input.
    let done = server.wait_finished(&echo, LONG);
    assert_eq!((done["status"].as_str(), &done["result"]), (Some("completed"), &json!({"foo": "bar"})));
    for key in ["created_at", "started_at", "finished_at"] {
        let at = done[key].as_str().unwrap_or_else(|| panic!("{key}: {done}"));
        assert!(at.ends_with("+00:00") && at.len() == 32, "{key}: RFC 3339 UTC with microseconds: {at}");
    }

    // error: `error` at once with one timestamped message.
    let failed = server.wait_finished(&error, LONG);
    assert_eq!((failed["status"].as_str(), failed["attempts"].as_u64()), (Some("error"), Some(1)));
    let errs = errors(&failed);
    assert_eq!(errs.len(), 1);
    assert_m01_error(&errs[0]);

    // fatal: queued with 1 error, queued with 2, error with 3 (its retry delay is ≥ 0.5 s, so
    // polling every 20 ms sees every state).
    let mut seen: Vec<(String, usize)> = Vec::new();
    server.wait_until(&fatal, LONG, |job| {
        let state = (job["status"].as_str().unwrap().to_owned(), errors(job).len());
        if state.0 != "processing" && seen.last() != Some(&state) {
            seen.push(state);
        }
        job["status"] == "error"
    });
    let seen: Vec<(&str, usize)> = seen.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    assert_eq!(
        seen.iter().filter(|(_, n)| *n > 0).copied().collect::<Vec<_>>(),
        [("queued", 1), ("queued", 2), ("error", 3)]
    );
    errors(&server.job(&fatal)).iter().for_each(|e| assert_m01_error(e));

    // A stopped processor leaves jobs queued (and the queue still accepts them).
    let stopped = server.post_empty("/v1/queues/default/stop");
    assert_eq!((stopped.status, stopped.body["processing"].as_bool()), (200, Some(false)));
    let waiting = server.add("echo", json!(1));
    jobhost_tests::holds_for(Duration::from_millis(500), "a stopped queue leaves its job queued", || {
        server.job(&waiting)["status"] == "queued"
    });
    let queues = server.get("/v1/queues").body;
    assert_eq!((queues[0]["queued"].as_u64(), queues[0]["processing"].as_bool()), (Some(1), Some(false)));

    // Remove finished jobs: counts per status; the queued job stays.
    let removed = server.delete("/v1/jobs");
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(removed.body, json!({"removed": {"cancelled": 1, "completed": 1, "error": 2}}));
    let left = server.get("/v1/jobs").body;
    assert_eq!(left["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(left["jobs"][0]["id"].as_str(), Some(waiting.as_str()));
    assert_eq!(left["next"], Value::Null);
}

#[test]
fn retry_long_poll_paging_and_filters() {
    let server = App::start();
    // Long poll: answers when the job ends, well before the wait runs out.
    let id = server.add("sleep", json!(0.3));
    let answer = server.get(&format!("/v1/jobs/{id}?wait=20"));
    assert_eq!(answer.body["status"], "completed", "{answer:?}");
    assert_eq!(answer.body["result"], json!({"slept": 0.3}));

    // Dead-letter re-run: `error` → `queued` with fresh attempts, history kept.
    let failed = server.add("error", Value::Null);
    server.wait_finished(&failed, LONG);
    let retried = server.post_empty(&format!("/v1/jobs/{failed}/retry"));
    assert_eq!((retried.status, retried.body["attempts"].as_u64()), (200, Some(0)), "{retried:?}");
    let again = server.wait_finished(&failed, LONG);
    assert_eq!((again["status"].as_str(), errors(&again).len()), (Some("error"), 2));

    // Paging: `next` is the cursor; the last page has none.
    let echoes: Vec<String> = (0..5).map(|n| server.add("echo", json!(n))).collect();
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = server.get(&format!("/v1/jobs?job=echo&limit=2&after={after}")).body;
        ids.extend(page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5, "{ids:?}");
    let numeric: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(numeric.windows(2).all(|w| w[0] < w[1]), "oldest first: {numeric:?}");
    let errors_only = server.get("/v1/jobs?status=error").body;
    assert_eq!(errors_only["jobs"].as_array().unwrap().len(), 1);

    // Factories and plugins.
    let factories = server.get("/v1/factories").body;
    let names: Vec<&str> =
        factories.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, EXAMPLE_PLUGINS);
    assert_eq!(factories[0]["plugin"], "echo");
    assert!(factories[0]["plugin_version"].is_string() && factories[0]["description"].is_string());
    let plugins = server.get("/v1/plugins").body;
    assert_eq!(plugins["plugins"].as_array().unwrap().len(), 4);
    assert!(plugins["plugins"][0]["path"].as_str().unwrap().ends_with(".so"));
    assert_eq!(plugins["rejected"], json!([]));

    // Health and metrics, once the echoes have run (they were only listed above).
    assert_eq!(server.get("/v1/health").body["status"], "ok");
    for echo in &echoes {
        server.wait_finished(echo, LONG);
    }
    let metrics = server.get("/metrics").text;
    assert!(metrics.contains("jobhost_jobs{queue=\"default\",status=\"completed\"} 6"), "{metrics}");
    assert!(
        metrics.contains("jobhost_job_outcomes_total{factory=\"error\",outcome=\"failed\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("jobhost_job_duration_seconds_count{factory=\"sleep\"} 1"), "{metrics}");
    assert!(metrics.contains("jobhost_plugin_load_failures 0"), "{metrics}");
}

/// What the dashboard reads and does: newest-first pages, bulk retry and removal of one
/// queue's or factory's failed jobs, and the last hour's throughput and latency.
#[test]
fn newest_first_pages_bulk_retry_and_removal_and_stats() {
    let server = App::start();
    // One attempt each: a retry is then one more attempt and one more error.
    let fatal = |queue: &str| {
        let answer = server.post("/v1/jobs", &json!({"job": "fatal", "queue": queue, "max_attempts": 1}));
        answer.body["id"].as_str().expect("added").to_owned()
    };
    let failed: Vec<String> = (0..3).map(|_| fatal("default")).collect();
    let other = fatal("other");
    let done = server.add("echo", json!(1));
    for id in failed.iter().chain([&other, &done]) {
        server.wait_finished(id, LONG);
    }
    let page = |query: &str| {
        let body = server.get(&format!("/v1/jobs?{query}")).body;
        let ids: Vec<String> =
            body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
        (ids, body["next"].as_str().map(str::to_owned))
    };
    let (first, next) = page("status=error&order=newest&limit=2");
    assert_eq!(first, [other.clone(), failed[2].clone()]);
    let (rest, last) = page(&format!("status=error&order=newest&limit=2&after={}", next.unwrap()));
    assert_eq!((rest, last), (vec![failed[1].clone(), failed[0].clone()], None));
    // Summaries: the same pages without the jobs' data.
    let brief = server.get("/v1/jobs/summaries?status=error&order=newest&limit=2").body;
    let brief_ids: Vec<&str> =
        brief["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(brief_ids, [other.as_str(), failed[2].as_str()]);
    assert_eq!(
        (brief["jobs"][0].get("input"), &brief["jobs"][0]["error_count"]),
        (None, &json!(1)),
        "{brief}"
    );
    assert_eq!(brief["next"], json!(failed[2]));
    // `.` and `..` would be resolved away in a URL path: not names.
    for name in [".", ".."] {
        let refused = server.post("/v1/jobs", &json!({"job": "echo", "queue": name}));
        assert_eq!((refused.status, refused.code()), (400, "invalid_request"), "{refused:?}");
    }
    assert_eq!(server.post("/v1/jobs", &json!({"job": "echo", "queue": "...", "hold": true})).status, 201);
    let bad = server.get("/v1/jobs?order=sideways");
    assert_eq!(bad.status, 400);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("order"), "{bad:?}");

    // Bulk retry of the default queue's failed jobs leaves the other queue's alone.
    let retried = server.post_empty("/v1/jobs/retry?queue=default");
    assert_eq!((retried.status, &retried.body), (200, &json!({"retried": 3})), "{retried:?}");
    assert_eq!(server.job(&other)["status"], "error");
    for id in &failed {
        let again = server.wait_finished(id, LONG);
        assert_eq!(errors(&again).len(), 2, "ran again: {again}");
    }
    let refused = server.post_empty("/v1/jobs/retry?status=error,completed");
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("`completed`"), "{refused:?}");
    // Bulk removal, by queue.
    let removed = server.delete("/v1/jobs?status=error&queue=other");
    assert_eq!(removed.body["removed"]["error"], 1, "{removed:?}");
    assert_eq!(server.get(&format!("/v1/jobs/{other}")).status, 404);
    assert_eq!(server.job(&failed[0])["status"], "error");

    // The last hour: 1 completed and 6 failed in the default queue, 1 failed in `other`.
    let stats = server.get("/v1/stats?step=60").body;
    assert_eq!(stats["queues"]["default"], json!({"completed": 1, "failed": 6, "retried": 0}), "{stats}");
    assert_eq!(stats["queues"]["other"], json!({"completed": 0, "failed": 1, "retried": 0}), "{stats}");
    let series = stats["series"].as_array().unwrap();
    assert_eq!(series.len(), 60);
    let per_second: f64 = series.iter().map(|p| p["failed"].as_f64().unwrap() * 60.0).sum();
    assert!((per_second - 7.0).abs() < 1e-6, "{per_second}");
    assert_eq!(stats["samples"], 8);
    assert!(stats["run_ms"]["max"].as_f64().unwrap() >= stats["run_ms"]["p50"].as_f64().unwrap());
    assert_eq!(server.get("/v1/stats?step=0").status, 400);
    assert_eq!(server.get("/v1/stats?step=90").status, 400, "whole minutes only");
    assert_eq!(server.get("/v1/stats?step=420").status, 400, "a step divides the window");
    assert_eq!(server.get("/v1/stats?window=604860").status, 400, "7 days at most");
    let day = server.get("/v1/stats?window=86400").body;
    assert_eq!(
        (day["step"].as_i64(), day["series"].as_array().map(Vec::len)),
        (Some(720), Some(120)),
        "{day}"
    );
    assert_eq!(day["queues"]["default"]["failed"], 6, "{day}");

    // One job: only once it is finished.
    let waiting = server.post("/v1/jobs", &json!({"job": "echo", "hold": true})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = server.delete(&format!("/v1/jobs/{waiting}"));
    assert_eq!((refused.status, refused.code()), (409, "invalid_transition"), "{refused:?}");
    let gone = server.delete(&format!("/v1/jobs/{done}"));
    assert_eq!((gone.status, gone.body["id"].as_str()), (200, Some(done.as_str())), "{gone:?}");
    assert_eq!(server.delete(&format!("/v1/jobs/{done}")).code(), "unknown_id");
    assert_eq!(server.job(&failed[1])["status"], "error", "only that job");
    // Both statuses at once: a cancelled job and the failed ones.
    let cancelled = server.post("/v1/jobs", &json!({"job": "echo", "queue": "both", "hold": true})).body
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.post_empty(&format!("/v1/jobs/{cancelled}/cancel"));
    let both = fatal("both");
    server.wait_finished(&both, LONG);
    let retried = server.post_empty("/v1/jobs/retry?status=cancelled,error&queue=both");
    assert_eq!(retried.body, json!({"retried": 2}), "{retried:?}");
    assert_eq!(server.wait_finished(&cancelled, LONG)["status"], "completed");
}

#[test]
fn every_error_code_and_nothing_changes() {
    use Expect::Error;
    use Request::{Delete, Get, Post, PostEmpty, Raw};
    let server = App::with_config(with_limits(Limits {
        max_body_bytes: 4096.try_into().unwrap(),
        ..Limits::default()
    }));
    let completed = server.add("echo", json!({"keep": true}));
    server.wait_finished(&completed, LONG);
    // A queue that is neither configured nor holds a job cannot be stopped (or started):
    // naming one creates nothing.
    let unknown = server.post_empty("/v1/queues/parked/stop");
    assert_eq!((unknown.status, unknown.code()), (404, "unknown_queue"), "{unknown:?}");
    assert!(server.get("/v1/queues").body.as_array().unwrap().iter().all(|q| q["name"] != "parked"));
    // Once it holds a job it can: a held job, the queue stopped, the job let go.
    let queued_elsewhere = {
        let answer = server.post("/v1/jobs", &json!({"job": "echo", "queue": "parked", "hold": true}));
        assert_eq!(answer.status, 201);
        answer.body["id"].as_str().unwrap().to_owned()
    };
    assert_eq!(server.post_empty("/v1/queues/parked/stop").body["processing"], false);
    assert_eq!(server.post_empty(&format!("/v1/jobs/{queued_elsewhere}/start")).body["status"], "queued");
    let before = server.snapshot();
    // Each case: the answer, then nothing stored changed.
    let check = |request: Request<'_>, expected: Expect<'_>| {
        server.check(request, expected);
        assert_eq!(server.snapshot(), before, "a refused request changed stored data");
    };

    let big = format!("{{\"job\": \"echo\", \"input\": \"{}\"}}", "x".repeat(5000));
    check(Raw("/v1/jobs", b"{\"job\": ".to_vec()), Error(400, "invalid_json"));
    check(Raw("/v1/jobs", b"job=echo".to_vec()), Error(400, "invalid_json"));
    check(Post("/v1/jobs", json!({"job": 3})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"input": {}})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"job": "echo", "max_atempts": 2})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"job": "echo", "max_attempts": 0})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"job": "echo", "max_attempts": -1})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"job": "echo", "queue": "no spaces"})), Error(400, "invalid_request"));
    check(Post("/v1/jobs", json!({"job": "echo", "timeout_seconds": -1})), Error(400, "invalid_request"));
    check(
        Post("/v1/jobs", json!({"job": "nope"})),
        Expect::ErrorSaying(400, "unknown_job", "echo, error, fatal, sleep"),
    );
    check(Raw("/v1/jobs", big.into_bytes()), Error(413, "body_too_large"));
    check(Get("/v1/jobs/999999"), Error(404, "unknown_id"));
    check(Get("/v1/jobs/abc"), Error(404, "unknown_id"));
    check(PostEmpty("/v1/jobs/999999/cancel"), Error(404, "unknown_id"));
    check(PostEmpty("/v1/jobs/999999/retry"), Error(404, "unknown_id"));
    check(Get("/v1/jobs/1?wait=-1"), Error(400, "invalid_request"));
    check(Get("/v1/jobs/1?wait=soon"), Error(400, "invalid_request"));
    check(Get("/v1/jobs?status=done"), Error(400, "invalid_request"));
    check(Get("/v1/jobs?limit=0"), Error(400, "invalid_request"));
    check(Get("/v1/jobs?after=x"), Error(400, "invalid_request"));
    check(Get("/v1/jobs?stats=error"), Error(400, "invalid_request"));
    check(Delete("/v1/jobs?status=queued"), Error(400, "invalid_request"));
    check(Delete("/v1/jobs?status=gone"), Error(400, "invalid_request"));
    check(PostEmpty("/v1/queues/a%20b/start"), Error(400, "invalid_request"));
    check(Get("/v1/nope"), Error(404, "not_found"));
    check(Delete("/v1/factories"), Error(405, "method_not_allowed"));
    check(PostEmpty(&format!("/v1/jobs/{completed}/cancel")), Error(409, "invalid_transition"));
    check(PostEmpty(&format!("/v1/jobs/{completed}/retry")), Error(409, "invalid_transition"));
    check(PostEmpty(&format!("/v1/jobs/{queued_elsewhere}/retry")), Error(409, "invalid_transition"));
    // No handler panicked: the service stops cleanly.
    server.stop();
}

#[test]
fn bearer_token_auth() {
    let server = App::with_token("s3cret");
    assert_eq!(server.add("echo", json!(1)), "1");
    let anonymous = server.with_token(None);
    anonymous.check(Request::Get("/v1/jobs"), Expect::Error(401, "unauthorized"));
    anonymous.check(Request::Get("/v1/health"), Expect::Status(200));
    let wrong = server.with_token(Some("guess"));
    wrong.check(Request::Post("/v1/jobs", json!({"job": "echo"})), Expect::Error(401, "unauthorized"));
    wrong.check(Request::Get("/v1/jobs"), Expect::Error(401, "unauthorized"));
    assert_eq!(server.get("/v1/jobs").body["jobs"].as_array().unwrap().len(), 1, "nothing was added");
}

/// What the dashboard polls crosses the wire again only when it changed: a GET answer carries
/// an ETag, and the same tag in `If-None-Match` gets a bodiless 304 until the answer changes.
#[test]
fn unchanged_answers_are_304_with_no_body() {
    let server = App::with_token("s3cret");
    let first = server.get("/v1/queues");
    let tag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("no-store"), "still never kept by a cache");
    let again = server.send_with("GET", "/v1/queues", &[("If-None-Match", &tag)], None);
    assert_eq!((again.status, again.text.as_str(), again.header("etag")), (304, "", Some(tag.as_str())));
    // A list of tags, one weak, as browsers send them.
    let listed = format!("\"other\", W/{tag}");
    assert_eq!(server.send_with("GET", "/v1/queues", &[("If-None-Match", &listed)], None).status, 304);
    // Changed: the whole answer, under a new tag.
    server.add("echo", json!(1));
    let changed = server.send_with("GET", "/v1/queues", &[("If-None-Match", &tag)], None);
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
    assert!(changed.body.as_array().is_some_and(|q| !q.is_empty()), "{changed:?}");
    // Without the token, the tag earns nothing but the refusal.
    let anonymous = server.with_token(None);
    let refused = anonymous.send_with("GET", "/v1/queues", &[("If-None-Match", "*")], None);
    assert_eq!((refused.status, refused.header("etag")), (401, None));
    // HEAD as GET (of an answer that does not change meanwhile: the factories).
    let factories = server.get("/v1/factories");
    let tag = factories.header("etag").expect("an ETag");
    let head = server.send_with("HEAD", "/v1/factories", &[("If-None-Match", tag)], None);
    assert_eq!(head.status, 304, "{head:?}");
    assert_eq!(server.send_with("HEAD", "/v1/factories", &[], None).header("etag"), Some(tag));
    // Errors and writes carry no tag.
    assert_eq!(server.get("/v1/jobs/99999").header("etag"), None);
    assert_eq!(server.post("/v1/jobs", &json!({"job": "echo"})).header("etag"), None);
}

#[test]
fn openapi_document_parses_and_names_every_route() {
    let server = App::with_config(paused());
    let answer = server.get("/v1/openapi.json");
    assert_eq!(answer.status, 200);
    let spec = oas3::from_json(&answer.text).expect("parses as OpenAPI 3");
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);
    let paths = spec.paths.as_ref().expect("paths");
    let routes = [
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("delete", "/v1/jobs"),
        ("get", "/v1/jobs/{id}"),
        ("delete", "/v1/jobs/{id}"),
        ("post", "/v1/jobs/{id}/cancel"),
        ("post", "/v1/jobs/{id}/retry"),
        ("post", "/v1/jobs/{id}/start"),
        ("post", "/v1/jobs/batch"),
        ("post", "/v1/jobs/retry"),
        ("get", "/v1/jobs/summaries"),
        ("get", "/v1/jobs/count"),
        ("post", "/v1/schedules"),
        ("get", "/v1/schedules"),
        ("get", "/v1/schedules/{id}"),
        ("patch", "/v1/schedules/{id}"),
        ("delete", "/v1/schedules/{id}"),
        ("get", "/v1/cron/next"),
        ("get", "/v1/cron/check"),
        ("get", "/v1/factories"),
        ("get", "/v1/plugins"),
        ("get", "/v1/queues"),
        ("post", "/v1/queues/{name}/stop"),
        ("post", "/v1/queues/{name}/start"),
        ("get", "/v1/workers"),
        ("get", "/v1/stats"),
        ("get", "/v1/hosts"),
        ("get", "/v1/health"),
        ("get", "/metrics"),
        ("get", "/v1/backup"),
        ("get", "/v1/openapi.json"),
        ("get", "/v1/jobs/{id}/dependents"),
        ("get", "/v1/groups/{id}"),
        ("post", "/v1/groups/{id}/cancel"),
        ("get", "/v1/limits"),
        ("put", "/v1/limits/{kind}/{name}"),
        ("delete", "/v1/limits/{kind}/{name}"),
        ("post", "/v1/operations"),
        ("get", "/v1/operations"),
        ("get", "/v1/operations/{id}"),
        ("post", "/v1/operations/{id}/cancel"),
    ];
    for (method, path) in routes {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} is not in the document"));
        let op = match method {
            "get" => item.get.as_ref(),
            "post" => item.post.as_ref(),
            "delete" => item.delete.as_ref(),
            "patch" => item.patch.as_ref(),
            "put" => item.put.as_ref(),
            _ => None,
        };
        assert!(op.is_some(), "{method} {path} is not in the document");
        // Every route the document names is served (not a 404 from the fallback).
        let concrete = path.replace("{id}", "1").replace("{name}", "default").replace("{kind}", "queue");
        let answer = match method {
            "get" => server.get(&concrete),
            "post" if path == "/v1/jobs" => server.post(&concrete, &json!({"job": "echo"})),
            "post" if path == "/v1/jobs/batch" => server.post(&concrete, &json!({"jobs": [{"job": "echo"}]})),
            "post" if path == "/v1/operations" => server.post(&concrete, &json!({"action": "remove"})),
            "post" if path == "/v1/schedules" => {
                server.post(&concrete, &json!({"job": "echo", "cron": "* * * * *"}))
            }
            "post" => server.post_empty(&concrete),
            "patch" => server.patch(&concrete, &json!({"active": true})),
            "put" => server.put(&concrete, &json!({"concurrency": 2})),
            _ => server.delete(&concrete),
        };
        assert_ne!(answer.code(), "not_found", "{method} {path}: {answer:?}");
        assert_ne!(answer.status, 405, "{method} {path}: {answer:?}");
    }
    assert_eq!(paths.len(), 34, "no undocumented extra paths: {:?}", paths.keys().collect::<Vec<_>>());
    let components = spec.components.as_ref().expect("components");
    for schema in [
        "JobView",
        "AddJobRequest",
        "AddedView",
        "ErrorBody",
        "JobPage",
        "QueueView",
        "FactoryView",
        "ScheduleView",
    ] {
        assert!(components.schemas.contains_key(schema), "schema {schema} missing");
    }
}

/// Percent-encodes a query value.
fn q(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn delayed_held_and_unique_jobs_through_the_api() {
    let server = App::start();

    let sent = chrono::Utc::now();
    let added = server.post("/v1/jobs", &json!({"job": "echo", "input": 1, "delay_seconds": 1}));
    assert_eq!((added.status, added.body["status"].as_str()), (201, Some("scheduled")), "{added:?}");
    let id = added.body["id"].as_str().unwrap().to_owned();
    let done = server.wait_finished(&id, LONG);
    assert_eq!(done["status"], "completed");
    let time = |key: &str| chrono::DateTime::parse_from_rfc3339(done[key].as_str().unwrap()).unwrap();
    // The delay is counted from the request's arrival: after it was sent, and a moment (however
    // long, on a loaded machine) before the job's creation.
    assert!(
        time("run_at") >= sent + chrono::Duration::seconds(1),
        "run_at is the delay after the request: {done}"
    );
    assert!(
        time("run_at") <= time("created_at") + chrono::Duration::seconds(1),
        "counted from arrival: {done}"
    );
    assert!(time("started_at") >= time("run_at"), "ran no sooner than its delay: {done}");

    let past = server.post("/v1/jobs", &json!({"job": "echo", "run_at": "2020-01-01T00:00:00Z"}));
    assert_eq!(past.body["status"], "queued", "{past:?}");

    let held = server.post("/v1/jobs", &json!({"job": "echo", "input": 2, "hold": true, "unique_key": "k1"}));
    assert_eq!(
        (held.status, held.body["status"].as_str(), held.body["existing"].as_bool()),
        (201, Some("held"), Some(false))
    );
    let held_id = held.body["id"].as_str().unwrap().to_owned();
    let same = server.post("/v1/jobs", &json!({"job": "echo", "input": 3, "unique_key": "k1"}));
    assert_eq!(
        (same.status, same.body["id"].as_str(), same.body["existing"].as_bool()),
        (200, Some(held_id.as_str()), Some(true))
    );
    jobhost_tests::holds_for(Duration::from_millis(300), "a held job waits for start", || {
        server.job(&held_id)["status"] == "held"
    });
    let started = server.post_empty(&format!("/v1/jobs/{held_id}/start"));
    assert_eq!((started.status, started.body["status"].as_str()), (200, Some("queued")), "{started:?}");
    assert_eq!(server.wait_finished(&held_id, LONG)["result"], json!(2));
    let again = server.post_empty(&format!("/v1/jobs/{held_id}/start"));
    assert_eq!((again.status, again.code()), (409, "invalid_transition"));
    let fresh = server.post("/v1/jobs", &json!({"job": "echo", "unique_key": "k1"}));
    assert_eq!((fresh.status, fresh.body["existing"].as_bool()), (201, Some(false)), "the key is free again");

    for (body, needle) in [
        (json!({"job": "echo", "delay_seconds": 1, "run_at": "2030-01-01T00:00:00Z"}), "not both"),
        (json!({"job": "echo", "run_at": "tomorrow"}), "run_at: `tomorrow` is not an RFC 3339 time"),
        (json!({"job": "echo", "delay_seconds": -5}), "delay_seconds"),
        (json!({"job": "echo", "unique_key": ""}), "unique_key"),
    ] {
        let answer = server.post("/v1/jobs", &body);
        assert_eq!((answer.status, answer.code()), (400, "invalid_request"), "{body}: {answer:?}");
        assert!(answer.text.contains(needle), "{body}: {answer:?}");
    }
}

#[test]
fn schedules_and_cron_previews_through_the_api() {
    let server = App::start();
    let created = server.post(
        "/v1/schedules",
        &json!({"job": "echo", "input": {"n": 1}, "cron": "*/5 * * * *", "timezone": "Europe/Zurich"}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let next = chrono::DateTime::parse_from_rfc3339(created.body["next_run_at"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now() && next.timestamp() % 300 == 0, "{created:?}");
    assert_eq!(server.get("/v1/schedules").body.as_array().unwrap().len(), 1);

    let moved = server.patch(&format!("/v1/schedules/{id}"), &json!({"cron": "0 3 * * *"}));
    assert_eq!(moved.status, 200, "{moved:?}");
    let at = chrono::DateTime::parse_from_rfc3339(moved.body["next_run_at"].as_str().unwrap()).unwrap();
    let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    assert_eq!(at.with_timezone(&zurich).format("%H:%M").to_string(), "03:00", "{moved:?}");
    let paused = server.patch(&format!("/v1/schedules/{id}"), &json!({"active": false}));
    assert_eq!((paused.body["active"].as_bool(), &paused.body["next_run_at"]), (Some(false), &Value::Null));

    let before = server.snapshot();
    let bad = [
        (
            Request::Post("/v1/schedules", json!({"job": "echo", "cron": "61 * * * *"})),
            "field 1 (minute) `61`",
        ),
        (
            Request::Post(
                "/v1/schedules",
                json!({"job": "echo", "cron": "* * * * *", "timezone": "Nowhere/City"}),
            ),
            "unknown time zone `Nowhere/City`",
        ),
        (Request::Post("/v1/schedules", json!({"job": "echo"})), "needs cron or delay_seconds"),
        (Request::Post("/v1/schedules", json!({"job": "echo", "cron": "* * *"})), "has 3 field(s)"),
    ];
    for (request, needle) in bad {
        let answer = server.send(&request);
        assert_eq!((answer.status, answer.code()), (400, "invalid_request"), "{answer:?}");
        assert!(answer.text.contains(needle), "{needle}: {answer:?}");
    }
    let patch_bad = server.patch(&format!("/v1/schedules/{id}"), &json!({"cron": "* 25 * * *"}));
    assert!(patch_bad.status == 400 && patch_bad.text.contains("field 2 (hour)"), "{patch_bad:?}");
    assert_eq!(server.snapshot(), before);
    assert_eq!(
        server.get(&format!("/v1/schedules/{id}")).body["cron"],
        "0 3 * * *",
        "a refused patch changes nothing"
    );

    // A delay item: one job after its delay; then it has no next run.
    let delay = server.post("/v1/schedules", &json!({"job": "echo", "input": "later", "delay_seconds": 0.5}));
    assert_eq!(delay.status, 201, "{delay:?}");
    let delay_id = delay.body["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + LONG;
    let fired = loop {
        let s = server.get(&format!("/v1/schedules/{delay_id}")).body;
        if s["runs"] == 1 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the delay item never fired: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(fired["next_run_at"], Value::Null);
    let job = server.wait_finished(fired["last_job_id"].as_str().unwrap(), LONG);
    assert_eq!(
        (job["result"].as_str(), job["schedule_id"].as_str()),
        (Some("later"), Some(delay_id.as_str()))
    );

    let removed = server.delete(&format!("/v1/schedules/{id}"));
    assert_eq!(removed.status, 200);
    let gone = server.get(&format!("/v1/schedules/{id}"));
    assert_eq!((gone.status, gone.code()), (404, "unknown_schedule"));

    // Previews: strictly after `after`, in the zone given.
    let times = server.get(&format!(
        "/v1/cron/next?expr={}&after={}&count=3",
        q("*/5 * * * *"),
        q("2026-11-22T16:45:00Z")
    ));
    assert_eq!(
        times.body,
        json!({"times": ["2026-11-22T16:50:00.000000+00:00", "2026-11-22T16:55:00.000000+00:00", "2026-11-22T17:00:00.000000+00:00"]})
    );
    let zoned = server.get(&format!(
        "/v1/cron/next?expr={}&after={}&count=1&tz=America%2FNew_York",
        q("0 9 * * *"),
        q("2026-11-22T00:00:00Z")
    ));
    assert_eq!(zoned.body["times"], json!(["2026-11-22T14:00:00.000000+00:00"]));
    let bad = server.get(&format!("/v1/cron/next?expr={}", q("* * * * 9")));
    assert!(bad.status == 400 && bad.text.contains("field 5 (day of week)"), "{bad:?}");
    // An editor checking as the operator types gets the verdict with a 200.
    let checked = server.get(&format!("/v1/cron/check?expr={}", q("* * * * 9")));
    assert_eq!(checked.status, 200, "{checked:?}");
    assert_eq!(checked.body["times"], json!([]));
    assert!(
        checked.body["error"]["message"].as_str().unwrap().contains("field 5 (day of week)"),
        "{checked:?}"
    );
    let zone = server.get(&format!("/v1/cron/check?expr={}&tz=Mars%2FOlympus", q("* * * * *")));
    assert!(
        zone.status == 200 && zone.body["error"]["message"].as_str().unwrap().contains("Mars/Olympus"),
        "{zone:?}"
    );
    let fine = server.get(&format!("/v1/cron/check?expr={}&count=2", q("0 * * * *")));
    assert_eq!((fine.body["times"].as_array().unwrap().len(), &fine.body["error"]), (2, &Value::Null));
    let never = server.get(&format!("/v1/cron/check?expr={}&count=0", q("0 0 31 2 *")));
    assert!(never.status == 200 && never.body["error"]["code"] == "invalid_request", "{never:?}");
}

#[test]
fn batch_submission_is_all_or_nothing_with_per_job_errors() {
    let limits = Limits {
        max_batch_jobs: 5.try_into().unwrap(),
        max_batch_body_bytes: 4096.try_into().unwrap(),
        ..Limits::default()
    };
    let server = App::with_config(with_limits(limits));

    let jobs = json!({"jobs": [{"job": "echo", "input": 1}, {"job": "echo", "input": 2, "queue": "q2"}, {"job": "sleep", "input": 0}]});
    let added = server.post("/v1/jobs/batch", &jobs);
    assert_eq!(added.status, 201, "{added:?}");
    let ids: Vec<&str> =
        added.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    for id in ids {
        assert_eq!(server.wait_finished(id, LONG)["status"], "completed");
    }

    let before = server.snapshot();
    let bad = json!({"jobs": [{"job": "echo"}, {"job": "nope"}, {"job": "echo", "max_attempts": 0}, {"job": 7}, {"job": "echo", "unique_key": "k"}]});
    let refused = server.post("/v1/jobs/batch", &bad);
    assert_eq!((refused.status, refused.code()), (400, "invalid_batch"), "{refused:?}");
    let items: Vec<(u64, &str)> = refused.body["error"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["index"].as_u64().unwrap(), i["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        [(1, "unknown_job"), (2, "invalid_request"), (3, "invalid_request"), (4, "invalid_request")]
    );
    let too_many = server.post("/v1/jobs/batch", &json!({"jobs": vec![json!({"job": "echo"}); 6]}));
    assert_eq!((too_many.status, too_many.code()), (400, "invalid_request"), "{too_many:?}");
    assert!(too_many.text.contains("give 1 to 5 jobs"), "{too_many:?}");
    let empty = server.post("/v1/jobs/batch", &json!({"jobs": []}));
    assert_eq!(empty.status, 400);
    let big = server.post("/v1/jobs/batch", &json!({"jobs": [{"job": "echo", "input": "x".repeat(5000)}]}));
    assert_eq!((big.status, big.code()), (413, "body_too_large"), "{big:?}");
    assert_eq!(server.snapshot(), before, "a refused batch adds nothing");
}

#[test]
fn semantics_at_the_edges() {
    use Expect::ErrorSaying;
    use Request::{Get, Post, PostEmpty};
    let server = App::with_config(paused());
    // A retry must not make a second pending job with one unique key.
    let first = server.post("/v1/jobs", &json!({"job": "echo", "unique_key": "k"}));
    let first = first.body["id"].as_str().unwrap().to_owned();
    server.check(PostEmpty(&format!("/v1/jobs/{first}/cancel")), Expect::Status(200));
    let second = server.post("/v1/jobs", &json!({"job": "echo", "unique_key": "k"}));
    assert_eq!((second.status, second.body["existing"].as_bool()), (201, Some(false)));
    let second = second.body["id"].as_str().unwrap().to_owned();
    server.check(
        PostEmpty(&format!("/v1/jobs/{first}/retry")),
        ErrorSaying(409, "invalid_transition", &format!("job {second} holds its unique key `k`")),
    );
    // Once the holder is finished, the retry takes the key back.
    server.check(PostEmpty(&format!("/v1/jobs/{second}/cancel")), Expect::Status(200));
    server.check(PostEmpty(&format!("/v1/jobs/{first}/retry")), Expect::Status(200));
    let same = server.post("/v1/jobs", &json!({"job": "echo", "unique_key": "k"}));
    assert_eq!(
        (same.body["id"].as_str(), same.body["existing"].as_bool()),
        (Some(first.as_str()), Some(true))
    );

    // Durations that round to nothing, or beyond ten years, are refused, not cut.
    let before = server.snapshot();
    for (body, field) in [
        (json!({"job": "echo", "timeout_seconds": 0.0001}), "timeout_seconds"),
        (json!({"job": "echo", "timeout_seconds": 1e308}), "timeout_seconds"),
        (json!({"job": "echo", "delay_seconds": 1e308}), "delay_seconds"),
        (json!({"job": "echo", "delay_seconds": 4e8}), "delay_seconds"),
    ] {
        server.check(Post("/v1/jobs", body), ErrorSaying(400, "invalid_request", field));
    }
    server.check(
        Post("/v1/schedules", json!({"job": "echo", "delay_seconds": 0.0001})),
        ErrorSaying(400, "invalid_request", "delay_seconds"),
    );
    // A preview of an expression that never fires says so, as creating a schedule does.
    server.check(
        Get(&format!("/v1/cron/next?expr={}", q("0 0 31 2 *"))),
        ErrorSaying(400, "invalid_request", "never matches"),
    );
    server.check(
        Post("/v1/schedules", json!({"job": "echo", "cron": "0 0 31 2 *"})),
        ErrorSaying(400, "invalid_request", "never matches"),
    );
    // A huge name is not echoed whole.
    let huge = "q".repeat(1_000_000);
    let answer = server.check(
        Post("/v1/jobs", json!({"job": "echo", "queue": huge})),
        ErrorSaying(400, "invalid_request", "(1000000 bytes)"),
    );
    assert!(answer.text.len() < 1000, "{} bytes of error", answer.text.len());
    assert_eq!(server.snapshot(), before, "nothing stored");
}

/// Sends `head` (a request line and headers, without the blank line) over a plain socket, for
/// requests an HTTP client would refuse to build; the status and the body.
fn raw_request(url: &str, head: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    socket.set_read_timeout(Some(LONG)).unwrap();
    socket.write_all(format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn the_document_says_exactly_what_the_server_takes() {
    let open = App::with_config(paused());
    let doc = open.get("/v1/openapi.json").body;
    // No token configured: no security declared, no 401 documented.
    assert!(doc.get("security").is_none(), "{}", doc["security"]);
    assert!(doc["components"].get("securitySchemes").is_none());
    assert!(doc["paths"]["/v1/jobs"]["post"]["responses"].get("401").is_none());
    // One alternative per factory this server has, each with its input schema (echo's any
    // JSON, sleep's a number or {"seconds"}, required); results of any JSON type.
    let schemas = &doc["components"]["schemas"];
    let variants = schemas["AddJobRequest"]["oneOf"].as_array().expect("one alternative per factory");
    let job = |name: &str| variants.iter().find(|v| v["properties"]["job"]["const"] == name).unwrap().clone();
    let names: Vec<&Value> = variants.iter().map(|v| &v["properties"]["job"]["const"]).collect();
    assert_eq!(names, [&json!("echo"), &json!("error"), &json!("fatal"), &json!("sleep")]);
    assert!(job("echo")["properties"]["input"].get("type").is_none(), "echo takes any JSON");
    assert_eq!(job("sleep")["required"], json!(["job", "input"]));
    assert_eq!(job("sleep")["properties"]["input"]["anyOf"][0]["minimum"], 0);
    let fatal_input = job("fatal")["properties"]["input"].to_string();
    assert!(fatal_input.contains("#/components/schemas/fatal.Input"), "{fatal_input}");
    assert!(schemas["fatal.Input"]["properties"]["abort"].is_object());
    assert!(schemas["BatchJobRequest"]["oneOf"].is_array());
    for (schema, field) in [("JobView", "input"), ("JobView", "result")] {
        assert!(schemas[schema]["properties"][field].get("type").is_none(), "{schema}.{field} is any JSON");
    }
    assert_eq!(schemas["BatchRequest"]["properties"]["jobs"]["minItems"], 1);
    assert!(schemas["ScheduleRequest"]["oneOf"].is_array(), "cron or delay");
    let limit = doc["paths"]["/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    for body_route in [("/v1/schedules", "post"), ("/v1/schedules/{id}", "patch"), ("/v1/jobs", "post")] {
        assert!(doc["paths"][body_route.0][body_route.1]["responses"].get("413").is_some(), "{body_route:?}");
    }

    // What the document allows is taken: any JSON as input, `2.0` where it says integer.
    let added =
        open.post("/v1/jobs", &json!({"job": "echo", "input": "text", "priority": 2.0, "max_attempts": 3.0}));
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(
        (&added.body["input"], &added.body["priority"], &added.body["max_attempts"]),
        (&json!("text"), &json!(2), &json!(3))
    );
    let bare = open.post("/v1/jobs", &json!({"job": "echo"}));
    assert_eq!((&bare.body["input"], &bare.body["result"]), (&Value::Null, &Value::Null));
    let schedule = open.post("/v1/schedules", &json!({"job": "echo", "delay_seconds": 60, "priority": -5.0}));
    assert_eq!((schedule.status, &schedule.body["priority"]), (201, &json!(-5)), "{schedule:?}");

    // What it does not allow is refused, in JSON.
    open.check(
        Request::Raw("/v1/jobs", br#"["echo", null]"#.to_vec()),
        Expect::Error(400, "invalid_request"),
    );
    open.check(
        Request::Post("/v1/jobs", json!({"job": "echo", "priority": 2.5})),
        Expect::Error(400, "invalid_request"),
    );
    open.check(Request::Post("/v1/jobs/batch", json!({"jobs": []})), Expect::Error(400, "invalid_request"));
    open.check(Request::Get("/v1/jobs/+1"), Expect::Error(404, "unknown_id"));
    let bad_segment = open.get("/v1/jobs/%FF");
    assert_eq!((bad_segment.status, bad_segment.code()), (400, "invalid_request"), "{bad_segment:?}");
    assert_eq!(bad_segment.content_type, "application/json");
    let (status, body) =
        raw_request(&open.url, &format!("GET /v1/jobs?queue={} HTTP/1.1", "q".repeat(20_000)));
    assert_eq!((status, body["error"]["code"].as_str()), (414, Some("uri_too_long")), "{body}");
    let many: String = (0..150).map(|i| format!("\r\nX-Header-{i}: {i}")).collect();
    let (status, body) = raw_request(&open.url, &format!("GET /v1/health HTTP/1.1{many}"));
    assert_eq!((status, body["error"]["code"].as_str()), (431, Some("headers_too_large")), "{body}");

    // A token configured: declared, and a 401 documented on every route but health.
    let guarded = App::with_token("a-token-of-some-length");
    let doc = guarded.get("/v1/openapi.json").body;
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let documented = op["responses"].get("401").is_some();
            assert_eq!(documented, path != "/v1/health", "{method} {path}");
        }
    }
}
