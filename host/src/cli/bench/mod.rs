//! `jobhost bench`: throughput and latency of the whole path (store, processor, real `echo`
//! plugin) on a temporary embedded store; with `--baseline`, the store's own limit in the same
//! run; with `--server`, a running server over HTTP; with `--server --listing`, pages of the job
//! list at the server's depth. Speed is measured here, never in CI tests.

mod baseline;
mod graph;
mod http;
mod listing;

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::local::PluginArgs;
use super::stores::{JobStore, StoreOptions, WorkStore};
use super::{EXIT_OK, EXIT_USAGE};
use crate::job::{JobId, Status};
use crate::service::{AddJob, ClaimDurability, Host, JobEvent, ProcessorConfig, QueueConfig};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Jobs to submit and drain.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// Where the `echo` plugin runs: `process` (worker processes, the service's default) or
    /// `none` (in the benchmark's process).
    #[arg(long, value_enum, default_value_t = crate::config::Isolation::Process)]
    pub isolation: crate::config::Isolation,
    /// Concurrent submitters (each waits for its job to be durable).
    #[arg(long, default_value_t = 16)]
    pub submitters: usize,
    /// Workers draining the queue.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Jobs timed one at a time on an idle queue for the latency figures (the p99 of 2,000
    /// is its 20th-slowest job, not one disk hiccup).
    #[arg(long, default_value_t = 2000)]
    pub latency_jobs: usize,
    /// Also measure the store's own limit in this run: the same store operations (add; claim;
    /// complete) and flush policy from plain threads, without processor, plugin, JSON or HTTP.
    #[arg(long)]
    pub baseline: bool,
    /// How claims are kept before their job runs (`store.claims`).
    #[arg(long, value_enum, default_value_t = ClaimDurability::Journal)]
    pub claims: ClaimDurability,
    /// Fill the queue with this many jobs first, then measure submit and drain at that depth.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preload: usize,
    /// sled's page cache, MiB (`store.cache_bytes`); default: the store's default.
    #[arg(long, value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Drive a running server at this URL instead (token from JOBHOST_TOKEN).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: time pages of the job list per filter instead (after adding `--preload`
    /// held jobs to its own queue), not submission and drain.
    #[arg(long, requires = "server")]
    pub listing: bool,
    /// Keep-alive HTTP clients submitting at once (with --server).
    #[arg(long, value_name = "K", default_value_t = 16)]
    pub clients: usize,
    /// Time a fan-out/fan-in graph of `--jobs` jobs (at most 10,000: one batch) against the
    /// same jobs without edges, instead of the other figures.
    #[arg(long, conflicts_with_all = ["listing", "preload", "baseline"])]
    pub graph: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub plugins: PluginArgs,
}

