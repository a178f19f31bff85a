//! Plugins in worker processes, against the real `jobhost serve` and a plugin that misbehaves
//! on purpose (`fixtures/misbehave.rs`): hangs that ignore their timeout or cancel, aborts,
//! segfaults, `exit(0)`, resource limits, shutdown with a stuck job, replacing a plugin file in
//! place and reloading, and duplicate factory names. The same stuck job with
//! `isolation = "none"` is reported rather than silently holding its slot.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use jobhost_tests::{artefacts, jobhost, library_file, wait_for_condition, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

/// A plugin directory with the example plugins named and the misbehaving fixture.
fn plugins_with_misbehave(examples: &[&str]) -> TempDir {
    let dir = jobhost_tests::plugin_dir(examples);
    fs::copy(artefacts().fixture("misbehave"), dir.path().join(library_file("misbehave"))).unwrap();
    dir
}

/// A server with `config` (TOML) on a fresh data directory.
fn serve(dir: &TempDir, plugins: &Path, config: &str) -> Server {
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, config).unwrap();
    Server::start(&dir.path().join("data"), plugins, &["--config", file.to_str().unwrap()])
}

fn add(server: &Server, body: Value) -> String {
    let answer = server.post("/v1/jobs", &body);
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["id"].as_str().unwrap().to_owned()
}

fn errors(job: &Value) -> Vec<String> {
    job["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect()
}

/// The pids of `parent`'s child processes.
fn children(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

fn alive(pid: i32) -> bool {
    // A zombie has been killed already; only a running (or sleeping) process counts.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn a_job_that_ignores_its_timeout_is_killed_after_the_grace_and_ends_in_error_after_its_attempts() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["echo"]);
    let server = serve(
        &dir,
        plugins.path(),
        "kill_grace = \"1s\"\n[retry]\nbase = \"100ms\"\n[default_queue]\nconcurrency = 2\n",
    );
    let started = Instant::now();
    let stubborn =
        add(&server, json!({"job": "stubborn", "input": 600, "timeout_seconds": 1, "max_attempts": 2}));
    // Meanwhile the other worker runs jobs as usual.
    let echo = server.add("echo", json!("beside"));
    assert_eq!(server.wait_finished(&echo, LONG)["status"], "completed");

    let done = server.wait_finished(&stubborn, LONG);
    let took = started.elapsed();
    assert_eq!((done["status"].as_str(), done["attempts"].as_u64()), (Some("error"), Some(2)), "{done}");
    for error in errors(&done) {
        assert!(error.ends_with("timed out after 1s (worker killed after 1s grace)"), "{error}");
    }
    // Two attempts of timeout + grace, a short retry delay, process starts: far below 600 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // A cancel reaches a job that ignores its flag too: it ends `cancelled` after the grace.
    let again = add(&server, json!({"job": "stubborn", "input": 600}));
    server.wait_until(&again, LONG, |j| j["status"] == "processing");
    let asked = Instant::now();
    assert_eq!(server.post_empty(&format!("/v1/jobs/{again}/cancel")).status, 200);
    assert_eq!(server.wait_finished(&again, LONG)["status"], "cancelled");
    assert!(asked.elapsed() < Duration::from_secs(15), "cancel took {:?}", asked.elapsed());
}

#[test]
fn an_abort_costs_only_its_own_job_and_the_host_never_restarts() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["sleep"]);
    let server = serve(&dir, plugins.path(), "[retry]\nbase = \"100ms\"\n[default_queue]\nconcurrency = 2\n");
    let pid = server.pid();
    let sleeper = server.add("sleep", json!(1.5));
    server.wait_until(&sleeper, LONG, |j| j["status"] == "processing");
    let poison = server.add("abort", Value::Null);

    let failed = server.wait_finished(&poison, LONG);
    assert_eq!(
        (failed["status"].as_str(), failed["attempts"].as_u64()),
        (Some("error"), Some(2)),
        "{failed}"
    );
    for error in errors(&failed) {
        assert!(error.ends_with("worker process killed by signal 6 (SIGABRT) while running"), "{error}");
    }
    let slept = server.wait_finished(&sleeper, LONG);
    assert_eq!(
        (slept["status"].as_str(), slept["attempts"].as_u64()),
        (Some("completed"), Some(1)),
        "{slept}"
    );
    assert!(errors(&slept).is_empty(), "{slept}");

    // Same host all along; the dead worker was replaced (visible to operators).
    assert_eq!(server.pid(), pid);
    assert_eq!(server.get("/v1/health").body["status"], "ok");
    let queues = server.get("/v1/queues").body;
    assert!(queues[0]["worker_restarts"].as_u64().unwrap() >= 2, "{queues}");
    let metrics = server.get("/metrics").text;
    assert!(metrics.contains("jobhost_worker_restarts_total{queue=\"default\"}"), "{metrics}");
}

#[test]
fn exit_0_and_a_segfault_are_counted_against_their_job_with_the_cause() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["echo"]);
    let server = serve(&dir, plugins.path(), "[default_queue]\nconcurrency = 1\n");
    let exits = add(&server, json!({"job": "exit", "input": 0, "max_attempts": 1}));
    let done = server.wait_finished(&exits, LONG);
    assert_eq!(done["status"], "error", "{done}");
    assert!(errors(&done)[0].ends_with("worker process exited with status 0 while running"), "{done}");

    let segv = add(&server, json!({"job": "segfault", "max_attempts": 1}));
    let done = server.wait_finished(&segv, LONG);
    assert!(
        errors(&done)[0].ends_with("worker process killed by signal 11 (SIGSEGV) while running"),
        "{done}"
    );

    // The host is up and its next worker runs jobs.
    let echo = server.add("echo", json!(1));
    assert_eq!(server.wait_finished(&echo, LONG)["status"], "completed");
}

