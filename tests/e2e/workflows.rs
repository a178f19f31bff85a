//! Jobs that wait for other jobs, over HTTP against the real binary with real plugins: a graph
//! submitted in one batch runs in its order and each job reads its parents' results; a failed
//! parent cancels its chain and its retry revives it; what cannot be is refused with a reason;
//! the CLI's `--after`; and a host killed again and again mid-graph, on both stores, never
//! runs a dependent before its parents completed.

use std::time::{Duration, Instant};

use jobhost_tests::server::Server;
use jobhost_tests::stores::{postgres_skipped, Schema};
use jobhost_tests::{artefacts, jobhost, library_file, plugin_dir};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

/// The example plugins `echo` and `error`, and the `graph` fixture (`sum`, `tally`).
fn plugins() -> TempDir {
    let plugins = plugin_dir(&["echo", "error"]);
    std::fs::copy(artefacts().fixture("graph"), plugins.path().join(library_file("graph"))).unwrap();
    plugins
}

/// A host on the embedded store with these plugins and `config` (its temp dirs live as long
/// as the test holds them).
fn serve_with(config: &str) -> (TempDir, TempDir, Server) {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let file = dir.path().join("jobhost.toml");
    std::fs::write(&file, config).unwrap();
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", file.to_str().unwrap()]);
    (dir, plugins, server)
}

fn ids(answer: &Value) -> Vec<String> {
    answer["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

fn time(job: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(job[field].as_str().unwrap_or_else(|| panic!("{field} of {job}")))
        .unwrap()
}

#[test]
fn a_graph_submitted_in_one_batch_runs_in_order_and_reads_its_parents_results() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    // A diamond, its sink listed first: top → (left, right) → sink.
    let batch = json!({"jobs": [
        {"job": "sum", "input": {"n": 1000}, "depends_on": [{"ref": "left"}, {"ref": "right"}]},
        {"job": "sum", "input": {"n": 1}, "ref": "top"},
        {"job": "sum", "input": {"n": 10}, "ref": "left", "depends_on": [{"ref": "top"}]},
        {"job": "sum", "input": {"n": 100}, "ref": "right", "depends_on": [{"ref": "top"}]},
    ]});
    let made = server.post("/v1/jobs/batch", &batch);
    assert_eq!(made.status, 201, "{made:?}");
    let statuses: Vec<&str> =
        made.body["jobs"].as_array().unwrap().iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["waiting", "queued", "waiting", "waiting"]);
    let [sink, top, left, right] = <[String; 4]>::try_from(ids(&made.body)).unwrap();
    let done = server.wait_finished(&sink, LONG);
    // 1000 + (10 + 1) + (100 + 1): each job saw its parents' results.
    assert_eq!((done["status"].as_str(), done["result"].as_i64()), (Some("completed"), Some(1112)), "{done}");
    let parents: Vec<&str> = done["dependencies"]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(parents, [left.as_str(), right.as_str()]);
    assert_eq!(done["dependencies"]["waiting_for"], 0);
    let (top, left, right) = (server.job(&top), server.job(&left), server.job(&right));
    for child in [&left, &right] {
        assert!(time(child, "started_at") >= time(&top, "finished_at"), "{child} before {top}");
        assert!(time(&done, "started_at") >= time(child, "finished_at"), "{done} before {child}");
    }
    // A finished job that a pending job depends on cannot be removed.
    let held = server.post("/v1/jobs", &json!({"job": "echo", "hold": true}));
    let held = held.body["id"].as_str().unwrap().to_owned();
    let waiting =
        server.post("/v1/jobs", &json!({"job": "sum", "input": {"n": 1}, "depends_on": [top["id"], held]}));
    assert_eq!(waiting.status, 201, "{waiting:?}");
    let refused = server.delete(&format!("/v1/jobs/{}", top["id"].as_str().unwrap()));
    assert_eq!((refused.status, refused.code()), (409, "invalid_transition"), "{refused:?}");
    assert!(refused.text.contains("depends on it"), "{}", refused.text);
    // A job added after its parent completed runs at once.
    let later = server.post("/v1/jobs", &json!({"job": "sum", "input": {"n": 5}, "depends_on": [sink]}));
    assert_eq!(later.status, 201, "{later:?}");
    let later = server.wait_finished(later.body["id"].as_str().unwrap(), LONG);
    assert_eq!(later["result"].as_i64(), Some(1117));
}

