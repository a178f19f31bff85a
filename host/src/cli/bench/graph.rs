//! `jobhost bench --graph`: a fan-out/fan-in graph of `--jobs` echo jobs (one root, the rest
//! each waiting for it, and a sink waiting for all of those) submitted in one batch and
//! drained, beside the same number of jobs without edges: what dependencies cost. In this
//! process on the embedded store, or with `--server` through a running server (any store).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::BenchArgs;
use crate::cli::client::{Client, ClientArgs};
use crate::job::{NewParent, OnFailure, Status, Upon};
use crate::server::types::{BatchAdded, JobView, QueueView};
use crate::service::{AddJob, Host};

/// The graph's jobs in `queue`: position 0 the root, the last the sink.
fn graph(n: usize, queue: &str) -> Vec<AddJob> {
    let job = |i: usize, depends_on: Vec<NewParent>| AddJob {
        factory: "echo".to_owned(),
        input: Some(format!("{{\"n\":{i}}}")),
        queue: Some(queue.to_owned()),
        depends_on,
        ..AddJob::default()
    };
    let on = |i: usize| NewParent { upon: Upon::Item(i), on_failure: OnFailure::Cancel };
    let mut jobs = vec![job(0, Vec::new())];
    jobs.extend((1..n - 1).map(|i| job(i, vec![on(0)])));
    jobs.push(job(n - 1, (1..n - 1).map(on).collect()));
    jobs
}

fn check(args: &BenchArgs) -> anyhow::Result<usize> {
    anyhow::ensure!((3..=10_000).contains(&args.jobs), "--graph takes --jobs from 3 to 10000 (one batch)");
    Ok(args.jobs)
}

fn report(n: usize, graph: (f64, f64), flat: (f64, f64)) -> Value {
    let per_s = |s: f64| (n as f64 / s).round();
    json!({
        "graph_jobs": n,
        "graph_submit_s": graph.0,
        "graph_drain_s": graph.1,
        "graph_drain_jobs_per_s": per_s(graph.1),
        "flat_submit_s": flat.0,
        "flat_drain_s": flat.1,
        "flat_drain_jobs_per_s": per_s(flat.1),
        "graph_vs_flat": ((graph.0 + graph.1) / (flat.0 + flat.1) * 100.0).round() / 100.0,
    })
}

/// In this process: `host` has the queues `graph` and `flat` stopped.
pub fn local(host: &Host, args: &BenchArgs) -> anyhow::Result<Value> {
    let n = check(args)?;
    let done = |queue: &str| -> anyhow::Result<u64> {
        let queues = host.queues()?;
        Ok(queues
            .iter()
            .find(|q| q.name == queue)
            .and_then(|q| q.jobs.get(&Status::Completed).copied())
            .unwrap_or(0))
    };
    let timed = |queue: &str, jobs: Vec<AddJob>| -> anyhow::Result<(f64, f64)> {
        let started = Instant::now();
        host.add_batch(jobs)?;
        let submit = started.elapsed().as_secs_f64();
        let started = Instant::now();
        host.start_queue(queue);
        while done(queue)? < n as u64 {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "{queue}: not drained in 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        host.flush()?;
        Ok((submit, started.elapsed().as_secs_f64()))
    };
    let flat_jobs = graph(n, "flat").into_iter().map(|j| AddJob { depends_on: Vec::new(), ..j }).collect();
    let flat = timed("flat", flat_jobs)?;
    let graph = timed("graph", graph(n, "graph"))?;
    Ok(report(n, graph, flat))
}

/// Through the server at `url`, in two queues of its own.
pub fn http(url: &str, args: &BenchArgs) -> anyhow::Result<Value> {
    let n = check(args)?;
    let client = Client::new(&ClientArgs { server: url.to_owned(), json: false });
    let pid = std::process::id();
    let body = |queue: &str, edges: bool| -> Value {
        let jobs: Vec<Value> = (0..n)
            .map(|i| {
                let mut job = json!({"job": "echo", "input": {"n": i}, "queue": queue});
                if edges && i == 0 {
                    job["ref"] = json!("root");
                } else if edges && i < n - 1 {
                    job["ref"] = json!(format!("m{i}"));
                    job["depends_on"] = json!([{"ref": "root"}]);
                } else if edges {
                    job["depends_on"] = (1..n - 1).map(|m| json!({"ref": format!("m{m}")})).collect();
                }
                job
            })
            .collect();
        json!({ "jobs": jobs })
    };
    // A new queue starts with its first jobs: the drain overlaps nothing but the batch's own
    // answer, and is timed from it.
    let timed = |queue: String, edges: bool| -> anyhow::Result<(f64, f64)> {
        let started = Instant::now();
        let added: BatchAdded = client.create("/v1/jobs/batch", &body(&queue, edges))?;
        let submit = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let last = added.jobs.last().map(|j| j.id.clone()).unwrap_or_default();
        loop {
            let queues: Vec<QueueView> = client.get("/v1/queues", &[])?;
            let completed =
                queues.iter().find(|q| q.name == queue).and_then(|q| q.jobs.get(&Status::Completed).copied());
            if completed == Some(n as u64) {
                break;
            }
            let sink: JobView = client.job(&last, None)?;
            anyhow::ensure!(
                !matches!(sink.status, Status::Cancelled | Status::Error),
                "job {last} ended {}",
                sink.status
            );
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "{queue}: not drained in 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok((submit, started.elapsed().as_secs_f64()))
    };
    let flat = timed(format!("bench-flat-{pid}"), false)?;
    let graph = timed(format!("bench-graph-{pid}"), true)?;
    let mut out = report(n, graph, flat);
    out["server"] = json!(url);
    Ok(out)
}

pub fn print_human(r: &Value) {
    let f = |key: &str| r[key].as_f64().unwrap_or(0.0);
    println!(
        "{} echo jobs: one root, {} waiting for it, one waiting for all of those",
        r["graph_jobs"],
        f("graph_jobs") - 2.0
    );
    println!(
        "graph:  submitted in {:.3} s (one batch), drained in {:.3} s ({} jobs/s)",
        f("graph_submit_s"),
        f("graph_drain_s"),
        r["graph_drain_jobs_per_s"]
    );
    println!(
        "flat:   submitted in {:.3} s (one batch), drained in {:.3} s ({} jobs/s)",
        f("flat_submit_s"),
        f("flat_drain_s"),
        r["flat_drain_jobs_per_s"]
    );
    println!("graph / flat (submit + drain): {:.2}", f("graph_vs_flat"));
}