#[test]
fn the_host_runs_no_plugin_code_and_worker_output_reaches_its_log() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "");
    let id = add(&server, json!({"job": "log_thread", "input": "hello from the worker"}));
    let done = server.wait_finished(&id, LONG);
    let worker_pid = done["result"].as_i64().unwrap();
    assert_ne!(worker_pid, i64::from(server.pid()), "the job ran in the host");
    assert!(children(server.pid()).contains(&(worker_pid as i32)), "the worker is the host's child");
    let deadline = Instant::now() + LONG;
    while !server.log().contains("from a plugin thread: hello from the worker") {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resource_limits_end_a_job_with_the_limit_named() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "[worker_limits]\naddress_space = \"512MiB\"\ncpu_time = \"1s\"\nopen_files = 64\n";
    let server = serve(&dir, plugins.path(), config);

    let big = add(&server, json!({"job": "allocate", "input": 2u64 << 30, "max_attempts": 1}));
    let done = server.wait_finished(&big, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("(worker_limits.address_space is 512 MiB)"), "{error}");

    let burn = add(&server, json!({"job": "burn", "input": 30, "max_attempts": 1}));
    let done = server.wait_finished(&burn, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("SIGXCPU") && error.contains("worker_limits.cpu_time (1s)"), "{error}");

    // Ignoring SIGXCPU does not get round it: the host kills the worker past the limit.
    let stubborn = add(&server, json!({"job": "burn_ignoring_limit", "input": 60, "max_attempts": 1}));
    let done = server.wait_finished(&stubborn, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("did not stop at SIGXCPU") && error.contains("cpu_time (1s)"), "{error}");
    let ran = time_between(&done, "started_at", "finished_at");
    assert!(ran < Duration::from_secs(30), "ran {ran:?} of its 60 s");

    let files = add(&server, json!({"job": "open_files", "input": 200, "max_attempts": 1}));
    let done = server.wait_finished(&files, LONG);
    assert!(errors(&done).pop().unwrap().contains("Too many open files"), "{done}");

    // Within the limits, jobs run as usual (the CPU limit is per job, not per process).
    for _ in 0..2 {
        let small = add(&server, json!({"job": "burn", "input": 0.6}));
        assert_eq!(server.wait_finished(&small, LONG)["status"], "completed");
    }
}

#[test]
fn sigterm_never_waits_longer_than_the_timeout_and_the_grace_and_a_second_signal_exits_at_once() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "shutdown_timeout = \"1s\"\nkill_grace = \"1s\"\n";
    let mut server = serve(&dir, plugins.path(), config);
    let stuck = add(&server, json!({"job": "stubborn", "input": 600}));
    server.wait_until(&stuck, LONG, |j| j["status"] == "processing");
    let workers = children(server.pid());
    assert!(!workers.is_empty());
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "a clean stop: {}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(6), "took {:?}", signalled.elapsed());
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its host");
    }
    // The job went back to its queue, its attempt not counted.
    // Now with a stop that would wait a minute for the stuck job: the second signal must not.
    let patient = "shutdown_timeout = \"60s\"\nkill_grace = \"60s\"\n[default_queue]\nautostart = false\n";
    let mut server = serve(&dir, plugins.path(), patient);
    let job = server.job(&stuck);
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("queued"), Some(0)), "{job}");

    // A second signal ends the process at once, its workers with it.
    server.post_empty("/v1/queues/default/start");
    server.wait_until(&stuck, LONG, |j| j["status"] == "processing");
    let workers = children(server.pid());
    server.signal(libc::SIGTERM);
    // The first signal is taken (the graceful stop began) before the second is sent.
    jobhost_tests::wait_for_condition(LONG, "the first SIGTERM taken", || {
        server.log().contains("SIGTERM: shutting down")
    });
    let second = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(1), "{}", server.log());
    // At once: not after the shutdown timeout and the stuck job's grace (two minutes).
    assert!(second.elapsed() < Duration::from_secs(10), "took {:?}", second.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|pid| alive(*pid)) {
        assert!(Instant::now() < deadline, "a worker outlived its host");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_plugin_replaced_in_place_runs_its_new_code_after_a_reload_and_running_jobs_complete() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&["sleep"]);
    let versioned = plugins.path().join(library_file("versioned"));
    fs::copy(artefacts().fixture("version_one"), &versioned).unwrap();
    let server = serve(&dir, plugins.path(), "[default_queue]\nconcurrency = 2\n");
    let one = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&one, LONG)["result"], "one");
    let held = server.post("/v1/jobs", &json!({"job": "version", "input": 5, "hold": true})).body["id"]
        .as_str()
        .map(str::to_owned);

    let sleeper = server.add("sleep", json!(2));
    server.wait_until(&sleeper, LONG, |j| j["status"] == "processing");
    // In place: the same file (inode) rewritten, as `cp` does.
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let before = inode(&versioned);
    fs::write(&versioned, fs::read(artefacts().fixture("version_two")).unwrap()).unwrap();
    assert_eq!(inode(&versioned), before);
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + LONG;
    loop {
        let names: Vec<String> = server
            .get("/v1/factories")
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect();
        if names.contains(&"two_only".to_owned()) {
            assert!(!names.contains(&"one_only".to_owned()), "{names:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the reload never showed: {names:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let two = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&two, LONG)["result"], "two");
    // A job submitted under version one's schema (any JSON), started after the reload: version
    // two's schema refuses its input, so it fails at once, never run, costing no retries.
    let early = held.expect("held before the reload");
    assert_eq!(server.post_empty(&format!("/v1/jobs/{early}/start")).status, 200);
    let failed = server.wait_finished(&early, LONG);
    assert_eq!(
        (failed["status"].as_str(), failed["attempts"].as_u64()),
        (Some("error"), Some(1)),
        "{failed}"
    );
    let error = errors(&failed).pop().unwrap();
    assert!(
        error.contains("no longer matches `version`'s input schema") && error.contains("object"),
        "{error}"
    );
    let slept = server.wait_finished(&sleeper, LONG);
    assert_eq!(
        (slept["status"].as_str(), slept["attempts"].as_u64()),
        (Some("completed"), Some(1)),
        "{slept}"
    );
    assert!(server.log().contains("factories added: [two_only], removed: [one_only]"), "{}", server.log());
}

#[test]
fn two_files_with_one_factory_name_refuse_to_start_naming_both_unless_pinned() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&[]);
    fs::copy(artefacts().fixture("version_one"), plugins.path().join("libone.so")).unwrap();
    fs::copy(artefacts().fixture("version_two"), plugins.path().join("libtwo.so")).unwrap();
    let out = jobhost([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--plugin-dir",
        plugins.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    let one = plugins.path().join("libone.so").canonicalize().unwrap();
    let two = plugins.path().join("libtwo.so").canonicalize().unwrap();
    assert!(out.stderr.contains("factory `version` is provided by both"), "{out:?}");
    assert!(
        out.stderr.contains(&one.display().to_string()) && out.stderr.contains(&two.display().to_string())
    );
    assert!(out.stderr.contains("[factories]"), "{out:?}");

    // Pinned in the config, it starts; the pinned file has the name, both others load.
    let server = serve(&dir, plugins.path(), "[factories]\nversion = \"libtwo.so\"\n");
    let id = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&id, LONG)["result"], "two");
    let listed = server.get("/v1/plugins").body;
    assert_eq!(listed["conflicts"][0]["resolution"], "pinned", "{listed}");
    assert_eq!(listed["isolation"], "process");
    for name in ["one_only", "two_only"] {
        let id = server.add(name, Value::Null);
        assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    }
}

