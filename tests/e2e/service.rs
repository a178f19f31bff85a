//! `jobhost serve` as a service, driven the way operators and applications do: the CLI client
//! against a real server, signals (SIGKILL, SIGTERM, SIGHUP), and the config file.

use std::time::{Duration, Instant};

use jobhost_tests::{
    copy_plugin, jobhost, jobhost_cmd, library_file, plugin_dir, CliOutput, Server, EXAMPLE_PLUGINS,
};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(30);

/// Runs a client command against `server`.
fn cli(server: &Server, args: &[&str]) -> CliOutput {
    jobhost_cmd()
        .args(args)
        .env("JOBHOST_URL", &server.url)
        .env_remove("JOBHOST_TOKEN")
        .output()
        .unwrap()
        .into()
}

#[test]
fn m01_remote_readme_scenario_through_the_cli() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "[queues.default]\nconcurrency = 2\n").unwrap();
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", config.to_str().unwrap()]);

    let echo = cli(&server, &["add", "echo", r#"{"foo":"bar"}"#, "--wait"]);
    assert_eq!((echo.code, echo.stdout.as_str()), (0, "{\"foo\":\"bar\"}\n"), "{echo:?}");

    let error = cli(&server, &["add", "error", "--wait"]);
    assert_eq!(error.code, 1, "{error:?}");
    assert!(
        error.stderr.contains("failed after 1 attempt(s)") && error.stderr.contains("] An error occurred."),
        "{error:?}"
    );

    let fatal = cli(&server, &["add", "fatal", "--wait", "--json"]);
    assert_eq!(fatal.code, 1, "{fatal:?}");
    let fatal: Value = serde_json::from_str(&fatal.stdout).unwrap();
    assert_eq!((fatal["status"].as_str(), fatal["attempts"].as_u64()), (Some("error"), Some(3)));
    let id = fatal["id"].as_str().unwrap();
    let errors = cli(&server, &["errors", id]);
    assert_eq!(errors.stdout.lines().count(), 3, "{errors:?}");
    assert!(errors.stdout.lines().all(|l| l.ends_with("] An error occurred.")), "{errors:?}");

    // A stopped queue keeps jobs queued; a queued job can be cancelled.
    let stop = cli(&server, &["queue", "stop", "default"]);
    assert_eq!(stop.code, 0, "{stop:?}");
    let said = stop.stdout.trim();
    assert!(
        said.starts_with("queue default: paused by ") && said.ends_with(" (0 queued, 0 running)"),
        "{stop:?}"
    );
    let added = cli(&server, &["add", "echo", "1"]);
    let queued = added.stdout.trim().to_owned();
    let cancel_me = cli(&server, &["add", "echo", "2"]).stdout.trim().to_owned();
    jobhost_tests::holds_for(Duration::from_millis(300), "a stopped queue keeps its job queued", || {
        cli(&server, &["status", &queued]).stdout.contains("status     queued")
    });
    let cancelled = cli(&server, &["cancel", &cancel_me]);
    assert_eq!(cancelled.stdout.trim(), format!("job {cancel_me} cancelled"));
    let result = cli(&server, &["result", &cancel_me]);
    assert_eq!(result.code, 2, "a cancelled job's result exits 2: {result:?}");
    let queues = cli(&server, &["queues"]);
    assert!(
        queues
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(8)
            .eq(["default", "paused", "2", "1", "0", "0", "2", "by"]),
        "{queues:?}"
    );

    let list = cli(&server, &["list", "--status", "error"]);
    assert_eq!(list.stdout.lines().count(), 3, "header and two failed jobs: {list:?}");
    let removed = cli(&server, &["remove"]);
    assert_eq!(removed.stdout.trim(), "removed: completed 1, error 2, cancelled 1", "{removed:?}");
    let left = cli(&server, &["list", "--json"]);
    let left: Value = serde_json::from_str(&left.stdout).unwrap();
    assert_eq!(left["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(left["jobs"][0]["id"].as_str(), Some(queued.as_str()));

    // Start the queue again: the queued job runs; retry and result.
    cli(&server, &["queue", "start", "default"]);
    server.wait_finished(&queued, LONG);
    assert_eq!(cli(&server, &["result", &queued]).stdout, "1\n");
    let retry = cli(&server, &["retry", &queued]);
    assert_eq!(retry.code, 1, "a completed job cannot be retried: {retry:?}");
    assert!(retry.stderr.contains("(invalid_transition)"), "{retry:?}");
    let factories = cli(&server, &["factories"]);
    assert_eq!(factories.stdout.lines().count(), 5, "{factories:?}");
    let unknown = cli(&server, &["add", "nope"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("known factories: echo, error, fatal, sleep (unknown_job)"),
        "{unknown:?}"
    );
}

#[test]
fn no_server_is_one_clear_line_and_exit_3() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out: CliOutput = jobhost_cmd()
        .args(["add", "echo", "{}", "--wait"])
        .env("JOBHOST_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("cannot reach the jobhost server at http://127.0.0.1:"), "{out:?}");
    assert!(out.stderr.contains("is `jobhost serve` running?"), "{out:?}");
    let usage = jobhost(["add"]);
    assert_eq!(usage.code, 3, "{usage:?}");
}

#[test]
fn sigkill_while_jobs_run_loses_nothing_acknowledged() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let mut server = Server::start(&data, plugins.path(), &[]);
    let ids: Vec<String> = (0..12).map(|_| server.add("sleep", json!(0.4))).collect();
    server.wait_until(&ids[0], LONG, |job| job["status"] == "processing");
    let running: Vec<String> =
        ids.iter().filter(|id| server.job(id)["status"] == "processing").cloned().collect();
    assert!(!running.is_empty());
    server.signal(libc::SIGKILL);
    assert_eq!(server.wait_exit(LONG), None, "killed by the signal");

    let server = Server::start(&data, plugins.path(), &["--paused"]);
    let page = server.get("/v1/jobs?limit=100").body;
    let stored: Vec<&str> =
        page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(stored, ids, "every acknowledged job is there");
    for id in &running {
        let job = server.job(id);
        // Unless it completed just before the kill, the interrupted attempt is counted.
        if job["status"] != "completed" {
            assert_eq!(
                (job["status"].as_str(), job["attempts"].as_u64()),
                (Some("queued"), Some(1)),
                "{job}"
            );
            assert!(job["errors"][0]
                .as_str()
                .unwrap()
                .ends_with("worker lost: host stopped while the job was running"));
        }
    }
    server.post_empty("/v1/queues/default/start");
    for id in &ids {
        assert_eq!(server.wait_finished(id, LONG)["status"], "completed");
    }
}

#[test]
fn sigkill_loop_during_batched_drains_loses_nothing_acknowledged() {
    // Under a backlog a queue claims up to `claim_batch` jobs in one transaction and holds
    // them before they run, and outcomes share transactions: each kill lands with claimed
    // jobs in hand and outcomes in flight. Every acknowledged job must still be stored and
    // end `completed` (a job whose outcome was lost runs again; attempts allow for that).
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut killed_mid_drain = 0;
    for round in 0..4 {
        let mut server = Server::start(&data, plugins.path(), &[]);
        let jobs: Vec<Value> = (0..2000)
            .map(|i| json!({"job": "echo", "input": {"round": round, "i": i}, "max_attempts": 10}))
            .collect();
        let answer = server.post("/v1/jobs/batch", &json!({ "jobs": jobs }));
        assert_eq!(answer.status, 201, "{}", answer.body);
        let batch: Vec<String> = answer.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(batch.len(), 2000);
        // Single submissions during the drain, each acknowledged before the next.
        for i in 0..5 {
            acknowledged.push(server.add("echo", json!({"round": round, "single": i})));
        }
        server.wait_until(&batch[0], LONG, |job| job["status"] == "completed");
        let last = batch.last().unwrap().clone();
        acknowledged.extend(batch);
        server.signal(libc::SIGKILL);
        assert_eq!(server.wait_exit(LONG), None, "killed by the signal");
        let server = Server::start(&data, plugins.path(), &["--paused"]);
        if server.job(&last)["status"] == "queued" {
            killed_mid_drain += 1;
        }
        drop(server);
    }
    assert!(killed_mid_drain >= 2, "only {killed_mid_drain} of 4 kills landed mid-drain");

    let server = Server::start(&data, plugins.path(), &[]);
    let mut ran_again = 0;
    for id in &acknowledged {
        let job = server.wait_finished(id, LONG);
        assert_eq!(job["status"], "completed", "{job}");
        ran_again += usize::from(job["attempts"].as_u64().unwrap() > 1);
    }
    let mut stored: Vec<String> = Vec::new();
    let mut path = "/v1/jobs?limit=500".to_owned();
    loop {
        let page = server.get(&path).body;
        stored.extend(page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/jobs?limit=500&after={next}"),
            None => break,
        }
    }
    let mut expected = acknowledged.clone();
    expected.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(stored, expected, "exactly the acknowledged jobs, each once");
    eprintln!("{} acknowledged jobs, 4 kills, {ran_again} ran again", acknowledged.len());
}

#[test]
fn sigterm_lets_a_running_job_finish_or_releases_it_after_the_timeout() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);

    // Within the shutdown timeout: the job completes before the process exits, exit code 0.
    let mut server = Server::start(&data, plugins.path(), &[]);
    let finishes = server.add("sleep", json!(1.0));
    server.wait_until(&finishes, LONG, |job| job["status"] == "processing");
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(20));
    assert!(server.log().contains("SIGTERM: shutting down"), "{}", server.log());

    // A shorter timeout than the job: it goes back to `queued` (attempt not counted) and
    // completes after the restart.
    let mut server = Server::start(&data, plugins.path(), &["--shutdown-timeout", "200ms"]);
    assert_eq!(server.job(&finishes)["status"], "completed", "finished before the first exit");
    let released = server.add("sleep", json!(2.0));
    server.wait_until(&released, LONG, |job| job["status"] == "processing");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());
    assert!(server.log().contains("1 job(s) released back to queued"), "{}", server.log());

    let server = Server::start(&data, plugins.path(), &["--paused"]);
    let job = server.job(&released);
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");
    assert_eq!(job["errors"], json!([]));
    server.post_empty("/v1/queues/default/start");
    assert_eq!(server.wait_finished(&released, LONG)["status"], "completed");
}