pub fn run(allow_insecure: bool, args: &BenchArgs) -> u8 {
    let report = match &args.server {
        Some(url) if args.listing => listing::bench(url, args),
        Some(url) if args.graph => graph::http(url, args),
        Some(url) => http::bench(url, args),
        None => bench(allow_insecure, args),
    };
    match report {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else if args.listing {
                listing::print_human(&report);
            } else if args.graph {
                graph::print_human(&report);
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

fn bench(allow_insecure: bool, args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        args.jobs > 0 && args.submitters > 0 && args.concurrency > 0,
        "--jobs, --submitters and --concurrency must be at least 1"
    );
    let plugins = args.plugins.setup(args.isolation, allow_insecure).open()?;
    anyhow::ensure!(
        plugins.catalog().factory("echo").is_some(),
        "the `echo` plugin was not found in {:?} (use --plugin-dir)",
        args.plugins.dirs()
    );
    let dir = tempfile::tempdir()?;
    let queue = QueueConfig { concurrency: args.concurrency, autostart: false };
    let config = ProcessorConfig { default_queue: queue, ..ProcessorConfig::default() };
    let defaults = StoreOptions::default();
    let store_options = StoreOptions {
        claims: args.claims,
        cache_bytes: args.cache_mb.map_or(defaults.cache_bytes, |mb| mb * 1024 * 1024),
        ..defaults
    };
    let (host, store) = crate::runtime::open_host_with_store(dir.path(), store_options, plugins, config)?;
    let runtime = super::local::runtime()?;
    if args.graph {
        let _in_runtime = runtime.enter();
        let report = graph::local(&host, args);
        runtime.block_on(host.shutdown(Duration::from_secs(5)))?;
        return report;
    }

    let preload_started = Instant::now();
    baseline::preload(store.as_ref(), args.preload)?;
    let preload_s = preload_started.elapsed().as_secs_f64();

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
    let queued_bytes = store.size_on_disk()?;
    // With every job queued, before the batch phase: a 10,000-job batch is one transaction,
    // which sled holds in memory until it commits (the peak below includes it).
    let queued_rss = rss_bytes();

    // Batch submission (`POST /v1/jobs/batch` without HTTP): 10,000 jobs per call, to a queue
    // that is never run.
    let started = Instant::now();
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(10_000) {
        let batch =
            chunk.iter().map(|&i| AddJob { queue: Some("bench-batch".to_owned()), ..echo_job(i) }).collect();
        host.add_batch(batch)?;
    }
    let batch_s = started.elapsed().as_secs_f64();

    let (drain_s, latencies) = runtime.block_on(async {
        let mut events = host.subscribe();
        let started = Instant::now();
        host.start_queue("default");
        let mut done = 0;
        // With a preload, the measured jobs are the first `--jobs` to finish at that depth.
        while done < args.jobs {
            match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
                Ok(Ok(e)) if e.status == Status::Completed => done += 1,
                Ok(Ok(_)) => {}
                // Missed events: count from the store instead.
                Ok(Err(_)) => done = completed(store.as_ref())?,
                Err(_) => anyhow::bail!("no progress for 60 s ({done} of {} jobs drained)", args.jobs),
            }
        }
        // Drained means on disk: sled writes behind, and a rate that stops the clock before
        // its writes land measures its buffers, not the disk (seconds of backlog, measured).
        store.flush()?;
        let drain_s = started.elapsed().as_secs_f64();
        if args.preload > 0 {
            // The rest of the preload is not part of the measurement: stop and empty the queue.
            host.stop_queue("default");
            host.shutdown(Duration::from_secs(5)).await?;
            return anyhow::Ok((drain_s, Latencies::default()));
        }
        let mut latencies = Latencies::with_capacity(args.latency_jobs);
        for i in 0..args.latency_jobs {
            let (acked, done) = one_job_latency(&host, i).await?;
            latencies.push(acked, done);
        }
        anyhow::Ok((drain_s, latencies))
    })?;
    runtime.block_on(host.shutdown(Duration::from_secs(5)))?;
    let mut report = json!({
        "jobs": args.jobs,
        "submitters": args.submitters,
        "concurrency": args.concurrency,
        "submit_jobs_per_s": (args.jobs as f64 / submit_s).round(),
        "batch_submit_jobs_per_s": (args.jobs as f64 / batch_s).round(),
        "drain_jobs_per_s": (args.jobs as f64 / drain_s).round(),
        "queued_rss_bytes": queued_rss,
        "peak_rss_bytes": peak_rss_bytes(),
        "store_bytes": store.size_on_disk()?,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "claims": store_options.claims.as_str(),
        "isolation": format!("{:?}", args.isolation).to_lowercase(),
        "cache_bytes": store_options.cache_bytes,
        "preload": args.preload,
    });
    latencies.report(&mut report);
    if args.preload > 0 {
        report["preload_jobs_per_s"] = json!((args.preload as f64 / preload_s).round());
        report["bytes_per_queued_job"] =
            json!((queued_bytes as f64 / (args.preload + args.jobs) as f64).round());
    }
    drop((host, store));
    if args.baseline {
        let base = baseline::measure(args, store_options)?;
        report["baseline_submit_jobs_per_s"] = json!(base.submit_per_s.round());
        report["baseline_drain_jobs_per_s"] = json!(base.drain_per_s.round());
        report["baseline_latency_p50_ms"] = json!(percentile(&base.latencies, 0.50));
        report["baseline_latency_p99_ms"] = json!(percentile(&base.latencies, 0.99));
        let ratio = |ours: f64, base: f64| ((ours / base) * 100.0).round() / 100.0;
        let (drain, submit) = (args.jobs as f64 / drain_s, args.jobs as f64 / submit_s);
        report["drain_ratio"] = json!(ratio(drain, base.drain_per_s));
        report["submit_ratio"] = json!(ratio(submit, base.submit_per_s));
    }
    Ok(report)
}

pub(super) fn echo_job(i: usize) -> AddJob {
    AddJob { factory: "echo".to_owned(), input: Some(format!("{{\"n\":{i}}}")), ..AddJob::default() }
}

fn completed(store: &dyn JobStore) -> anyhow::Result<usize> {
    let counts = store.counts()?;
    Ok(counts.values().filter_map(|c| c.get(&Status::Completed)).sum::<u64>() as usize)
}

/// Idle-queue latencies in milliseconds, per job: until the submission is acknowledged
/// (durable), and until the job is done. The first part is the disk's flush, and telling
/// the two apart is what shows where a slow p99 comes from.
#[derive(Default)]
pub(super) struct Latencies {
    acked: Vec<f64>,
    done: Vec<f64>,
}

impl Latencies {
    pub(super) fn with_capacity(n: usize) -> Latencies {
        Latencies { acked: Vec::with_capacity(n), done: Vec::with_capacity(n) }
    }

    pub(super) fn push(&mut self, acked: Duration, done: Duration) {
        self.acked.push(acked.as_secs_f64() * 1000.0);
        self.done.push(done.as_secs_f64() * 1000.0);
    }

    /// Adds `latency_*` (submit to completion) and `submit_latency_*` (to the acknowledgement).
    pub(super) fn report(mut self, report: &mut serde_json::Value) {
        self.acked.sort_by(f64::total_cmp);
        self.done.sort_by(f64::total_cmp);
        report["latency_jobs"] = json!(self.done.len());
        report["latency_p50_ms"] = json!(percentile(&self.done, 0.50));
        report["latency_p99_ms"] = json!(percentile(&self.done, 0.99));
        report["latency_max_ms"] = json!(percentile(&self.done, 1.0));
        report["submit_latency_p50_ms"] = json!(percentile(&self.acked, 0.50));
        report["submit_latency_p99_ms"] = json!(percentile(&self.acked, 0.99));
    }
}

/// Submit (durably) one job on an idle queue and wait for its completion: the times to the
/// acknowledgement and to completion.
async fn one_job_latency(host: &Host, i: usize) -> anyhow::Result<(Duration, Duration)> {
    let mut events = host.subscribe();
    let started = Instant::now();
    let adder = host.clone();
    let added = tokio::task::spawn_blocking(move || adder.add(echo_job(i))).await??;
    let acked = started.elapsed();
    wait_finished(host, &mut events, added.job.id).await?;
    Ok((acked, started.elapsed()))
}

async fn wait_finished(
    host: &Host,
    events: &mut tokio::sync::broadcast::Receiver<JobEvent>,
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

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[idx] * 1000.0).round() / 1000.0
}