#[test]
fn a_failed_parent_cancels_its_chain_naming_it_and_its_retry_revives_the_chain() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let batch = json!({"jobs": [
        {"job": "error", "ref": "bad", "max_attempts": 1},
        {"job": "sum", "input": {"n": 1}, "ref": "next", "depends_on": [{"ref": "bad"}]},
        {"job": "sum", "input": {"n": 2}, "depends_on": [{"ref": "next"}]},
        {"job": "tally", "depends_on": [{"ref": "bad", "on_failure": "run"}]},
    ]});
    let made = server.post("/v1/jobs/batch", &batch);
    assert_eq!(made.status, 201, "{made:?}");
    let [bad, next, last, tally] = <[String; 4]>::try_from(ids(&made.body)).unwrap();
    let tallied = server.wait_finished(&tally, LONG);
    assert_eq!(tallied["result"], json!({"parents": 1, "by_status": {"error": 1}}), "{tallied}");
    let next_job = server.wait_finished(&next, LONG);
    assert_eq!(next_job["status"], "cancelled");
    let reason = next_job["errors"].as_array().unwrap().last().unwrap().as_str().unwrap();
    assert!(reason.contains(&format!("it depends on job {bad}, which ended error")), "{reason}");
    assert_eq!(next_job["dependencies"]["blocked_by"].as_str(), Some(bad.as_str()));
    let last_job = server.wait_finished(&last, LONG);
    assert!(last_job["errors"][0].as_str().unwrap().contains(&format!("job {next}, which ended cancelled")));

    // Retrying the failed parent brings the chain back to waiting; it fails again, and so
    // the chain is cancelled again.
    let retried = server.post_empty(&format!("/v1/jobs/{bad}/retry"));
    assert_eq!(retried.status, 200, "{retried:?}");
    let revived = server.job(&next);
    assert!(matches!(revived["status"].as_str(), Some("waiting" | "cancelled")), "{revived}");
    server.wait_until(&next, LONG, |j| {
        j["status"] == "cancelled" && j["errors"].as_array().unwrap().len() == 2
    });
    // Cancelling a waiting job by hand: its dependents are cancelled, and it is not revived.
    let parent = server.post("/v1/jobs", &json!({"job": "echo", "hold": true}));
    let parent = parent.body["id"].as_str().unwrap().to_owned();
    let child = server.post("/v1/jobs", &json!({"job": "sum", "input": {"n": 1}, "depends_on": [parent]}));
    let child = child.body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.job(&child)["status"], "waiting");
    let grandchild =
        server.post("/v1/jobs", &json!({"job": "sum", "input": {"n": 1}, "depends_on": [child]}));
    let grandchild = grandchild.body["id"].as_str().unwrap().to_owned();
    assert_eq!(server.post_empty(&format!("/v1/jobs/{child}/cancel")).status, 200);
    assert_eq!(server.job(&grandchild)["status"], "cancelled");
    assert_eq!(server.post_empty(&format!("/v1/jobs/{parent}/start")).status, 200);
    server.wait_finished(&parent, LONG);
    assert_eq!(server.job(&child)["status"], "cancelled", "cancelled by hand: not revived");
}