#[test]
fn a_reload_that_brings_a_conflicting_file_keeps_the_loaded_owner_and_reports_it() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&[]);
    // `libz` sorts after `liba`: a fresh scan would give `version` to the newcomer.
    fs::copy(artefacts().fixture("version_one"), plugins.path().join("libz.so")).unwrap();
    let server = serve(&dir, plugins.path(), "");
    fs::copy(artefacts().fixture("version_two"), plugins.path().join("liba.so")).unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + LONG;
    let conflicts = loop {
        let listed = server.get("/v1/plugins").body;
        if !listed["conflicts"].as_array().unwrap().is_empty() {
            break listed["conflicts"].clone();
        }
        assert!(Instant::now() < deadline, "no conflict reported: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(conflicts[0]["resolution"], "kept_loaded", "{conflicts}");
    assert!(conflicts[0]["owner"].as_str().unwrap().ends_with("libz.so"), "{conflicts}");
    let id = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&id, LONG)["result"], "one");
}

#[test]
fn a_reload_that_finds_a_loaded_file_broken_keeps_its_loaded_version_and_its_queued_jobs() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&["sleep"]);
    let file = plugins.path().join(library_file("sleep"));
    let server = serve(&dir, plugins.path(), "[default_queue]\nconcurrency = 1\n");
    let ids: Vec<String> = (0..30).map(|_| server.add("sleep", json!(0.05))).collect();
    server.wait_until(&ids[0], LONG, |j| j["status"] != "queued");
    // A copy caught half-written: the file's first page, which the probe cannot load.
    let whole = fs::read(&file).unwrap();
    fs::write(&file, &whole[..4096]).unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + LONG;
    let rejected = loop {
        let listed = server.get("/v1/plugins").body;
        if !listed["rejected"].as_array().unwrap().is_empty() {
            break listed["rejected"][0]["reason"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the broken file was not reported: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(rejected.contains("the version loaded before stays loaded"), "{rejected}");
    assert!(factory_names(&server).contains(&"sleep".to_owned()));
    // Every job queued behind the reload runs on the version loaded before.
    for id in &ids {
        let job = server.wait_finished(id, LONG);
        assert_eq!(job["status"], "completed", "{job}");
    }
    let after = server.add("sleep", json!(0.01));
    assert_eq!(server.wait_finished(&after, LONG)["status"], "completed");
    // Once whole again, the next reload takes it and reports nothing.
    fs::write(&file, &whole).unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + LONG;
    while !server.get("/v1/plugins").body["rejected"].as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "still reported after the file was whole");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn in_process_a_job_past_its_timeout_and_grace_is_reported_stuck_and_shutdown_still_ends() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "isolation = \"none\"\nkill_grace = \"1s\"\nshutdown_timeout = \"1s\"\n";
    let mut server = serve(&dir, plugins.path(), config);
    let stuck = add(&server, json!({"job": "stubborn", "input": 600, "timeout_seconds": 1}));
    let deadline = Instant::now() + LONG;
    loop {
        let queues = server.get("/v1/queues").body;
        if queues[0]["stuck"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never reported stuck: {queues}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.get("/metrics").text.contains("jobhost_jobs_stuck{queue=\"default\"} 1"));
    assert!(
        server.log().contains(&format!("job {stuck} (queue 'default'): still running")),
        "{}",
        server.log()
    );
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0), "{}", server.log());
    assert!(signalled.elapsed() < Duration::from_secs(6), "waited for the plugin: {:?}", signalled.elapsed());
    // Released uncounted, as a stopping host does.
    let server = serve(&dir, plugins.path(), &format!("{config}[default_queue]\nautostart = false\n"));
    assert_eq!(server.job(&stuck)["status"], "queued");
}

/// `config` (top-level keys) with `dir` writable for workers.
fn writable(dir: &TempDir, config: &str) -> String {
    format!("{config}[worker_sandbox]\nwrite_paths = [{:?}]\n", dir.path())
}