/// A queue that is not configured exists only through its jobs: after a restart its queued
/// jobs run without waiting for another job to be added to it.
#[test]
fn queued_jobs_of_an_unconfigured_queue_run_after_a_restart() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let mut server = Server::start(&data, plugins.path(), &["--paused"]);
    let id = server.post("/v1/jobs", &json!({"job": "echo", "queue": "overnight", "input": 7})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());

    let server = Server::start(&data, plugins.path(), &[]);
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed", "{}", server.log());
    let queues = server.get("/v1/queues").body;
    let overnight = queues.as_array().unwrap().iter().find(|q| q["name"] == "overnight").unwrap();
    assert_eq!(overnight["processing"], true, "{queues}");
}

#[test]
fn sighup_registers_a_plugin_copied_in_after_start() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let before = server.post("/v1/jobs", &json!({"job": "sleep", "input": 0}));
    assert_eq!((before.status, before.code()), (400, "unknown_job"));

    copy_plugin("sleep", plugins.path(), &library_file("sleep"));
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + LONG;
    loop {
        let factories = server.get("/v1/factories").body;
        if factories.as_array().unwrap().iter().any(|f| f["name"] == "sleep") {
            break;
        }
        assert!(Instant::now() < deadline, "sleep never registered: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = server.add("sleep", json!(0));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    assert_eq!(
        server.add("echo", json!(1)),
        (id.parse::<u64>().unwrap() + 1).to_string(),
        "echo still there"
    );
}