#[test]
fn what_cannot_be_waited_for_is_refused_with_the_reason() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &["--paused"]);
    let parent = server.add("echo", json!(1));
    let refused = |body: Value, path: &str, status: u16, code: &str, words: &str| {
        let answer = server.post(path, &body);
        assert_eq!((answer.status, answer.code()), (status, code), "{body}: {answer:?}");
        assert!(answer.text.contains(words), "{body}: {}", answer.text);
    };
    let one = "/v1/jobs";
    let many = "/v1/jobs/batch";
    refused(
        json!({"job": "echo", "depends_on": ["999999"]}),
        one,
        422,
        "invalid_dependencies",
        "no job with id 999999",
    );
    refused(
        json!({"job": "echo", "depends_on": [parent, {"id": parent}]}),
        one,
        422,
        "invalid_dependencies",
        "twice",
    );
    refused(
        json!({"job": "echo", "depends_on": ["x1"]}),
        one,
        400,
        "invalid_request",
        "depends_on[0]: `x1` is not a job id",
    );
    refused(
        json!({"job": "echo", "depends_on": [{"id": parent, "ref": "a"}]}),
        one,
        400,
        "invalid_request",
        "not both",
    );
    refused(
        json!({"job": "echo", "depends_on": [{"id": parent, "on_failure": "maybe"}]}),
        one,
        400,
        "invalid_request",
        "on_failure",
    );
    refused(
        json!({"job": "echo", "depends_on": [parent], "hold": true}),
        one,
        400,
        "invalid_request",
        "hold",
    );
    refused(
        json!({"job": "echo", "depends_on": [parent], "unique_key": "k"}),
        one,
        400,
        "invalid_request",
        "unique_key",
    );
    refused(json!({"job": "echo", "ref": "a"}), one, 400, "invalid_request", "only in POST /v1/jobs/batch");
    refused(
        json!({"job": "echo", "depends_on": [{"ref": "a"}]}),
        one,
        400,
        "invalid_request",
        "only in POST /v1/jobs/batch",
    );
    let cycle = json!({"jobs": [
        {"job": "echo", "ref": "a", "depends_on": [{"ref": "c"}]},
        {"job": "echo", "ref": "b", "depends_on": [{"ref": "a"}]},
        {"job": "echo", "ref": "c", "depends_on": [{"ref": "b"}]},
    ]});
    refused(cycle, many, 422, "invalid_batch", "cycle: jobs[0] → jobs[2] → jobs[1] → jobs[0]");
    refused(
        json!({"jobs": [{"job": "echo", "ref": "a", "depends_on": [{"ref": "a"}]}]}),
        many,
        422,
        "invalid_batch",
        "cycle",
    );
    refused(
        json!({"jobs": [{"job": "echo", "depends_on": [{"ref": "nowhere"}]}]}),
        many,
        422,
        "invalid_batch",
        "no job of the batch has the ref `nowhere`",
    );
    refused(
        json!({"jobs": [{"job": "echo", "ref": "a"}, {"job": "echo", "ref": "a"}]}),
        many,
        422,
        "invalid_batch",
        "already the ref of jobs[0]",
    );
    // A stored parent that is not there: told by the index of the job naming it, as a
    // batch's other refusals are.
    let answer =
        server.post(many, &json!({"jobs": [{"job": "echo"}, {"job": "echo", "depends_on": ["999999"]}]}));
    assert_eq!((answer.status, answer.code()), (422, "invalid_batch"), "{answer:?}");
    let item = &answer.body["error"]["items"][0];
    assert_eq!(
        (item["index"].as_u64(), item["code"].as_str()),
        (Some(1), Some("invalid_dependencies")),
        "{answer:?}"
    );
    assert!(item["message"].as_str().unwrap().contains("no job with id 999999"), "{answer:?}");
    // A group's callback is named by its field, not by an index past the batch's jobs.
    refused(
        json!({"jobs": [{"job": "echo"}], "group": {"on_success": {"job": "nope"}}}),
        many,
        400,
        "unknown_job",
        "group.on_success: unknown job factory `nope`",
    );
    // Nothing of any refused request was stored.
    assert_eq!(server.get("/v1/jobs?limit=100").body["jobs"].as_array().unwrap().len(), 1);
    // An id as a number, `7.0` too (JSON Schema counts it an integer): taken.
    let as_number = parent.parse::<u64>().unwrap() as f64;
    let taken = server.post(one, &json!({"job": "echo", "depends_on": [{"id": as_number}]}));
    assert_eq!(taken.status, 201, "{taken:?}");
    let refused_fraction = server.post(one, &json!({"job": "echo", "depends_on": [as_number + 0.5]}));
    assert_eq!(refused_fraction.code(), "invalid_request", "{refused_fraction:?}");

    // The CLI: `--after`, and the job shows its parent.
    let url = server.url.clone();
    let out = jobhost(["add", "echo", "2", "--after", &parent, "--server", &url]);
    assert_eq!(out.code, 0, "{out:?}");
    let child = out.stdout.trim().to_owned();
    let shown = jobhost(["status", &child, "--json", "--server", &url]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["dependencies"]["parents"][0]["id"].as_str()),
        (Some("waiting"), Some(parent.as_str()))
    );
    let out = jobhost(["add", "echo", "--after", "nope", "--server", &url]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("is not a job id"), "{out:?}");
}