/// The pid a child-spawning job wrote, once it did.
fn pid_from(file: &Path) -> i32 {
    let mut pid = None;
    jobhost_tests::wait_for_condition(LONG, "the job wrote its child's pid", || {
        pid = fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    pid.unwrap()
}

fn gone_soon(pid: i32, what: &str) {
    jobhost_tests::wait_for_condition(Duration::from_secs(10), what, || !alive(pid));
}

#[test]
fn what_a_plugin_starts_ends_with_its_job_even_detached() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "");
    let child = add(&server, json!({"job": "spawn_child", "input": {"seconds": 600}}));
    let done = server.wait_finished(&child, LONG);
    assert_eq!(done["status"], "completed", "{done}");
    gone_soon(done["result"].as_i64().unwrap() as i32, "the job's child is killed when it ends");
    let daemon = add(&server, json!({"job": "spawn_daemon", "input": {"seconds": 600}}));
    let done = server.wait_finished(&daemon, LONG);
    assert_eq!(done["status"], "completed", "{done}");
    gone_soon(
        done["result"].as_i64().unwrap() as i32,
        "a daemon (setsid) the job started is killed when it ends",
    );
    // The worker goes on to the next job as usual.
    let after = add(&server, json!({"job": "spawn_child", "input": {"seconds": 1}}));
    assert_eq!(server.wait_finished(&after, LONG)["status"], "completed");
}

#[test]
fn a_job_hanging_beside_its_child_is_killed_at_timeout_and_grace_with_the_child() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), &writable(&dir, "kill_grace = \"1s\"\n"));
    let file = dir.path().join("hang.pid");
    let id = add(
        &server,
        json!({"job": "spawn_and_hang", "input": {"seconds": 600, "pid_file": file}, "timeout_seconds": 2}),
    );
    let child = pid_from(&file);
    let done = server.wait_finished(&id, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("timed out after 2s (worker killed after 1s grace)"), "{error}");
    // The child held nothing of the worker's (close-on-exec): the kill is seen at once, not
    // when the child ends. Between start and finish: the timeout, the grace, and little else.
    let time = |key: &str| chrono::DateTime::parse_from_rfc3339(done[key].as_str().unwrap()).unwrap();
    let took = (time("finished_at") - time("started_at")).num_milliseconds();
    assert!(took < 10_000, "the job ended {took} ms after it started: {done}");
    gone_soon(child, "the hanging job's child is killed with its worker");
}

#[test]
fn a_crash_beside_a_child_is_recorded_with_its_cause_and_takes_the_child() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), &writable(&dir, ""));
    let file = dir.path().join("abort.pid");
    let id = add(&server, json!({"job": "spawn_and_abort", "input": {"seconds": 600, "pid_file": file}}));
    let child = pid_from(&file);
    let done = server.wait_finished(&id, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("killed by signal 6 (SIGABRT)"), "{error}");
    gone_soon(child, "the crashed worker's child is killed");
}

#[test]
fn a_host_killed_outright_takes_its_plugins_children_with_it() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let mut server = serve(&dir, plugins.path(), &writable(&dir, ""));
    let file = dir.path().join("host.pid");
    add(&server, json!({"job": "spawn_and_hang", "input": {"seconds": 600, "pid_file": file}}));
    let child = pid_from(&file);
    let workers = children(server.pid());
    server.signal(libc::SIGKILL);
    server.wait_exit(LONG);
    gone_soon(child, "the job's child dies with the host");
    for pid in workers {
        gone_soon(pid, "the worker dies with the host");
    }
}

/// A plugin directory with the example `echo`, the misbehaving plugin, and files whose static
/// constructors crash, hang and exit when loaded.
fn plugins_with_bad_loaders() -> TempDir {
    let dir = plugins_with_misbehave(&["echo"]);
    for kind in ["crash_at_load", "hang_at_load", "exit_at_load"] {
        fs::copy(artefacts().fixture(kind), dir.path().join(library_file(kind))).unwrap();
    }
    dir
}

fn rejection<'a>(plugins: &'a Value, file: &str) -> &'a str {
    plugins["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with(file)))
        .and_then(|r| r["reason"].as_str())
        .unwrap_or_else(|| panic!("{file} not rejected: {plugins}"))
}

#[test]
fn files_that_crash_hang_or_exit_while_loading_are_rejected_and_the_rest_run() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_bad_loaders();
    let server = serve(&dir, plugins.path(), "plugin_load_timeout = \"2s\"\n");
    let listed = server.get("/v1/plugins").body;
    assert!(rejection(&listed, "libcrash_at_load.so").contains("signal 6 (SIGABRT)"), "{listed}");
    assert!(rejection(&listed, "libhang_at_load.so").contains("within 2s"), "{listed}");
    assert!(
        rejection(&listed, "libexit_at_load.so").contains("exit status 0, before it finished"),
        "{listed}"
    );
    let log = server.log();
    assert!(log.contains("libhang_at_load.so") && log.contains("did not finish loading"), "{log}");
    let id = server.add("echo", json!("fine"));
    assert_eq!(server.wait_finished(&id, LONG)["result"], "fine");

    // A worker that dies is replaced, and the replacement loads the same files: it starts.
    let crash = add(&server, json!({"job": "abort", "max_attempts": 1}));
    assert_eq!(server.wait_finished(&crash, LONG)["status"], "error");
    let id = server.add("echo", json!("again"));
    assert_eq!(server.wait_finished(&id, LONG)["result"], "again");

    // A reload probes again: the same three rejected, the rest reloaded.
    server.signal(libc::SIGHUP);
    jobhost_tests::wait_for_condition(LONG, "the reload", || {
        server.log().contains("SIGHUP: plugins reloaded")
    });
    let listed = server.get("/v1/plugins").body;
    assert_eq!(listed["rejected"].as_array().unwrap().len(), 3, "{listed}");
    let id = server.add("echo", json!("reloaded"));
    assert_eq!(server.wait_finished(&id, LONG)["result"], "reloaded");

    // `plugins check` names them and ends normally, saying the check failed.
    let out = jobhost_tests::jobhost(["plugins", "check", plugins.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("libcrash_at_load.so: rejected: crashed while loading"), "{out:?}");
    assert!(out.stdout.contains("libexit_at_load.so: rejected: ended the process while loading"), "{out:?}");
}

