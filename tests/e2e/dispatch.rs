//! How jobs reach workers, against the real `jobhost serve` with worker processes: no job waits
//! behind another while a place is free elsewhere, a burst gets its workers at once, a stop
//! gives back what has not started, and `started_at` is when a job really started.

use std::fs;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use jobhost_tests::{wait_for_condition, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

fn serve(dir: &TempDir, config: &str) -> (Server, TempDir) {
    let plugins = jobhost_tests::plugin_dir(&["sleep", "echo"]);
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, config).unwrap();
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", file.to_str().unwrap()]);
    (server, plugins)
}

/// Adds `inputs` as `sleep` jobs in one batch (one transaction, one wake): their ids.
fn add_sleeps(server: &Server, inputs: &[f64]) -> Vec<String> {
    let jobs: Vec<Value> = inputs.iter().map(|s| json!({"job": "sleep", "input": s})).collect();
    let added = server.post("/v1/jobs/batch", &json!({ "jobs": jobs }));
    assert_eq!(added.status, 201, "{added:?}");
    added.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect()
}

fn status(server: &Server, id: &str) -> String {
    server.job(id)["status"].as_str().unwrap().to_owned()
}

fn time(job: &Value, field: &str) -> DateTime<FixedOffset> {
    let text = job[field].as_str().unwrap_or_else(|| panic!("no {field}: {job}"));
    DateTime::parse_from_rfc3339(text).unwrap()
}

fn cancel_all(server: &Server, ids: &[String]) {
    for id in ids {
        server.post_empty(&format!("/v1/jobs/{id}/cancel"));
    }
}

#[test]
fn short_jobs_never_wait_behind_long_ones_while_a_place_is_free() {
    let dir = TempDir::new().unwrap();
    let (server, _plugins) = serve(&dir, "[default_queue]\nconcurrency = 4\n");
    // Three long jobs among 27 short ones: three places stay taken, the fourth must run every
    // short job, whatever worker each long job landed on.
    let inputs: Vec<f64> = (0..30).map(|i| if i % 10 == 0 { 600.0 } else { 0.05 }).collect();
    let ids = add_sleeps(&server, &inputs);
    let (long, short): (Vec<_>, Vec<_>) = ids.iter().cloned().enumerate().partition(|(i, _)| i % 10 == 0);
    for (_, id) in &short {
        let job = server.wait_finished(id, LONG);
        assert_eq!(job["status"], "completed", "{job}");
    }
    for (_, id) in &long {
        assert_eq!(status(&server, id), "processing", "the long jobs still run");
    }
    let long: Vec<String> = long.into_iter().map(|(_, id)| id).collect();
    cancel_all(&server, &long);
    for id in &long {
        assert_eq!(server.wait_finished(id, LONG)["status"], "cancelled");
    }
}

#[test]
fn a_burst_onto_an_idle_queue_runs_at_its_full_concurrency() {
    let dir = TempDir::new().unwrap();
    let (server, _plugins) = serve(&dir, "max_workers = 8\n[default_queue]\nconcurrency = 8\n");
    let ids = add_sleeps(&server, &[600.0; 8]);
    wait_for_condition(LONG, "all 8 jobs processing at once", || {
        ids.iter().all(|id| status(&server, id) == "processing")
    });
    // A job is `processing` once claimed; its worker may still be starting (a loaded
    // machine). Every one of the 8 must come to run at once, each on a worker of its own.
    wait_for_condition(LONG, "8 workers running a job each", || {
        let workers = server.get("/v1/workers").body;
        let running: Vec<&Value> =
            workers.as_array().unwrap().iter().filter(|w| w["state"] == "running").collect();
        let mut jobs: Vec<&str> = running.iter().filter_map(|w| w["job"].as_str()).collect();
        jobs.sort_unstable();
        jobs.dedup();
        running.len() == 8 && jobs.len() == 8
    });
    assert!(ids.iter().all(|id| status(&server, id) == "processing"), "all 8 still processing");
    cancel_all(&server, &ids);
    for id in &ids {
        assert_eq!(server.wait_finished(id, LONG)["status"], "cancelled");
    }
}

#[test]
fn sigterm_gives_back_every_job_not_started_and_lets_the_running_one_finish() {
    let dir = TempDir::new().unwrap();
    let config = "shutdown_timeout = \"60s\"\n[default_queue]\nconcurrency = 1\n";
    let (mut server, _plugins) = serve(&dir, config);
    let mut inputs = vec![3.0];
    inputs.extend([0.2; 10]);
    let ids = add_sleeps(&server, &inputs);
    server.wait_until(&ids[0], LONG, |j| j["status"] == "processing");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());
    drop(server);

    let (server, _plugins) = serve(&dir, "[default_queue]\nautostart = false\n");
    let first = server.job(&ids[0]);
    assert_eq!(
        (first["status"].as_str(), first["attempts"].as_u64()),
        (Some("completed"), Some(1)),
        "{first}"
    );
    for id in &ids[1..] {
        let job = server.job(id);
        // Not started after the signal, and its attempt not counted.
        assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");
        assert!(job["started_at"].is_null(), "{job}");
    }
}