/// Attempts enough for a job to be killed mid-run at every kill of the tests below (each such
/// kill counts an attempt, and on a slow machine the same job may be running at each).
const MANY: u32 = 10;

/// A chain of `sum` jobs of 1 each, every one reading its parent: the last one's result is the
/// chain's length only if every job ran after its parent completed.
fn chain(n: usize, sleep_ms: u64) -> Value {
    let jobs: Vec<Value> = (0..n)
        .map(|i| {
            let mut job =
                json!({"job": "sum", "input": {"n": 1, "sleep_ms": sleep_ms}, "ref": format!("j{i}"), "max_attempts": MANY});
            if i > 0 {
                job["depends_on"] = json!([{"ref": format!("j{}", i - 1)}]);
            }
            job
        })
        .collect();
    json!({"jobs": jobs})
}

/// Starts a host, submits chains, and kills it with SIGKILL whenever more jobs completed, then
/// starts it again, until every chain is done; then checks each job's result is its place.
fn killed_again_and_again(start: &dyn Fn() -> Server) {
    let mut server = start();
    let mut callbacks = Vec::new();
    let made: Vec<Vec<String>> = (0..3)
        .map(|i| {
            let mut batch = chain(12, 150);
            if i == 0 {
                // The first chain is a group: its callbacks are released once, after all 12.
                batch["group"] = json!({"on_complete": {"job": "tally"}, "on_success": {"job": "tally"}});
            }
            let answer = server.post("/v1/jobs/batch", &batch);
            assert_eq!(answer.status, 201, "{answer:?}");
            for kind in ["on_complete", "on_success"] {
                callbacks.extend(answer.body["group"][kind]["id"].as_str().map(str::to_owned));
            }
            ids(&answer.body)
        })
        .collect();
    let completed = |server: &Server| -> usize {
        made.iter().flatten().filter(|id| server.job(id)["status"] == "completed").count()
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let before = completed(&server);
        if before == 36 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{before} of 36 jobs completed after {kills} kills; jobs: {}; log:\n{}",
            server.get("/v1/jobs?limit=100").body,
            server.log()
        );
        // Wait for progress, then kill mid-graph.
        while completed(&server) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if kills < 6 {
            server.kill();
            kills += 1;
            server = start();
        }
    }
    assert!(kills >= 3, "only {kills} kills landed before the end");
    assert_eq!(callbacks.len(), 2);
    for callback in &callbacks {
        let done = server.wait_finished(callback, LONG);
        assert_eq!(done["result"], json!({"parents": 12, "by_status": {"completed": 12}}), "{done}");
    }
    for chain in &made {
        for (place, id) in chain.iter().enumerate() {
            let job = server.job(id);
            assert_eq!(job["result"].as_i64(), Some(place as i64 + 1), "job {id}, place {place}: {job}");
        }
    }
}

#[test]
fn a_host_killed_mid_graph_never_runs_a_dependent_early_on_the_embedded_store() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    killed_again_and_again(&|| Server::start(&dir.path().join("data"), plugins.path(), &[]));
}

#[test]
fn a_host_killed_mid_graph_never_runs_a_dependent_early_on_postgresql() {
    if postgres_skipped("workflows::a_host_killed_mid_graph_never_runs_a_dependent_early_on_postgresql") {
        return;
    }
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let schema = Schema::new();
    // A short lease: the killed host's jobs come back within seconds.
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "host_name = \"graph\"\nlease = \"2s\"\n").unwrap();
    let url = schema.url();
    let args = ["--config", config.to_str().unwrap(), "--store-url", &url];
    killed_again_and_again(&|| Server::start(&dir.path().join("data"), plugins.path(), &args));
}