#[test]
fn a_file_dropped_in_after_start_is_not_loaded_by_replacement_workers() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["echo"]);
    let server = serve(&dir, plugins.path(), "");
    fs::copy(artefacts().fixture("crash_at_load"), plugins.path().join(library_file("crash_at_load")))
        .unwrap();
    // Workers die and are replaced; each loads the files accepted at start, not the new one
    // (which would crash every replacement).
    for _ in 0..2 {
        let crash = add(&server, json!({"job": "abort", "max_attempts": 1}));
        assert_eq!(server.wait_finished(&crash, LONG)["status"], "error");
        let id = server.add("echo", json!(1));
        assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    }
}

#[test]
fn workers_get_an_allowlisted_environment_without_the_hosts_secrets() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, "[worker_env]\nGREETING = \"hi\"\n").unwrap();
    let secret = dir.path().join("s3cret");
    let server = Server::start_with_env(
        &dir.path().join("data"),
        plugins.path(),
        &["--config", file.to_str().unwrap()],
        &[("PGPASSWORD", &secret), ("JOBHOST_TOKEN", &secret), ("AWS_SECRET_ACCESS_KEY", &secret)],
    );
    let id = add(&server, json!({"job": "environment"}));
    let env = server.wait_finished(&id, LONG)["result"].clone();
    assert_eq!(env["GREETING"], "hi", "{env}");
    assert!(env["PATH"].is_string(), "{env}");
    for secret in ["PGPASSWORD", "JOBHOST_TOKEN", "AWS_SECRET_ACCESS_KEY"] {
        assert!(env.get(secret).is_none(), "{secret} reached the plugin: {env}");
    }
}

#[test]
fn a_plugin_cannot_signal_the_host() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["echo"]);
    let server = serve(&dir, plugins.path(), "");
    for how in ["kill", "pidfd", "group"] {
        let id = add(&server, json!({"job": "kill_parent", "input": how}));
        let done = server.wait_finished(&id, LONG);
        let error = errors(&done).pop().unwrap();
        assert!(error.contains("refused"), "{how}: {error}");
    }
    // Nor read its environment (the store's password, the token) through /proc.
    let environ = format!("/proc/{}/environ", server.pid());
    let id = add(&server, json!({"job": "read_file", "input": environ}));
    let done = server.wait_finished(&id, LONG);
    assert_eq!(done["status"], "error", "{done}");
    let id = server.add("echo", json!("still here"));
    assert_eq!(server.wait_finished(&id, LONG)["result"], "still here");
}

#[test]
fn a_plugin_cannot_signal_another_worker_but_may_signal_its_own_children() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "[queues.default]\nconcurrency = 2\n");
    let busy = add(&server, json!({"job": "stubborn", "input": 60.0}));
    let sibling = jobhost_tests::wait_for_value(LONG, "the stubborn job's worker", || {
        let workers = server.get("/v1/workers").body;
        workers.as_array()?.iter().find(|w| w["job"].as_str() == Some(busy.as_str()))?["pid"].as_i64()
    });
    let id = add(&server, json!({"job": "signal", "input": sibling.to_string()}));
    let done = server.wait_finished(&id, LONG);
    let error = errors(&done).pop().unwrap_or_default();
    assert!(error.contains("refused") && error.contains("Operation not permitted"), "{done}");
    // The sibling still runs its job, in the same process.
    let workers = server.get("/v1/workers").body;
    let running = workers.as_array().unwrap().iter().find(|w| w["pid"].as_i64() == Some(sibling)).cloned();
    assert_eq!(running.map(|w| w["job"].clone()), Some(json!(busy)), "{workers}");
    assert_eq!(server.get(&format!("/v1/jobs/{busy}")).body["status"], "processing");
    // Nor read its memory or environment (its own Landlock domain, which this one is not in).
    let id = add(&server, json!({"job": "read_file", "input": format!("/proc/{sibling}/environ")}));
    let done = server.wait_finished(&id, LONG);
    assert!(errors(&done).pop().unwrap_or_default().contains("Permission denied"), "{done}");
    let id = add(&server, json!({"job": "signal", "input": "child"}));
    let done = server.wait_finished(&id, LONG);
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["result"].as_str().unwrap().contains("signal: 9"), "{done}");
}