#[test]
fn started_at_is_when_a_job_started_not_when_it_was_claimed() {
    let dir = TempDir::new().unwrap();
    // One at a time, with claims that take several jobs under backlog: each job waits for the
    // one before it after its claim.
    let (server, _plugins) = serve(&dir, "claim_batch = 8\n[default_queue]\nconcurrency = 1\n");
    let ids = add_sleeps(&server, &[0.2; 12]);
    let jobs: Vec<Value> = ids.iter().map(|id| server.wait_finished(id, LONG)).collect();
    // One at a time, each sleeping 200 ms: a job starts at least 200 ms after the one before
    // started, however late the outcomes are recorded (`finished_at` is when the recorder got
    // to it, on a loaded machine well after the run). A start recorded at the claim would put
    // the eight jobs of a claim within a few milliseconds of each other.
    let run = chrono::Duration::milliseconds(200);
    for pair in jobs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(after["status"], "completed", "{after}");
        assert!(
            time(after, "started_at") >= time(before, "started_at") + run,
            "job {} started before job {} had run: {after} {before}",
            after["id"],
            before["id"]
        );
    }
}

/// The worker processes of the server under test.
fn workers(server: &Server) -> Vec<i32> {
    let workers = server.get("/v1/workers").body;
    workers.as_array().unwrap().iter().filter_map(|w| w["pid"].as_i64()).map(|p| p as i32).collect()
}

#[test]
fn a_job_waiting_behind_a_long_one_is_cancelled_at_once() {
    let dir = TempDir::new().unwrap();
    // One place: under backlog the worker sends the next job ahead to its worker process and
    // keeps more claimed; none of them may wait for the long job to end its cancel.
    let (server, _plugins) = serve(&dir, "[default_queue]\nconcurrency = 1\n");
    let ids = add_sleeps(&server, &[600.0, 0.1, 0.1, 0.1, 0.1]);
    server.wait_until(&ids[0], LONG, |j| j["status"] == "processing");
    wait_for_condition(LONG, "the next job claimed behind the long one", || {
        status(&server, &ids[1]) == "processing"
    });
    for id in &ids[1..] {
        server.post_empty(&format!("/v1/jobs/{id}/cancel"));
    }
    for id in &ids[1..] {
        let job = server.wait_finished(id, LONG);
        // Within a minute: not after the 600 s job.
        assert_eq!(job["status"], "cancelled", "{job}");
        assert_eq!(job["result"], Value::Null, "it never ran: {job}");
    }
    assert_eq!(status(&server, &ids[0]), "processing", "the long job still runs");
    cancel_all(&server, &ids[..1]);
    assert_eq!(server.wait_finished(&ids[0], LONG)["status"], "cancelled");
}

#[test]
fn a_worker_process_killed_costs_its_running_job_and_not_the_job_sent_ahead_to_it() {
    let dir = TempDir::new().unwrap();
    let (server, _plugins) = serve(&dir, "[default_queue]\nconcurrency = 1\n");
    let ids = add_sleeps(&server, &[600.0, 0.1, 0.1, 0.1]);
    server.wait_until(&ids[0], LONG, |j| j["status"] == "processing");
    wait_for_condition(LONG, "the next job claimed behind the long one", || {
        status(&server, &ids[1]) == "processing"
    });
    for pid in workers(&server) {
        // SAFETY: kill(2) on a worker process of the server under test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let killed = server.wait_until(&ids[0], LONG, |j| !j["errors"].as_array().unwrap().is_empty());
    assert!(killed["errors"][0].as_str().unwrap().contains("SIGKILL"), "{killed}");
    for id in &ids[1..] {
        let job = server.wait_finished(id, LONG);
        // Each ran once, on the next worker process: the death charged none of them.
        assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("completed"), Some(1)), "{job}");
        assert!(job["errors"].as_array().unwrap().is_empty(), "{job}");
    }
    cancel_all(&server, &ids[..1]);
    server.wait_finished(&ids[0], LONG);
}

#[test]
fn workers_claiming_at_once_keep_no_more_jobs_claimed_ahead_than_the_claim_window() {
    let dir = TempDir::new().unwrap();
    let config = "max_workers = 8\nclaim_batch = 64\n[default_queue]\nconcurrency = 8\n";
    let (server, _plugins) = serve(&dir, config);
    let ids = add_sleeps(&server, &[0.01; 3000]);
    let last = ids.last().unwrap().clone();
    // The jobs claimed ahead of the workers stay within the claim window: two `claim_batch`
    // (one waiting, the next being claimed; 10 ms jobs at concurrency 8 start 800 a second at
    // most: about 20 per 25 ms once the window is full, 56 in the first 100 ms while it fills,
    // too slow for the pace to raise the cap), plus at most one per worker taken back
    // from its worker process. Eight workers each claiming a whole batch reached 330–490.
    let bound = 2 * 64 + 8;
    let mut most = 0;
    wait_for_condition(LONG * 3, "the drain", || {
        let queues = server.get("/v1/queues").body;
        let queue =
            queues.as_array().unwrap().iter().find(|q| q["name"] == "default").cloned().unwrap_or_default();
        most = most.max(queue["claimed_ahead"].as_u64().unwrap_or(0));
        status(&server, &last) == "completed"
    });
    assert!(most <= bound, "{most} jobs claimed ahead at once, above {bound}");
    assert!(most > 8, "jobs were claimed ahead under the backlog ({most})");
}