#[test]
fn a_group_runs_each_callback_once_all_members_finished_and_shows_its_progress() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let batch = json!({
        "jobs": [
            {"job": "sum", "input": {"n": 1}},
            {"job": "sum", "input": {"n": 2}},
            {"job": "error", "max_attempts": 1},
            {"job": "echo", "input": "x"},
        ],
        "group": {"name": "nightly import", "on_complete": {"job": "tally"}, "on_success": {"job": "tally"}},
    });
    let made = server.post("/v1/jobs/batch", &batch);
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["jobs"].as_array().unwrap().len(), 4, "callbacks are not members: {}", made.body);
    let group = made.body["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(group, made.body["jobs"][0]["id"].as_str().unwrap(), "a group's id is its first job's");
    let on_complete = made.body["group"]["on_complete"]["id"].as_str().unwrap().to_owned();
    let on_success = made.body["group"]["on_success"]["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["group"]["on_complete"]["status"], "waiting");

    let done = server.wait_finished(&on_complete, LONG);
    assert_eq!(done["result"], json!({"parents": 4, "by_status": {"completed": 3, "error": 1}}), "{done}");
    assert_eq!(done["attempts"], 1, "ran once");
    let cancelled = server.wait_finished(&on_success, LONG);
    assert_eq!(cancelled["status"], "cancelled", "a member failed: {cancelled}");
    let shown = server.get(&format!("/v1/groups/{group}"));
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(
        (&shown.body["name"], &shown.body["total"], &shown.body["finished"], &shown.body["counts"]),
        (&json!("nightly import"), &json!(4), &json!(true), &json!({"completed": 3, "error": 1})),
        "{}",
        shown.body
    );
    let kinds: Vec<(&str, &str)> = shown.body["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("on_complete", "completed"), ("on_success", "cancelled")]);
    // The CLI shows the same.
    let out = jobhost(["group", "show", &group, "--server", &server.url]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("nightly import") && out.stdout.contains("4 finished of 4"),
        "{}",
        out.stdout
    );
    // Retrying the failed member revives on_success, which then runs once it completes... it
    // fails again (it always does): on_success is cancelled again, on_complete never reruns.
    let failed = made.body["jobs"][2]["id"].as_str().unwrap();
    assert_eq!(server.post_empty(&format!("/v1/jobs/{failed}/retry")).status, 200);
    server.wait_until(&on_success, LONG, |j| {
        j["status"] == "cancelled" && j["errors"].as_array().unwrap().len() == 2
    });
    assert_eq!(server.job(&on_complete)["attempts"], 1, "a callback fires once");

    // Unknown groups, and callbacks that name parents of their own.
    assert_eq!(server.get("/v1/groups/999999").code(), "unknown_group");
    assert_eq!(server.get("/v1/groups/x").code(), "unknown_group");
    let bad = server.post(
        "/v1/jobs/batch",
        &json!({"jobs": [{"job": "echo"}], "group": {"on_complete": {"job": "tally", "depends_on": [group]}}}),
    );
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.text.contains("group.on_complete: a callback depends on every member"), "{}", bad.text);
    // A member's dependents: its group's callbacks.
    let dependents = server.get(&format!("/v1/jobs/{group}/dependents"));
    let ids: Vec<&str> =
        dependents.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [on_complete.as_str(), on_success.as_str()]);
}

#[test]
fn cancelling_a_group_stops_its_members_and_its_on_complete_callback_tells_so() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let batch = json!({
        "jobs": (0..4).map(|_| json!({"job": "sum", "input": {"n": 1, "sleep_ms": 60_000}})).collect::<Vec<_>>(),
        "group": {"on_complete": {"job": "tally"}, "on_success": {"job": "tally"}},
    });
    let made = server.post("/v1/jobs/batch", &batch);
    assert_eq!(made.status, 201, "{made:?}");
    let group = made.body["group"]["id"].as_str().unwrap().to_owned();
    // Once one runs: cancelling stops the running ones and cancels the queued ones.
    server.wait_until(&group, LONG, |j| j["status"] == "processing");
    let cancelled = server.post_empty(&format!("/v1/groups/{group}/cancel"));
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.body["cancelled"], 4);
    let on_complete = made.body["group"]["on_complete"]["id"].as_str().unwrap();
    let done = server.wait_finished(on_complete, LONG);
    assert_eq!(done["result"], json!({"parents": 4, "by_status": {"cancelled": 4}}), "{done}");
    let on_success = server.wait_finished(made.body["group"]["on_success"]["id"].as_str().unwrap(), LONG);
    assert_eq!(on_success["status"], "cancelled");
    let again = server.post_empty(&format!("/v1/groups/{group}/cancel"));
    assert_eq!((again.status, &again.body["cancelled"]), (200, &json!(0)), "nothing left to cancel");
}