/// The process's peak resident set (VmHWM), or 0 where /proc is unavailable.
pub(super) fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// The process's resident set now (VmRSS), or 0 where /proc is unavailable.
fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn print_human(r: &serde_json::Value) {
    // Figures print as integers or as they are; a field this kind of run has no figure for
    // (RSS and store size are unknown over HTTP) is left out rather than shown as zero.
    let n = |key: &str| match &r[key] {
        serde_json::Value::Number(v) if v.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            format!("{:.0}", v.as_f64().unwrap_or(0.0))
        }
        serde_json::Value::Null => "?".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    match r["server"].as_str() {
        Some(url) => println!(
            "{} echo jobs against {url}, {} keep-alive clients, the server's concurrency",
            n("jobs"),
            n("clients")
        ),
        None => println!(
            "{} echo jobs, {} submitters, concurrency {} ({} CPUs), claims {}",
            n("jobs"),
            n("submitters"),
            n("concurrency"),
            n("cpus"),
            n("claims")
        ),
    }
    println!(
        "submit (durable):   {} jobs/s; in batches of 10,000: {} jobs/s",
        n("submit_jobs_per_s"),
        n("batch_submit_jobs_per_s")
    );
    println!("drain:              {} jobs/s", n("drain_jobs_per_s"));
    if r["latency_p50_ms"].as_f64().is_some_and(|ms| ms > 0.0) {
        println!(
            "latency idle queue: p50 {} ms, p99 {} ms, max {} ms (submit to completion)",
            n("latency_p50_ms"),
            n("latency_p99_ms"),
            n("latency_max_ms")
        );
        println!(
            "  of which submit:  p50 {} ms, p99 {} ms (until acknowledged, durable)",
            n("submit_latency_p50_ms"),
            n("submit_latency_p99_ms")
        );
    } else {
        // `--preload` or `--latency-jobs 0`: the queue is never idle, or nothing was timed.
        println!("latency idle queue: not measured");
    }
    let mib = |key: &str| r[key].as_f64().unwrap_or(0.0) / 1048576.0;
    if r["queued_rss_bytes"].is_number() {
        println!(
            "RSS:                {:.1} MiB with every job queued, peak {:.1} MiB",
            mib("queued_rss_bytes"),
            mib("peak_rss_bytes")
        );
        println!("store on disk:      {:.1} MiB", mib("store_bytes"));
    }
    if r["preload"].as_u64().unwrap_or(0) > 0 {
        println!(
            "preloaded:          {} jobs ({} jobs/s), {} bytes on disk per queued job",
            n("preload"),
            n("preload_jobs_per_s"),
            n("bytes_per_queued_job")
        );
    }
    if r["baseline_drain_jobs_per_s"].is_number() {
        println!(
            "store baseline:     submit {} jobs/s, drain {} jobs/s; ours/baseline: submit {}, drain {}",
            n("baseline_submit_jobs_per_s"),
            n("baseline_drain_jobs_per_s"),
            n("submit_ratio"),
            n("drain_ratio")
        );
        println!(
            "store baseline:     latency p50 {} ms, p99 {} ms (add, durable; claim; finish)",
            n("baseline_latency_p50_ms"),
            n("baseline_latency_p99_ms")
        );
    }
}