#[test]
fn a_plugin_cannot_start_a_process_outside_its_jobs_tree() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "");
    let id = add(&server, json!({"job": "clone_parent", "input": null}));
    let done = server.wait_finished(&id, LONG);
    assert_eq!(
        done["result"],
        "clone refused: Operation not permitted (os error 1); clone3 refused: Function not implemented (os error 38)",
        "{done}"
    );
    // Threads and programs still start (the C library falls back from clone3 to clone).
    let id = add(&server, json!({"job": "signal", "input": "child"}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    let id = add(&server, json!({"job": "log_thread", "input": "hi"}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
}

#[test]
fn a_stopped_host_leaves_no_worker_process_and_no_scratch_directory() {
    let dir = TempDir::new().unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let plugins = jobhost_tests::plugin_dir(&["sleep"]);
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, "[queues.default]\nconcurrency = 4\n").unwrap();
    let mut server = Server::start_with_env(
        &dir.path().join("data"),
        plugins.path(),
        &["--config", file.to_str().unwrap()],
        &[("TMPDIR", &tmp)],
    );
    let ids: Vec<String> = (0..4).map(|_| server.add("sleep", json!({"seconds": 0.5}))).collect();
    for id in &ids {
        assert_eq!(server.wait_finished(id, LONG)["status"], "completed");
    }
    let workers = server.get("/v1/workers").body;
    let pids: Vec<i64> = workers.as_array().unwrap().iter().filter_map(|w| w["pid"].as_i64()).collect();
    assert!(!pids.is_empty(), "{workers}");
    let scratch = || {
        fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("jobhost-worker-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(scratch().len(), pids.len(), "one scratch directory per worker");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(LONG), Some(0));
    assert_eq!(scratch(), Vec::<String>::new(), "scratch directories left behind");
    wait_for_condition(LONG, "the workers gone", || {
        pids.iter().all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    });
}

#[test]
fn a_jobs_output_past_output_per_job_is_dropped_with_a_counted_note_and_the_next_job_starts_afresh() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "[queues.default]\nconcurrency = 1\n[worker_limits]\noutput_per_job = \"8KiB\"\n";
    let server = serve(&dir, plugins.path(), config);
    // 100,000 lines of ~100 bytes: ~10 MB, of which 8 KiB reach the log.
    let id = add(&server, json!({"job": "chatter", "input": 100_000}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    let note = format!("of job {id}'s output dropped: over worker_limits.output_per_job (8192 bytes)");
    wait_for_condition(LONG, "the note on the dropped output", || server.log().contains(&note));
    // The next job's output is its own.
    let next = add(&server, json!({"job": "chatter", "input": 3}));
    assert_eq!(server.wait_finished(&next, LONG)["status"], "completed");
    wait_for_condition(LONG, "the next job's lines", || server.log().matches("chatter 2 ").count() == 2);
    let log = server.log();
    let first: Vec<&str> = log.lines().filter(|l| l.contains("chatter ")).collect();
    assert!(log.contains("chatter 0 "), "the first lines are kept");
    assert!(!log.contains("chatter 99999 "), "the last line was logged");
    let logged = first.len() - 3;
    assert!((50..100).contains(&logged), "{logged} lines logged");
    // Noted when the job ended, and what was still in the pipe then, when the next started.
    let dropped: u64 = log
        .lines()
        .filter(|l| l.contains(&note))
        .map(|l| l.split(" line(s) (").next().unwrap().rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(dropped as usize + logged, 100_000, "{log}");
    assert!(log.len() < 100_000, "the log holds {} bytes", log.len());
    assert!(!log.contains(&format!("job {next}'s output dropped")), "{log}");
}

#[test]
fn under_backlog_the_output_a_job_leaves_in_the_pipe_counts_against_it_not_the_next_job() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "[queues.default]\nconcurrency = 1\n[worker_limits]\noutput_per_job = \"8KiB\"\n";
    let server = serve(&dir, plugins.path(), config);
    // Four floods of ~190 KB in one batch: each next job is sent ahead and starts as soon as
    // the one before answers, with up to a pipe's worth of its output still unread.
    let batch: Vec<Value> = (0..4).map(|_| json!({"job": "chatter", "input": 2000})).collect();
    let added = server.post("/v1/jobs/batch", &json!({ "jobs": batch }));
    assert_eq!(added.status, 201, "{added:?}");
    let ids: Vec<String> =
        added.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()).collect();
    for id in &ids {
        assert_eq!(server.wait_finished(id, LONG)["status"], "completed");
    }
    let last = &ids[3];
    wait_for_condition(LONG, "the last job's note", || {
        server.log().contains(&format!("of job {last}'s output dropped"))
    });
    let log = server.log();
    // Each job's first lines are logged, within its 8 KiB; none of its last lines are (they
    // come after 190 KB), whatever job runs when they are read.
    assert_eq!(log.matches("chatter 0 ").count(), 4, "{log}");
    assert!(!log.contains("chatter 1999 "), "a job's last line was logged under the next job's budget");
    let logged = log.lines().filter(|l| l.contains("chatter ")).count();
    assert!(logged <= 4 * 90, "{logged} lines logged");
}

#[test]
fn bad_bytes_and_a_huge_line_of_output_neither_stop_forwarding_nor_reach_the_log_whole() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "log_format = \"json\"\n");
    let id = add(&server, json!({"job": "print_badly", "input": 20_000_000}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
    jobhost_tests::wait_for_condition(LONG, "the line after the bad output", || {
        server.log().contains("after the bad output")
    });
    let log = server.log();
    assert!(log.contains("not utf-8: \u{fffd}\u{fffd}"), "bad bytes replaced");
    assert!(log.contains("more bytes of this line dropped"), "the huge line cut");
    assert!(log.len() < 1_000_000, "the log holds {} bytes", log.len());
    // Every line is one JSON record; what the plugin printed is the message of a record of
    // the host's, naming the worker, never a record of its own making.
    let records: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON record ({e}): {l:?}")))
        .collect();
    for forged in ["forged text", "forged json"] {
        let record = records.iter().find(|r| r["message"].as_str().is_some_and(|m| m.contains(forged)));
        let record = record.unwrap_or_else(|| panic!("{forged} not logged"));
        assert_eq!(record["target"], "jobhost::worker", "{record}");
        assert!(record["worker"].as_u64().is_some(), "{record}");
    }
    let text =
        records.iter().find(|r| r["message"].as_str().is_some_and(|m| m.contains("forged text"))).unwrap();
    assert_eq!(text["level"], "INFO", "{text}");
    assert!(!text["message"].as_str().unwrap().chars().any(char::is_control), "{text}");
}

#[test]
fn workers_write_only_to_their_scratch_directory_and_the_configured_paths() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let allowed = TempDir::new().unwrap();
    let config = format!("[worker_sandbox]\nwrite_paths = [{:?}]\n", allowed.path());
    let server = serve(&dir, plugins.path(), &config);
    let write = |path: &Path| {
        let id = add(&server, json!({"job": "write_file", "input": path}));
        server.wait_finished(&id, LONG)
    };
    // The store's directory: refused, and nothing written there.
    let done = write(&dir.path().join("data").join("planted"));
    assert_eq!(done["status"], "error", "{done}");
    assert!(errors(&done).pop().unwrap().contains("Permission denied"), "{done}");
    assert!(!dir.path().join("data").join("planted").exists());
    // The configured path: written.
    let done = write(&allowed.path().join("out"));
    assert_eq!(done["status"], "completed", "{done}");
    assert!(allowed.path().join("out").exists());
    // Its TMPDIR (a scratch directory of its own): written.
    let id = add(&server, json!({"job": "write_file", "input": "$TMPDIR/scratch"}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
}

#[test]
fn a_plugins_own_write_paths_are_writable_by_its_workers_alone() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&["echo"]);
    let [common, own, echos] = [(); 3].map(|_| TempDir::new().unwrap());
    let config = format!(
        "[worker_sandbox]\nwrite_paths = [{:?}]\n\
         [worker_sandbox.plugins.misbehave]\nwrite_paths = [{:?}]\n\
         [worker_sandbox.plugins.echo]\nwrite_paths = [{:?}]\n\
         [worker_sandbox.plugins.nosuch]\nwrite_paths = [{:?}]\n",
        common.path(),
        own.path(),
        echos.path(),
        common.path()
    );
    let server = serve(&dir, plugins.path(), &config);
    let run = |job: &str, input: Value| {
        let id = add(&server, json!({"job": job, "input": input}));
        server.wait_finished(&id, LONG)
    };
    // Its own path and everyone's: written.
    for path in [own.path().join("out"), common.path().join("out")] {
        let done = run("write_file", json!(path));
        assert_eq!(done["status"], "completed", "{done}");
        assert!(path.exists());
    }
    // Another plugin's path: refused.
    let done = run("write_file", json!(echos.path().join("out")));
    assert_eq!(done["status"], "error", "{done}");
    assert!(errors(&done).pop().unwrap().contains("Permission denied"), "{done}");
    assert!(!echos.path().join("out").exists());
    // Its worker loaded that plugin alone: no other plugin's code holds these rights.
    let maps = run("read_file", json!("/proc/self/maps"));
    let maps = maps["result"].as_str().unwrap();
    assert!(maps.contains("jobhost-plugin:libmisbehave.so"), "{maps}");
    assert!(!maps.contains("jobhost-plugin:libecho.so"), "{maps}");
    // The other plugin's jobs run in workers of its own profile, in the same slots.
    for _ in 0..3 {
        assert_eq!(run("echo", json!("hi"))["status"], "completed");
        assert_eq!(run("write_file", json!(own.path().join("again")))["status"], "completed");
    }
    assert!(server.log().contains("worker_sandbox.plugins.nosuch: no loaded plugin"), "{}", server.log());
}

#[test]
fn a_million_progress_reports_cost_little_and_a_result_too_large_says_so() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let server = serve(&dir, plugins.path(), "");
    let id = add(&server, json!({"job": "progress_flood", "input": 1_000_000}));
    let done = server.wait_finished(&id, LONG);
    assert_eq!(done["status"], "completed", "{done}");
    let time = |key: &str| chrono::DateTime::parse_from_rfc3339(done[key].as_str().unwrap()).unwrap();
    let took = (time("finished_at") - time("started_at")).num_milliseconds();
    // Coalesced in the worker (ten a second): seconds at most, not minutes of host writes.
    assert!(took < 20_000, "a million progress reports took {took} ms");

    let id = add(&server, json!({"job": "huge_result", "input": 70_000_000}));
    let done = server.wait_finished(&id, LONG);
    let error = errors(&done).pop().unwrap();
    assert!(error.contains("result too large (70000002 bytes, limit 67108864)"), "{error}");
}

/// The time from one of a job's timestamps to another.
fn time_between(job: &Value, from: &str, to: &str) -> Duration {
    let at = |field: &str| -> chrono::DateTime<chrono::Utc> { job[field].as_str().unwrap().parse().unwrap() };
    (at(to) - at(from)).to_std().unwrap_or_default()
}

/// The factory names the server lists.
fn factory_names(server: &Server) -> Vec<String> {
    let listed = server.get("/v1/factories").body;
    listed.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_changed_file_reaches_workers_only_through_a_reload_and_then_no_job_starts_on_the_old_code() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&[]);
    let versioned = plugins.path().join(library_file("versioned"));
    fs::copy(artefacts().fixture("version_one"), &versioned).unwrap();
    let server = serve(&dir, plugins.path(), "[default_queue]\nconcurrency = 2\n");
    let one = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&one, LONG)["result"], "one");

    // Rewritten in place and its worker killed, without a reload: the replacement worker
    // loads what was accepted at start, not the file as it is now.
    fs::write(&versioned, fs::read(artefacts().fixture("version_two")).unwrap()).unwrap();
    for pid in children(server.pid()) {
        // SAFETY: kill(2) on a worker process of the server under test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let again = server.add("version", Value::Null);
    assert_eq!(server.wait_finished(&again, LONG)["result"], "one");

    // Under steady load (jobs added all the while), a reload: from the moment it shows, no job
    // starts on the old code, although the workers never run out of work.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (client, stop) = (jobhost_tests::client::Client::new(&server.url, None), stop.clone());
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let batch: Vec<Value> = (0..20).map(|_| json!({"job": "version"})).collect();
                let added = client.post("/v1/jobs/batch", &json!({ "jobs": batch }));
                assert_eq!(added.status, 201, "{added:?}");
                ids.extend(
                    added.body["jobs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|j| j["id"].as_str().unwrap().to_owned()),
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            ids
        })
    };
    let completed = || {
        let queues = server.get("/v1/queues").body;
        let default = queues.as_array().unwrap().iter().find(|q| q["name"] == "default").cloned();
        default.and_then(|q| q["jobs"]["completed"].as_u64()).unwrap_or(0)
    };
    wait_for_condition(LONG, "jobs under way", || completed() > 100);
    server.signal(libc::SIGHUP);
    wait_for_condition(LONG, "the reload to show", || {
        factory_names(&server).contains(&"two_only".to_owned())
    });
    let shown = chrono::Utc::now();
    // Load goes on for a while after the reload (not a wait for anything).
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let ids = feeder.join().unwrap();
    let (mut old, mut new) = (0, 0);
    for id in &ids {
        let job = server.wait_finished(id, LONG);
        let started: chrono::DateTime<chrono::Utc> = job["started_at"].as_str().unwrap().parse().unwrap();
        if started > shown {
            assert_eq!(job["result"], "two", "started after the reload on the old code: {job}");
            new += 1;
        } else {
            old += 1;
        }
    }
    assert!(new > 0 && old > 0, "jobs before the reload: {old}, after: {new}");
}

