//! `jobhost bench`: throughput and latency of the whole path (store, processor, real `echo`
//! plugin) on a temporary embedded store. Speed is measured here, never in CI tests.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::local::{open_host, PluginArgs};
use super::{EXIT_OK, EXIT_USAGE};
use crate::job::{JobId, Status};
use crate::plugins::LoadOptions;
use crate::processor::{AddJob, Host, ProcessorConfig, QueueConfig};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs to submit and drain.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// Concurrent submitters (each waits for its job to be durable).
    #[arg(long, default_value_t = 16)]
    pub submitters: usize,
    /// Workers draining the queue.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Jobs timed one at a time on an idle queue for the latency figures.
    #[arg(long, default_value_t = 500)]
    pub latency_jobs: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub plugins: PluginArgs,
}

pub fn run(options: LoadOptions, args: &BenchArgs) -> u8 {
    match bench(options, args) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print_human(&report);
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn bench(options: LoadOptions, args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        args.jobs > 0 && args.submitters > 0 && args.concurrency > 0,
        "--jobs, --submitters and --concurrency must be at least 1"
    );
    let registry = args.plugins.load(options);
    anyhow::ensure!(
        registry.get("echo").is_some(),
        "the `echo` plugin was not found in {:?} (use --plugin-dir)",
        args.plugins.dirs()
    );
    let dir = tempfile::tempdir()?;
    let queue = QueueConfig { concurrency: args.concurrency, autostart: false };
    let config = ProcessorConfig { default_queue: queue, ..ProcessorConfig::default() };
    let (host, store) = open_host(dir.path(), registry, config)?;
    let runtime = tokio::runtime::Runtime::new()?;

    // Submit with the queue stopped, so submission is measured alone.
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let per = args.jobs.div_ceil(args.submitters);
        let handles: Vec<_> = (0..args.submitters)
            .map(|s| {
                let host = host.clone();
                let count = per.min(args.jobs.saturating_sub(s * per));
                scope.spawn(move || -> anyhow::Result<()> {
                    for i in 0..count {
                        host.add(echo_job(i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a submitter panicked"))??;
        }
        Ok(())
    })?;
    let submit_s = started.elapsed().as_secs_f64();

    let (drain_s, latencies) = runtime.block_on(async {
        let mut events = host.subscribe();
        let started = Instant::now();
        host.start_queue("default");
        let mut done = 0;
        while done < args.jobs {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Ok(e)) if e.status == Status::Completed => done += 1,
                Ok(Ok(_)) => {}
                // Missed events: count from the store instead.
                Ok(Err(_)) => done = completed(&host)?,
                Err(_) => anyhow::bail!("no progress for 60 s ({done} of {} jobs drained)", args.jobs),
            }
        }
        let drain_s = started.elapsed().as_secs_f64();
        let mut latencies = Vec::with_capacity(args.latency_jobs);
        for i in 0..args.latency_jobs {
            latencies.push(one_job_latency(&host, i).await?);
        }
        anyhow::Ok((drain_s, latencies))
    })?;
    runtime.block_on(host.shutdown(Duration::from_secs(5)))?;
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "jobs": args.jobs,
        "submitters": args.submitters,
        "concurrency": args.concurrency,
        "submit_jobs_per_s": (args.jobs as f64 / submit_s).round(),
        "drain_jobs_per_s": (args.jobs as f64 / drain_s).round(),
        "latency_jobs": sorted.len(),
        "latency_p50_ms": percentile(&sorted, 0.50),
        "latency_p99_ms": percentile(&sorted, 0.99),
        "peak_rss_bytes": peak_rss_bytes(),
        "store_bytes": store.size_on_disk()?,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
    }))
}

fn echo_job(i: usize) -> AddJob {
    AddJob { factory: "echo".to_owned(), input: Some(format!("{{\"n\":{i}}}")), ..AddJob::default() }
}

fn completed(host: &Host) -> anyhow::Result<usize> {
    let counts = host.store().counts()?;
    Ok(counts.values().filter_map(|c| c.get(&Status::Completed)).sum::<u64>() as usize)
}

/// Submit (durably) one job on an idle queue and wait for its completion; milliseconds.
async fn one_job_latency(host: &Host, i: usize) -> anyhow::Result<f64> {
    let mut events = host.subscribe();
    let started = Instant::now();
    let adder = host.clone();
    let added = tokio::task::spawn_blocking(move || adder.add(echo_job(i))).await??;
    wait_finished(host, &mut events, added.job.id).await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

async fn wait_finished(
    host: &Host,
    events: &mut tokio::sync::broadcast::Receiver<crate::processor::JobEvent>,
    id: JobId,
) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(e)) if e.id == id && e.status.is_finished() => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => {
                if host.get(id)?.is_some_and(|j| j.status.is_finished()) {
                    return Ok(());
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[idx] * 1000.0).round() / 1000.0
}

/// The process's peak resident set (VmHWM), or 0 where /proc is unavailable.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn print_human(r: &serde_json::Value) {
    println!(
        "{} echo jobs, {} submitters, concurrency {} ({} CPUs)",
        r["jobs"], r["submitters"], r["concurrency"], r["cpus"]
    );
    println!("submit (durable):   {} jobs/s", r["submit_jobs_per_s"]);
    println!("drain:              {} jobs/s", r["drain_jobs_per_s"]);
    println!(
        "latency idle queue: p50 {} ms, p99 {} ms (submit to completion)",
        r["latency_p50_ms"], r["latency_p99_ms"]
    );
    println!("peak RSS:           {:.1} MiB", r["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0);
    println!("store on disk:      {:.1} MiB", r["store_bytes"].as_f64().unwrap_or(0.0) / 1048576.0);
}