/// The most jobs of `queue` seen `processing` at once while `done` is false, sampled from the
/// API of `server` every 20 ms.
fn most_running(server: &Server, queue: &str, mut done: impl FnMut() -> bool) -> u64 {
    let mut most = 0;
    let deadline = Instant::now() + LONG;
    while !done() {
        let queues = server.get("/v1/queues");
        let running = queues
            .body
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["name"] == queue)
            .and_then(|q| q["jobs"]["processing"].as_u64())
            .unwrap_or(0);
        most = most.max(running);
        assert!(Instant::now() < deadline, "not done in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    most
}

#[test]
fn a_limit_set_at_run_time_holds_jobs_queued_without_attempts_and_bad_limits_are_refused() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let set = server.put("/v1/limits/queue/limited", &json!({"concurrency": 2}));
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(
        (&set.body["kind"], &set.body["name"], &set.body["concurrency"]),
        (&json!("queue"), &json!("limited"), &json!(2))
    );
    let jobs: Vec<Value> = (0..6)
        .map(|_| json!({"job": "sum", "queue": "limited", "input": {"n": 1, "sleep_ms": 400}}))
        .collect();
    let made = server.post("/v1/jobs/batch", &json!({"jobs": jobs}));
    assert_eq!(made.status, 201, "{made:?}");
    let ids = ids(&made.body);
    let most =
        most_running(&server, "limited", || ids.iter().all(|id| server.job(id)["status"] == "completed"));
    assert_eq!(most, 2, "at most two at once, and two did run at once");
    for id in &ids {
        assert_eq!(server.job(id)["attempts"], 1, "waiting for the limit cost no attempt");
    }
    let listed = server.get("/v1/limits");
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.text);

    // What a limit cannot be.
    let put = |path: &str, body: Value| server.put(path, &body);
    for (path, body, status) in [
        ("/v1/limits/queue/limited", json!({}), 400),
        ("/v1/limits/queue/limited", json!({"concurrency": 0}), 400),
        ("/v1/limits/queue/limited", json!({"rate": {"starts": 5, "per_seconds": 0}}), 400),
        ("/v1/limits/queue/limited", json!({"concurrency": 1, "speed": 3}), 400),
        ("/v1/limits/bogus/limited", json!({"concurrency": 1}), 404),
    ] {
        let answer = put(path, body.clone());
        assert_eq!(answer.status, status, "{path} {body}: {answer:?}");
    }
    assert_eq!(server.delete("/v1/limits/queue/nowhere").code(), "unknown_limit");

    // The CLI sets, lists and removes them.
    let url = server.url.clone();
    let out =
        jobhost(["limit", "set", "factory", "sum", "--rate", "5/1s", "--per-key", "1", "--server", &url]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = jobhost(["limit", "list", "--server", &url]);
    assert!(
        out.stdout.contains("factory  sum") && out.stdout.contains("1 at once per key, 5 starts per 1 s"),
        "{}",
        out.stdout
    );
    assert_eq!(jobhost(["limit", "remove", "queue", "limited", "--server", &url]).code, 0);
    let out = jobhost(["limit", "set", "queue", "x", "--server", &url]);
    assert_ne!(out.code, 0, "no part given");
    assert_eq!(server.get("/v1/limits").body.as_array().unwrap().len(), 1);
}

#[test]
fn a_job_held_by_a_limit_starts_once_the_job_before_it_ends_not_at_the_next_poll() {
    // A poll interval no test waits for: only the end of the job holding the place may start
    // the next one. The factory's limit spans two queues, so a job ending in one must wake
    // the other.
    let (_dir, _plugins, server) = serve_with("poll_interval = \"5m\"\nlease = \"10m\"\n");
    assert_eq!(server.put("/v1/limits/factory/sum", &json!({"concurrency": 1})).status, 200);
    let jobs: Vec<Value> = (0..8)
        .map(|i| {
            let queue = ["left", "right"][i % 2];
            json!({"job": "sum", "queue": queue, "input": {"n": 1, "sleep_ms": 100}})
        })
        .collect();
    let made = server.post("/v1/jobs/batch", &json!({"jobs": jobs}));
    assert_eq!(made.status, 201, "{made:?}");
    let ids = ids(&made.body);
    // All within a minute, where waiting for the poll would take 5 minutes per job.
    let deadline = Instant::now() + LONG;
    for id in &ids {
        let left = deadline.saturating_duration_since(Instant::now());
        assert_eq!(server.wait_finished(id, left)["status"], "completed", "job {id}");
    }
    let mut runs: Vec<(chrono::DateTime<chrono::FixedOffset>, chrono::DateTime<chrono::FixedOffset>)> = ids
        .iter()
        .map(|id| server.job(id))
        .map(|j| (time(&j, "started_at"), time(&j, "finished_at")))
        .collect();
    runs.sort();
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "one at a time: {pair:?}");
    }
}