#[test]
fn config_file_errors_name_the_key_and_the_example_is_valid() {
    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[queues.default]\nconcurrency = 0\n").unwrap();
    let out = jobhost(["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("bad.toml") && out.stderr.contains("concurrency"), "{out:?}");

    std::fs::write(&bad, "listen = \"127.0.0.1:1\"\nworkers = 4\n").unwrap();
    let out = jobhost(["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("unknown field `workers`"), "{out:?}");

    let file = dir.path().join("paths.toml");
    std::fs::write(&file, "[worker_sandbox]\nwrite_paths = [\"/no/such/dir\"]\n").unwrap();
    let out = jobhost(["serve", "--config", file.to_str().unwrap(), "--check-config"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("worker_sandbox.write_paths: /no/such/dir does not exist"), "{out:?}");

    let missing = jobhost(["serve", "--config", dir.path().join("nope.toml").to_str().unwrap()]);
    assert_eq!(missing.code, 3);
    assert!(missing.stderr.contains("cannot read config file"), "{missing:?}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../host/jobhost.example.toml");
    let ok = jobhost(["serve", "--config", example, "--listen", "127.0.0.1:9", "--check-config"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("127.0.0.1:9"), "flags override the file: {ok:?}");
}

#[test]
fn scheduling_through_the_cli() {
    // `cron next` is local: no server needed.
    let next = jobhost([
        "cron",
        "next",
        "0 9 * * MON-FRI",
        "--after",
        "2026-11-20T10:00:00Z",
        "-n",
        "3",
        "--tz",
        "Europe/Zurich",
    ]);
    assert_eq!(next.code, 0, "{next:?}");
    assert_eq!(
        next.stdout,
        "2026-11-23T08:00:00.000000+00:00\n2026-11-24T08:00:00.000000+00:00\n2026-11-25T08:00:00.000000+00:00\n"
    );
    let bad = jobhost(["cron", "next", "* * 0 * *"]);
    assert_eq!(bad.code, 3, "{bad:?}");
    assert!(bad.stderr.contains("field 3 (day of month) `0`"), "{bad:?}");

    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);

    let held = cli(&server, &["add", "echo", "1", "--hold", "--unique-key", "nightly"]);
    let id = held.stdout.trim().to_owned();
    assert!(cli(&server, &["status", &id]).stdout.contains("status     held"));
    let same = cli(&server, &["add", "echo", "2", "--unique-key", "nightly"]);
    assert_eq!(same.stdout.trim(), id, "{same:?}");
    assert!(same.stderr.contains("already holds that unique key"), "{same:?}");
    assert_eq!(cli(&server, &["start", &id]).stdout.trim(), format!("job {id} queued"));
    server.wait_finished(&id, LONG);

    let started = Instant::now();
    let delayed = cli(&server, &["add", "echo", "\"later\"", "--delay", "1s", "--wait"]);
    assert_eq!((delayed.code, delayed.stdout.as_str()), (0, "\"later\"\n"), "{delayed:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    let added = cli(
        &server,
        &["schedule", "add", "echo", r#"{"a":1}"#, "--cron", "*/5 * * * *", "--tz", "Europe/Zurich"],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let schedule = added.stdout.split_whitespace().next().unwrap().to_owned();
    let list = cli(&server, &["schedule", "list"]);
    assert!(list.stdout.lines().nth(1).unwrap().contains("*/5 * * * * (Europe/Zurich)"), "{list:?}");
    let updated =
        cli(&server, &["schedule", "update", &schedule, "--cron", "0 4 * * *", "--active", "false"]);
    assert!(
        updated.stdout.contains("when      0 4 * * * (Europe/Zurich)")
            && updated.stdout.contains("active    false"),
        "{updated:?}"
    );
    let shown = cli(&server, &["schedule", "show", &schedule, "--json"]);
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!((shown["cron"].as_str(), shown["active"].as_bool()), (Some("0 4 * * *"), Some(false)));
    let refused = cli(&server, &["schedule", "add", "echo", "--cron", "* * * * sunday-ish"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("field 5 (day of week)"), "{refused:?}");
    let removed = cli(&server, &["schedule", "remove", &schedule]);
    assert_eq!(removed.stdout.trim(), format!("schedule {schedule} removed"));
    let gone = cli(&server, &["schedule", "show", &schedule]);
    assert!(gone.code == 1 && gone.stderr.contains("(unknown_schedule)"), "{gone:?}");
}

#[test]
fn roles_split_the_scheduler_from_the_workers() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let delay_item = json!({"job": "echo", "input": 1, "delay_seconds": 0.2});

    // Scheduler only: the schedule fires, the job it makes waits for a worker.
    let mut server = Server::start(&data, plugins.path(), &["--role", "scheduler"]);
    let id = server.post("/v1/schedules", &delay_item).body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + LONG;
    while server.get(&format!("/v1/schedules/{id}")).body["runs"] != 1 {
        assert!(Instant::now() < deadline, "the scheduler never fired");
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = server.get(&format!("/v1/schedules/{id}")).body["last_job_id"].as_str().unwrap().to_owned();
    jobhost_tests::holds_for(Duration::from_millis(300), "no workers in a scheduler-only process", || {
        server.job(&job)["status"] == "queued"
    });
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0));

    // Workers only: the job runs, a new schedule never fires.
    let server = Server::start(&data, plugins.path(), &["--role", "worker"]);
    assert_eq!(server.wait_finished(&job, LONG)["status"], "completed");
    let id = server.post("/v1/schedules", &delay_item).body["id"].as_str().unwrap().to_owned();
    // Its slot is due 0.2 s after creation; a scheduler would fire it in that time.
    jobhost_tests::holds_for(Duration::from_millis(1000), "no scheduler in a worker-only process", || {
        server.get(&format!("/v1/schedules/{id}")).body["runs"] == 0
    });
}

#[test]
fn add_batch_from_a_file_or_stdin() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &["--paused"]);
    let file = dir.path().join("jobs.jsonl");
    std::fs::write(&file, "{\"job\": \"echo\", \"input\": 1}\n\n{\"job\": \"echo\", \"input\": 2}\n")
        .unwrap();
    let added = cli(&server, &["add", "--batch", file.to_str().unwrap()]);
    assert_eq!((added.code, added.stdout.trim()), (0, "added 2 job(s): 1..2"), "{added:?}");

    let mut child = jobhost_cmd()
        .args(["add", "--batch", "-", "--json"])
        .env("JOBHOST_URL", &server.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"{\"job\": \"sleep\", \"input\": 0}\n")
        .unwrap();
    let out: CliOutput = child.wait_with_output().unwrap().into();
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), json!(["3"]), "{out:?}");

    std::fs::write(
        &file,
        "{\"job\": \"echo\"}\n{\"job\": \"nope\"}\n{\"job\": \"echo\", \"max_attempts\": 0}\n",
    )
    .unwrap();
    let refused = cli(&server, &["add", "--batch", file.to_str().unwrap()]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("line 2: unknown job factory `nope`"), "{refused:?}");
    assert!(refused.stderr.contains("line 3: invalid max_attempts"), "{refused:?}");
    std::fs::write(&file, "{\"job\": \"echo\"}\nnot json\n").unwrap();
    let malformed = cli(&server, &["add", "--batch", file.to_str().unwrap()]);
    assert_eq!(malformed.code, 3, "{malformed:?}");
    assert!(malformed.stderr.contains("jobs.jsonl line 2:"), "{malformed:?}");
    assert_eq!(
        server.get("/v1/jobs").body["jobs"].as_array().unwrap().len(),
        3,
        "nothing from the refused files"
    );
}

/// Bytes the process has passed to write(2) and its kin, whatever the file system.
fn bytes_written(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("wchar:")).and_then(|v| v.trim().parse().ok()).expect("wchar")
}

#[test]
fn an_idle_server_stops_writing_after_a_burst() {
    // sled's own flusher cleans segments between flushes; after a burst like this one it went
    // on relocating them for as long as the process lived (10 MB/s measured, on a host with
    // nothing to do).
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let batch: Vec<Value> = (0..10_000).map(|i| json!({"job": "echo", "input": i})).collect();
    for _ in 0..4 {
        assert_eq!(server.post("/v1/jobs/batch", &json!({ "jobs": batch })).status, 201);
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let queues = server.get("/v1/queues").body;
        if queues[0]["queued"] == 0 && queues[0]["running"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "40,000 echo jobs not drained in 300 s: {queues}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Outcomes reach the disk within the flush interval (100 ms); then nothing is left to do:
    // the server goes quiet (a window of 3 s with under 1 MB written) and stays so. The
    // regression this guards against kept writing 5-10 MB/s for as long as the server lived.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written;
    loop {
        let before = bytes_written(server.pid());
        std::thread::sleep(Duration::from_secs(3));
        written = bytes_written(server.pid()) - before;
        if written < 1024 * 1024 || Instant::now() > deadline {
            break;
        }
    }
    assert!(written < 1024 * 1024, "an idle server still wrote {written} bytes in 3 s after a minute");
}

/// The figures a `jobhost bench` report must hold, each a number.
fn bench_figure(report: &Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in {report}"))
}

#[test]
fn bench_in_process_reports_its_figures_and_the_store_baseline() {
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let out = jobhost([
        "bench",
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
        "--jobs",
        "300",
        "--submitters",
        "4",
        "--latency-jobs",
        "20",
        "--baseline",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    for key in [
        "submit_jobs_per_s",
        "batch_submit_jobs_per_s",
        "drain_jobs_per_s",
        "baseline_submit_jobs_per_s",
        "baseline_drain_jobs_per_s",
        "drain_ratio",
        "submit_ratio",
        "store_bytes",
        "peak_rss_bytes",
    ] {
        assert!(bench_figure(&report, key) > 0.0, "{key} in {report}");
    }
    assert_eq!(report["latency_jobs"], 20, "{report}");
    // Each job is acknowledged before it completes, so every order statistic of the first is
    // at most the same one of the second.
    let (ack50, ack99) =
        (bench_figure(&report, "submit_latency_p50_ms"), bench_figure(&report, "submit_latency_p99_ms"));
    let (p50, p99, max) = (
        bench_figure(&report, "latency_p50_ms"),
        bench_figure(&report, "latency_p99_ms"),
        bench_figure(&report, "latency_max_ms"),
    );
    assert!(0.0 < ack50 && ack50 <= p50 && ack99 <= p99 && p50 <= p99 && p99 <= max, "{report}");

    let bad = jobhost(["bench", "--plugin-dir", plugins.path().to_str().unwrap(), "--jobs", "0"]);
    assert_eq!(bad.code, 3, "{bad:?}");
    assert!(bad.stderr.contains("--jobs"), "{bad:?}");
}

#[test]
fn bench_against_a_server_runs_every_job_it_submits() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&EXAMPLE_PLUGINS);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let out = cli(
        &server,
        &["bench", "--server", &server.url, "--clients", "4", "--jobs", "100", "--latency-jobs", "10"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    // Over HTTP the bench knows no RSS or store size: it says nothing rather than zero.
    assert!(out.stdout.contains("against http://127.0.0.1:"), "{out:?}");
    assert!(out.stdout.contains("of which submit:"), "{out:?}");
    assert!(!out.stdout.contains("RSS") && !out.stdout.contains('?'), "{out:?}");
    // The bench's queue ran every job: 100 submitted one by one, 100 in a batch, 10 timed and
    // the one that made its queue. (Outcomes are counted just after they are stored, so the
    // last may lag a moment.)
    let all_counted = "jobhost_job_outcomes_total{factory=\"echo\",outcome=\"completed\"} 211";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut metrics = server.get("/metrics").text;
    while !metrics.contains(all_counted) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        metrics = server.get("/metrics").text;
    }
    assert!(metrics.contains(all_counted), "{metrics}");
    let queues = server.get("/v1/queues").body;
    let bench = queues.as_array().unwrap().iter().find(|q| q["name"].as_str().unwrap().starts_with("bench-"));
    assert_eq!(bench.map(|q| (&q["queued"], &q["running"])), Some((&json!(0), &json!(0))), "{queues}");
}

#[test]
fn serve_refuses_an_empty_token_file_and_an_open_address_without_a_token() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    // An empty token file is refused at start, naming the file.
    let empty = dir.path().join("empty-token");
    private_file(&empty, "  \n");
    let out = jobhost([
        "serve",
        "--token-file",
        empty.to_str().unwrap(),
        "--data-dir",
        dir.path().join("unused").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("empty-token is empty"), "{out:?}");

    // No token on a non-loopback address: refused unless --insecure-no-auth.
    let out = jobhost([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        dir.path().join("open").to_str().unwrap(),
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("refusing to listen on 0.0.0.0:0 without a token"), "{out:?}");
}

/// A file only its owner can read, as a token file must be.
fn private_file(path: &std::path::Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_served_token_is_required_by_the_real_binary() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let token_file = dir.path().join("token");
    private_file(&token_file, "s3cret\n");
    let extra = ["--token-file", token_file.to_str().unwrap()];
    let server = Server::start_with_token(&dir.path().join("data"), plugins.path(), &extra, Some("s3cret"));
    assert_eq!(server.add("echo", json!(1)), "1");
    let anonymous = server.with_token(None);
    assert_eq!(anonymous.get("/v1/jobs").status, 401);
    assert_eq!(anonymous.get("/v1/health").status, 200);
    // The start says auth is on, and that a 6-byte token is weak.
    let log = server.log();
    assert!(log.contains("auth bearer token"), "{log}");
    assert!(log.contains("is 6 bytes long; use at least 16"), "{log}");
    // The scheme is case-insensitive (RFC 7235).
    let lower = ureq::get(format!("{}/v1/jobs", server.url))
        .header("Authorization", "bearer s3cret")
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(lower.status().as_u16(), 200);
    // The CLI says where a token comes from.
    let out = cli(&server, &["list"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("set JOBHOST_TOKEN"), "{out:?}");
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "a-long-enough-secret-token").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = jobhost([
        "serve",
        "--token-file",
        token_file.to_str().unwrap(),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("is open to others (mode 0644)") && out.stderr.contains("chmod 600"),
        "{out:?}"
    );
}

#[test]
fn the_cli_takes_an_address_without_a_scheme_a_wait_limit_and_ctrl_c() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["sleep", "echo"]);
    // `serve --listen localhost:PORT` is an address too.
    let server = Server::start_listening(&dir.path().join("data"), plugins.path(), "localhost:0", &[], None);
    let bare = server.url.trim_start_matches("http://").to_owned();
    let out = jobhost_cmd().args(["add", "echo", "1", "--wait", "--server", &bare]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // What is not a server's address is a usage error (3) that says why, before any request.
    let with_path = format!("{}/dashboard", server.url);
    for (given, why) in [
        ("ftp://127.0.0.1:7878", "the server speaks http"),
        (with_path.as_str(), "without a path"),
        ("http://", "no host"),
    ] {
        let out = jobhost(["list", "--server", given]);
        assert_eq!(out.code, 3, "{given}: {out:?}");
        assert!(out.stderr.contains(why), "{given}: {out:?}");
    }
    // An expression that never fires is refused as the server refuses it.
    let out = jobhost(["cron", "next", "0 0 31 2 *"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("never matches a date"), "{out:?}");

    // A wait with a limit gives up, and says the job goes on.
    let out = cli(&server, &["add", "sleep", "5", "--wait", "--wait-timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("did not finish within 1s; it goes on"), "{out:?}");

    // Ctrl-C during a wait: the job goes on, and the message says how to cancel it.
    let waiting = jobhost_cmd()
        .args(["add", "sleep", "5", "--wait"])
        .env("JOBHOST_URL", &server.url)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its Ctrl-C handler is set before it sends the job: once the job runs, it is there.
    jobhost_tests::wait_for_condition(LONG, "the waited-for job runs", || {
        server.get("/v1/jobs/3").body["status"] == "processing"
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(waiting.id() as i32, libc::SIGINT) };
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("goes on") && stderr.contains("`jobhost cancel 3` stops it"), "{stderr}");
    assert_eq!(server.job("3")["status"], "processing");
}

#[test]
fn serve_refuses_a_lease_the_supervisor_could_not_keep_naming_the_key() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "lease = \"10ms\"\n").unwrap();
    let out = jobhost(["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("lease: at least 1s"), "{out:?}");
}

/// One GET over a fresh connection: the status and body, or `None` while nothing listens.
fn get_once(port: u16, path: &str) -> Option<(u16, Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = serde_json::from_str(text.split("\r\n\r\n").nth(1)?).unwrap_or(Value::Null);
    Some((status, body))
}

#[test]
fn while_it_opens_the_port_answers_503_opening_and_then_serves() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    // A plugin that hangs while loading holds the start for its load timeout.
    let hang = jobhost_tests::library_file("hang_at_load");
    std::fs::copy(jobhost_tests::artefacts().fixture("hang_at_load"), plugins.path().join(hang)).unwrap();
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "plugin_load_timeout = \"8s\"\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = jobhost_cmd()
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--plugin-dir")
        .arg(plugins.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (status, health) =
        jobhost_tests::wait_for_value(LONG, "the port answers", || get_once(port, "/v1/health"));
    // Well before the 8 s load timeout: the port was bound first.
    assert!(started.elapsed() < Duration::from_secs(6), "first answer after {:?}", started.elapsed());
    assert_eq!((status, health["status"].as_str()), (503, Some("opening")), "{health}");
    let (status, refused) = get_once(port, "/v1/jobs").unwrap();
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("unavailable")), "{refused}");
    jobhost_tests::wait_for_condition(LONG, "the server serves", || {
        get_once(port, "/v1/health").is_some_and(|(status, _)| status == 200)
    });
    assert!(started.elapsed() >= Duration::from_secs(7), "served before the probe ended");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