#[test]
fn every_worker_maps_one_shared_copy_of_each_plugin() {
    let dir = TempDir::new().unwrap();
    let plugins = jobhost_tests::plugin_dir(&["sleep"]);
    let server = serve(&dir, plugins.path(), "[default_queue]\nconcurrency = 3\n");
    let jobs: Vec<String> = (0..3).map(|_| server.add("sleep", json!(600))).collect();
    for id in &jobs {
        server.wait_until(id, LONG, |j| j["status"] == "processing");
    }
    // The worker processes running the three jobs (a job claimed in a batch shows
    // `processing` while it waits for its worker to start).
    let running = || -> Vec<i32> {
        let listed = server.get("/v1/workers").body;
        let workers = listed.as_array().unwrap().iter().filter(|w| w["state"] == "running");
        workers.map(|w| w["pid"].as_i64().unwrap() as i32).collect()
    };
    wait_for_condition(LONG, "three workers running", || running().len() == 3);
    let workers = running();
    // The inode of the memory file each worker maps the sleep plugin's code from.
    let image = |pid: i32| -> Option<String> {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let line = maps.lines().find(|l| l.contains(&format!("jobhost-plugin:{}", library_file("sleep"))))?;
        line.split_whitespace().nth(4).map(str::to_owned)
    };
    let inodes: Vec<Option<String>> = workers.iter().map(|&pid| image(pid)).collect();
    assert!(inodes.iter().all(|i| i.is_some() && *i == inodes[0]), "{inodes:?}");
    for id in &jobs {
        server.post_empty(&format!("/v1/jobs/{id}/cancel"));
    }
}