#[test]
fn a_limit_set_mid_drain_holds_for_the_jobs_already_claimed_ahead() {
    let (_dir, _plugins, server) = serve_with("max_workers = 8\n[queues.burst]\nconcurrency = 8\n");
    let jobs: Vec<Value> = (0..48)
        .map(|_| json!({"job": "sum", "queue": "burst", "input": {"n": 1, "sleep_ms": 200}}))
        .collect();
    let made = server.post("/v1/jobs/batch", &json!({"jobs": jobs}));
    assert_eq!(made.status, 201, "{made:?}");
    let ids = ids(&made.body);
    // Once the drain runs at full concurrency, with jobs claimed and sent ahead, the limit.
    let running = || ids.iter().filter(|id| server.job(id)["status"] == "processing").count();
    jobhost_tests::wait_for_condition(LONG, "the drain under way", || running() >= 8);
    assert_eq!(server.put("/v1/limits/queue/burst", &json!({"concurrency": 1})).status, 200);
    let set_at = chrono::Utc::now();
    let deadline = Instant::now() + LONG;
    for id in &ids {
        let left = deadline.saturating_duration_since(Instant::now());
        assert_eq!(server.wait_finished(id, left)["status"], "completed", "job {id}");
    }
    let runs: Vec<(chrono::DateTime<chrono::FixedOffset>, chrono::DateTime<chrono::FixedOffset>)> = ids
        .iter()
        .map(|id| server.job(id))
        .map(|j| (time(&j, "started_at"), time(&j, "finished_at")))
        .collect();
    // A job started after the limit was set ran alone: whatever ran before it had ended.
    let late: Vec<_> = runs.iter().filter(|(start, _)| *start > set_at).collect();
    assert!(late.len() >= 8, "most jobs started under the limit: {}", late.len());
    for (start, end) in &late {
        let beside = runs.iter().filter(|(s, e)| s < end && e > start).count();
        assert_eq!(
            beside,
            1,
            "a job started at {start} under a limit of 1 ran beside {} other(s)",
            beside - 1
        );
    }
}

