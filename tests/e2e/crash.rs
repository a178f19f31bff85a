//! Crash safety with the real binary: `jobhost run-once` killed with SIGKILL mid-job, and a
//! plugin that aborts the whole process every time (a poison job) when plugins run in the
//! host's own process (`--isolation none`), where the claims journal counts the attempt that
//! killed it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use jobhost::clock::SystemClock;
use jobhost::job::{JobId, Status, WORKER_LOST_HOST_STOPPED as WORKER_LOST};
use jobhost::service::ListFilter;
use jobhost_tests::{harness, job, jobhost_cmd, manual_config, open};
use serde_json::json;

/// `jobhost run-once` on `store`, with its log (and each job's start) on stderr.
fn run_once(store: &Path, plugins: &Path) -> Child {
    run_once_isolated(store, plugins, "process")
}

fn run_once_isolated(store: &Path, plugins: &Path, isolation: &str) -> Child {
    jobhost_cmd()
        // A job's start is logged at debug.
        .env("JOBHOST_LOG", "info,jobhost::processor=debug")
        .args(["run-once", "--isolation", isolation, "--data-dir"])
        .arg(store)
        .arg("--plugin-dir")
        .arg(plugins)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jobhost runs")
}

/// Reads the child's stderr until a line contains `needle`.
fn wait_for_line(child: &mut Child, needle: &str) {
    let stderr = child.stderr.as_mut().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("stderr is text");
        if line.contains(needle) {
            return;
        }
    }
    panic!("the child exited without logging {needle:?}");
}

fn all_jobs(host: &jobhost::service::Host) -> Vec<jobhost::job::Job> {
    host.list(&ListFilter { limit: 1000, ..Default::default() }).unwrap()
}

#[test]
fn sigkill_mid_job_loses_nothing_and_the_interrupted_job_is_recovered() {
    let h = harness(manual_config(1), Arc::new(SystemClock));
    let ids: Vec<JobId> =
        [0.05, 5.0, 0.05].iter().map(|s| h.host.add(job("sleep", json!(s))).unwrap().job.id).collect();
    let (store_dir, plugins) = (h.store_dir, h.plugins);
    drop((h.host, h.store)); // release the store for the child

    let mut child = run_once(store_dir.path(), plugins.path());
    wait_for_line(&mut child, &format!("job {} (sleep) started", ids[1]));
    // Completions reach the disk within the flush interval (100 ms); the state file records the
    // latest finish once a flush covered it. Once it names the first job, its completion is
    // there to survive, while the second job still sleeps for seconds.
    let state = store_dir.path().join("store.state");
    jobhost_tests::wait_for_condition(Duration::from_secs(30), "the first job's finish on disk", || {
        std::fs::read(&state)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|s| s["last_finish"][1].as_u64() >= Some(ids[0].get()))
    });
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let (host, store) = open(store_dir.path(), plugins.path(), manual_config(1), Arc::new(SystemClock));
    let jobs = all_jobs(&host);
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids, "every acknowledged job is there");
    assert_eq!(jobs[0].status, Status::Completed);
    let interrupted = &jobs[1];
    assert_eq!((interrupted.status, interrupted.attempts), (Status::Queued, 1), "{interrupted:?}");
    assert!(interrupted.errors[0].ends_with(WORKER_LOST), "{:?}", interrupted.errors);
    assert_eq!(jobs[2].status, Status::Queued);
    drop((host, store));

    // `--max-jobs 1` processes exactly the next job (the interrupted one resumes first).
    let out = jobhost_cmd()
        .args(["run-once", "--max-jobs", "1", "--data-dir"])
        .arg(store_dir.path())
        .arg("--plugin-dir")
        .arg(plugins.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "processed 1 job(s): completed 1");
    let out = run_once(store_dir.path(), plugins.path()).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "processed 1 job(s): completed 1");
    let (host, _store) = open(store_dir.path(), plugins.path(), manual_config(1), Arc::new(SystemClock));
    assert!(all_jobs(&host).iter().all(|j| j.status == Status::Completed));
    assert_eq!(host.get(ids[1]).unwrap().unwrap().attempts, 2);
}

#[test]
fn a_job_that_aborts_the_host_every_time_ends_in_error_after_its_attempts() {
    let h = harness(manual_config(1), Arc::new(SystemClock));
    let poison = h.host.add(job("fatal", json!({"abort": true}))).unwrap().job.id;
    let fine = h.host.add(job("echo", json!("after"))).unwrap().job.id;
    let (store_dir, plugins) = (h.store_dir, h.plugins);
    drop((h.host, h.store));

    for run in 1..=3 {
        let out = run_once_isolated(store_dir.path(), plugins.path(), "none").wait_with_output().unwrap();
        assert!(!out.status.success(), "run {run}: the plugin aborts the process");
    }
    let out = run_once_isolated(store_dir.path(), plugins.path(), "none").wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "processed 1 job(s): completed 1");

    let (host, _store) = open(store_dir.path(), plugins.path(), manual_config(1), Arc::new(SystemClock));
    let poison = host.get(poison).unwrap().unwrap();
    assert_eq!((poison.status, poison.attempts, poison.errors.len()), (Status::Error, 3, 3), "{poison:?}");
    assert!(poison.errors.iter().all(|e| e.ends_with(WORKER_LOST)));
    assert_eq!(host.get(fine).unwrap().unwrap().status, Status::Completed);
}

#[test]
fn run_once_refuses_a_store_held_by_another_process() {
    let h = harness(manual_config(1), Arc::new(SystemClock));
    let out = run_once(h.store_dir.path(), h.plugins.path()).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
}