#[test]
fn a_worker_that_dies_between_jobs_charges_no_job_and_max_jobs_recycles_workers() {
    let dir = TempDir::new().unwrap();
    let plugins = plugins_with_misbehave(&[]);
    let config = "[default_queue]\nconcurrency = 1\n[worker_limits]\nmax_jobs = 2\n";
    let server = serve(&dir, plugins.path(), config);
    let pid_of = |server: &Server| {
        let id = add(server, json!({"job": "log_thread", "input": "hi"}));
        let job = server.wait_finished(&id, LONG);
        assert_eq!(job["status"], "completed", "{job}");
        job["result"].as_u64().unwrap()
    };
    // A plugin's thread aborts the worker after its job returned: that job completed, and the
    // next job is not charged with the death.
    let leaves = add(&server, json!({"job": "abort_later", "input": 200}));
    assert_eq!(server.wait_finished(&leaves, LONG)["status"], "completed");
    wait_for_condition(LONG, "the death between jobs logged", || server.log().contains("between jobs"));
    assert!(server.log().contains("SIGABRT) between jobs"), "{}", server.log());
    let next = add(&server, json!({"job": "log_thread", "input": "after"}));
    let job = server.wait_finished(&next, LONG);
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("completed"), Some(1)), "{job}");
    assert!(errors(&job).is_empty(), "{job}");

    // Two jobs per worker process, then a fresh one (the job just run was the first of its).
    let mut pids = vec![job["result"].as_u64().unwrap()];
    pids.extend((0..5).map(|_| pid_of(&server)));
    assert!(
        pids[0] == pids[1]
            && pids[2] == pids[3]
            && pids[4] == pids[5]
            && pids[1] != pids[2]
            && pids[3] != pids[4],
        "{pids:?}"
    );

    // The same under backlog, where each worker process is sent its next job ahead: never
    // past its max_jobs.
    let batch: Vec<Value> = (0..6).map(|_| json!({"job": "log_thread", "input": "batch"})).collect();
    let added = server.post("/v1/jobs/batch", &json!({ "jobs": batch }));
    assert_eq!(added.status, 201, "{added:?}");
    let pids: Vec<u64> = added.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| server.wait_finished(j["id"].as_str().unwrap(), LONG)["result"].as_u64().unwrap())
        .collect();
    let mut runs: Vec<(u64, usize)> = Vec::new();
    for pid in pids.iter().copied() {
        match runs.last_mut() {
            Some((last, n)) if *last == pid => *n += 1,
            _ => runs.push((pid, 1)),
        }
    }
    assert!(runs.iter().all(|(_, n)| *n <= 2), "{pids:?}");
}

#[test]
fn workers_run_as_worker_user_and_cannot_read_the_hosts_private_files() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED workers_run_as_worker_user: the suite does not run as root");
        return;
    }
    let dir = TempDir::new().unwrap();
    // A name the system does not know is refused when the config is read, naming the key.
    let file = dir.path().join("bad.toml");
    fs::write(&file, "worker_user = \"no-such-user-here\"\n").unwrap();
    let refused = jobhost(["serve", "--config", file.to_str().unwrap(), "--check-config"]);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("worker_user: no user \"no-such-user-here\""), "{refused:?}");

    let plugins = plugins_with_misbehave(&[]);
    let private = dir.path().join("token");
    fs::write(&private, "s3cret").unwrap();
    // As a token file is kept: readable by the service's user alone.
    fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = serve(&dir, plugins.path(), "worker_user = \"nobody\"\n");
    let id = add(&server, json!({"job": "read_file", "input": "/proc/self/status"}));
    let status = server.wait_finished(&id, LONG);
    let text = status["result"].as_str().unwrap_or_else(|| panic!("{status}"));
    assert!(text.lines().any(|l| l.starts_with("Uid:") && l.contains("65534")), "{text}");
    let id = add(&server, json!({"job": "read_file", "input": private.to_str().unwrap()}));
    let job = server.wait_finished(&id, LONG);
    assert_eq!(job["status"], "error", "{job}");
    assert!(errors(&job).pop().unwrap().contains("Permission denied"), "{job}");
    // Its scratch directory is its own to write.
    let id = add(&server, json!({"job": "write_file", "input": "$TMPDIR/x"}));
    assert_eq!(server.wait_finished(&id, LONG)["status"], "completed");
}