#[test]
fn hosts_killed_under_a_concurrency_limit_never_run_more_than_it_allows_on_postgresql() {
    if postgres_skipped(
        "workflows::hosts_killed_under_a_concurrency_limit_never_run_more_than_it_allows_on_postgresql",
    ) {
        return;
    }
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let schema = Schema::new();
    let url = schema.url();
    let start = |name: &str| {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, format!("host_name = \"{name}\"\nlease = \"2s\"\n")).unwrap();
        Server::start(
            &dir.path().join(name),
            plugins.path(),
            &["--config", config.to_str().unwrap(), "--store-url", &url],
        )
    };
    let mut hosts = [start("a"), start("b"), start("c")];
    let set = hosts[0].put("/v1/limits/queue/limited", &json!({"concurrency": 2}));
    assert_eq!(set.status, 200, "{set:?}");
    let jobs: Vec<Value> = (0..16)
        .map(|_| json!({"job": "sum", "queue": "limited", "input": {"n": 1, "sleep_ms": 300}, "max_attempts": MANY}))
        .collect();
    let made = hosts[0].post("/v1/jobs/batch", &json!({"jobs": jobs}));
    let ids = ids(&made.body);
    // Sample the database itself, every host's jobs, while hosts are killed and restarted.
    let sampler = std::thread::spawn({
        let schema_url = url.clone();
        move || {
            let mut client = postgres::Client::connect(&schema_url, postgres::NoTls).unwrap();
            let mut most = 0i64;
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let row = client.query_one(
                    "SELECT count(*) FILTER (WHERE status = 'processing'), count(*) FILTER (WHERE status = 'completed') FROM jobs WHERE queue = 'limited'", &[]).unwrap();
                most = most.max(row.get::<_, i64>(0));
                if row.get::<_, i64>(1) == 16 || Instant::now() > deadline {
                    return most;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    for round in 0..3 {
        // Kill a host while jobs run, and start it again.
        let victim = round % 3;
        let before = ids.iter().filter(|id| hosts[1].job(id)["status"] == "completed").count();
        let deadline = Instant::now() + LONG;
        while ids.iter().filter(|id| hosts[1].job(id)["status"] == "completed").count() == before
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        hosts[victim].kill();
        hosts[victim] = start(["a", "b", "c"][victim]);
    }
    let most = sampler.join().unwrap();
    for id in &ids {
        assert_eq!(hosts[0].wait_finished(id, LONG)["status"], "completed");
    }
    assert!(most <= 2, "{most} ran at once under a limit of 2");
    assert_eq!(most, 2, "the limit's two places were used");
}

#[test]
fn a_host_killed_under_a_concurrency_limit_never_runs_more_than_it_allows_on_the_embedded_store() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let start = || Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let mut server = start();
    assert_eq!(server.put("/v1/limits/queue/limited", &json!({"concurrency": 2})).status, 200);
    let jobs: Vec<Value> = (0..12)
        .map(|_| json!({"job": "sum", "queue": "limited", "input": {"n": 1, "sleep_ms": 300}, "max_attempts": MANY}))
        .collect();
    let ids = ids(&server.post("/v1/jobs/batch", &json!({"jobs": jobs})).body);
    let mut most = 0;
    for _ in 0..3 {
        // Sample until one more completes, then kill the host and start it on the same store.
        let done = |s: &Server| ids.iter().filter(|id| s.job(id)["status"] == "completed").count();
        let before = done(&server);
        most = most.max(most_running(&server, "limited", || done(&server) > before));
        server.kill();
        server = start();
    }
    most = most.max(most_running(&server, "limited", || {
        ids.iter().all(|id| server.job(id)["status"] == "completed")
    }));
    assert_eq!(most, 2, "at most two at once across restarts, and two did run at once");
    assert_eq!(server.get("/v1/limits").body.as_array().unwrap().len(), 1, "the limit outlives the crash");
}

#[test]
fn a_jobs_dependents_are_paged_and_a_needed_parent_is_kept_whatever_their_number() {
    let (dir, plugins) = (TempDir::new().unwrap(), plugins());
    let server = Server::start(&dir.path().join("data"), plugins.path(), &["--paused"]);
    let parent = server.add("echo", json!(1));
    let jobs: Vec<Value> = (0..1001)
        .map(|n| json!({"job": "echo", "input": n, "depends_on": [{"id": parent, "on_failure": "run"}]}))
        .collect();
    let made = server.post("/v1/jobs/batch", &json!({"jobs": jobs}));
    assert_eq!(made.status, 201, "{made:?}");
    let made = ids(&made.body);
    let first = server.get(&format!("/v1/jobs/{parent}/dependents"));
    let listed: Vec<&str> =
        first.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, made[..1000]);
    let next = first.body["next"].as_str().expect("a next page").to_owned();
    let rest = server.get(&format!("/v1/jobs/{parent}/dependents?after={next}"));
    let listed: Vec<&str> =
        rest.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!((listed, rest.body["next"].is_null()), (vec![made[1000].as_str()], true));
    let bad = server.get(&format!("/v1/jobs/{parent}/dependents?after=x"));
    assert_eq!((bad.status, bad.code()), (400, "invalid_request"), "{bad:?}");

    // The parent, cancelled, is still needed by the last of them alone (queued, it reads the
    // parent's outcome when it runs): it cannot be removed.
    assert_eq!(server.post_empty(&format!("/v1/jobs/{parent}/cancel")).status, 200);
    for id in &made[..1000] {
        assert_eq!(server.post_empty(&format!("/v1/jobs/{id}/cancel")).status, 200);
    }
    let removed = server.delete(&format!("/v1/jobs/{parent}"));
    assert_eq!((removed.status, removed.code()), (409, "invalid_transition"), "{removed:?}");
    assert!(removed.text.contains(&made[1000]), "{removed:?}");
}
