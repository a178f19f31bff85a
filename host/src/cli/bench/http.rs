//! `jobhost bench --server URL --clients K`: the same figures through a running server over
//! HTTP, with K keep-alive clients. Uses its own queue (`bench-<pid>`): latency is measured
//! first, then the queue is stopped while jobs are submitted and started to measure the drain;
//! the jobs stay on the server (retention removes them).

use std::time::{Duration, Instant};

use serde_json::json;

use super::{BenchArgs, Latencies};
use crate::cli::client::{Client, ClientArgs};
use crate::server::types::{AddJobRequest, AddedView, BatchAdded, JobView, QueueView};

pub fn bench(url: &str, args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.jobs > 0 && args.clients > 0, "--jobs and --clients must be at least 1");
    let client_args = ClientArgs { server: url.to_owned(), json: false };
    let client = Client::new(&client_args);
    let queue = format!("bench-{}", std::process::id());
    let request = |i: usize| AddJobRequest {
        job: "echo".to_owned(),
        input: json!({"n": i}),
        queue: Some(queue.clone()),
        priority: 0,
        max_attempts: None,
        timeout_seconds: None,
        delay_seconds: None,
        run_at: None,
        hold: false,
        unique_key: None,
        depends_on: Vec::new(),
        reference: None,
        limit_key: None,
    };

    // Latency first, while the server is idle: after the drain below it is still writing
    // that burst out (sled writes behind), and the first jobs then wait for it (measured:
    // the first job after a 40,000-job drain took 77 ms).
    // The queue exists once it holds a job: the first is added held, the queue started (it
    // may be configured not to autostart), then that job let go and waited for (unmeasured).
    let first: AddedView = client.create("/v1/jobs", &AddJobRequest { hold: true, ..request(0) })?;
    let _: QueueView = client.post(&format!("/v1/queues/{queue}/start"), None::<&()>)?;
    let mut job: JobView = client.post(&format!("/v1/jobs/{}/start", first.job.id), None::<&()>)?;
    while !job.status.is_finished() {
        job = client.job(&job.id, Some(Duration::from_secs(10)))?;
    }
    let mut latencies = Latencies::with_capacity(args.latency_jobs);
    for i in 0..args.latency_jobs {
        let started = Instant::now();
        let added: AddedView = client.create("/v1/jobs", &request(i))?;
        let acked = started.elapsed();
        let mut job: JobView = added.job;
        while !job.status.is_finished() {
            job = client.job(&job.id, Some(Duration::from_secs(10)))?;
        }
        latencies.push(acked, started.elapsed());
    }
    // Then the queue is stopped while jobs are submitted, so submission is measured alone.
    let _: QueueView = client.post(&format!("/v1/queues/{queue}/stop"), None::<&()>)?;

    let started = Instant::now();
    let per = args.jobs.div_ceil(args.clients);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let count = per.min(args.jobs.saturating_sub(c * per));
                let (client_args, request) = (&client_args, &request);
                scope.spawn(move || -> anyhow::Result<()> {
                    // One client, one keep-alive connection.
                    let client = Client::new(client_args);
                    for i in 0..count {
                        let _: AddedView = client.create("/v1/jobs", &request(c * per + i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a client panicked"))??;
        }
        Ok(())
    })?;
    let submit_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(10_000) {
        let jobs: Vec<AddJobRequest> = chunk.iter().map(|&i| request(i)).collect();
        let _: BatchAdded = client.create("/v1/jobs/batch", &json!({ "jobs": jobs }))?;
    }
    let batch_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let _: QueueView = client.post(&format!("/v1/queues/{queue}/start"), None::<&()>)?;
    // The queue holds the batch-submitted jobs too: twice `--jobs` drain.
    loop {
        let queues: Vec<QueueView> = client.get("/v1/queues", &[])?;
        let q = queues.iter().find(|q| q.name == queue);
        if q.is_none_or(|q| q.queued == 0 && q.running == 0) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the server did not drain in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let drain_s = started.elapsed().as_secs_f64() / 2.0;

    let mut report = json!({
        "server": url,
        "clients": args.clients,
        "jobs": args.jobs,
        "submitters": args.clients,
        "concurrency": "server's",
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "submit_jobs_per_s": (args.jobs as f64 / submit_s).round(),
        "batch_submit_jobs_per_s": (args.jobs as f64 / batch_s).round(),
        "drain_jobs_per_s": (args.jobs as f64 / drain_s).round(),
    });
    latencies.report(&mut report);
    Ok(report)
}
