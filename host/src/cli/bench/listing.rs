//! `jobhost bench --server URL --listing`: how long a page of the job list takes at the
//! server's depth, per filter the dashboard uses. With `--preload N` it first adds N held
//! jobs (one in 100 of factory `sleep`, the rest `echo`) to its own queue `bench-list-<pid>`,
//! 10,000 per batch; held jobs never run, so they stay for the measurement (and after it:
//! use a scratch server).

use std::time::Instant;

use serde_json::json;

use super::{percentile, BenchArgs};
use crate::cli::client::{Client, ClientArgs};
use crate::server::types::{BatchAdded, JobPage};

/// Requests timed per filter (after one untimed warm-up).
const ROUNDS: usize = 50;

pub fn bench(url: &str, args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(&ClientArgs { server: url.to_owned(), json: false });
    let queue = format!("bench-list-{}", std::process::id());
    let started = Instant::now();
    let mut added = 0;
    while added < args.preload {
        let count = 10_000.min(args.preload - added);
        let jobs: Vec<serde_json::Value> = (added..added + count)
            .map(|i| {
                let factory = if i % 100 == 0 { "sleep" } else { "echo" };
                json!({"job": factory, "input": i, "queue": queue, "hold": true})
            })
            .collect();
        let _: BatchAdded = client.create("/v1/jobs/batch", &json!({ "jobs": jobs }))?;
        added += count;
    }
    let preload_s = started.elapsed().as_secs_f64();

    // A cursor halfway through the server's jobs: a page deep in the list.
    let newest: JobPage = client.get("/v1/jobs", &[("order", "newest".into()), ("limit", "1".into())])?;
    let middle = newest.jobs.first().and_then(|j| j.id.parse::<u64>().ok()).unwrap_or(0) / 2;
    let filters: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("status=error", vec![("status", "error".into())]),
        ("status=held, newest first", vec![("status", "held".into()), ("order", "newest".into())]),
        ("status=held after the middle", vec![("status", "held".into()), ("after", middle.to_string())]),
        ("job=sleep", vec![("job", "sleep".into())]),
        ("queue=<its queue>", vec![("queue", queue.clone())]),
        ("status=held, queue=<its queue>", vec![("status", "held".into()), ("queue", queue.clone())]),
        ("no filter, newest first", vec![("order", "newest".into())]),
    ];
    let mut pages = Vec::new();
    for (name, mut query) in filters {
        query.push(("limit", "10".into()));
        let mut ms = Vec::with_capacity(ROUNDS);
        let mut found = 0;
        for round in 0..=ROUNDS {
            let started = Instant::now();
            let page: JobPage = client.get("/v1/jobs", &query)?;
            if round > 0 {
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            found = page.jobs.len();
        }
        ms.sort_by(f64::total_cmp);
        pages.push(json!({
            "filter": name,
            "jobs_on_page": found,
            "p50_ms": percentile(&ms, 0.5),
            "p99_ms": percentile(&ms, 0.99),
            "max_ms": percentile(&ms, 1.0),
        }));
    }
    let mut report = json!({ "server": url, "preload": args.preload, "rounds": ROUNDS, "pages": pages });
    if args.preload > 0 {
        report["preload_jobs_per_s"] = json!((args.preload as f64 / preload_s).round());
    }
    Ok(report)
}

/// The listing report, as a table.
pub fn print_human(r: &serde_json::Value) {
    println!("server:   {}", r["server"].as_str().unwrap_or("?"));
    if r["preload"].as_u64().unwrap_or(0) > 0 {
        println!("preloaded: {} held jobs ({} jobs/s)", r["preload"], r["preload_jobs_per_s"]);
    }
    println!("a page of 10, {} requests each (ms):", r["rounds"]);
    println!("  {:<34} {:>5} {:>8} {:>8} {:>8}", "filter", "jobs", "p50", "p99", "max");
    for page in r["pages"].as_array().into_iter().flatten() {
        println!(
            "  {:<34} {:>5} {:>8.2} {:>8.2} {:>8.2}",
            page["filter"].as_str().unwrap_or("?"),
            page["jobs_on_page"],
            page["p50_ms"].as_f64().unwrap_or(0.0),
            page["p99_ms"].as_f64().unwrap_or(0.0),
            page["max_ms"].as_f64().unwrap_or(0.0),
        );
    }
}
