//! `jobhost add`: one job (optionally waiting for it with a progress bar) or a batch from a
//! JSON-lines file.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::client::{Client, ClientArgs, ClientError};
use super::jobs_cmd::{print_ending, print_json, run};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::server::types::{AddJobRequest, AddedView, BatchAdded, JobView};

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The job factory, e.g. `echo`.
    #[arg(required_unless_present = "batch")]
    pub job: Option<String>,
    /// The job's input as JSON (default: null).
    pub input: Option<String>,
    #[arg(long)]
    pub queue: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit, e.g. `30s`.
    #[arg(long, value_parser = crate::durations::parse_duration)]
    pub timeout: Option<Duration>,
    /// Run no sooner than this long from now, e.g. `10s`, `5m` (the job is `scheduled`).
    #[arg(long, value_name = "DURATION", value_parser = crate::durations::parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run no sooner than this time (RFC 3339, e.g. 2026-11-22T16:40:00Z).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Add it held: it runs only after `jobhost start ID`.
    #[arg(long)]
    pub hold: bool,
    /// While a job of this factory with this key is pending, print that job's id instead of
    /// adding another.
    #[arg(long, value_name = "KEY")]
    pub unique_key: Option<String>,
    /// Wait for job ID to complete first (repeat for several): the job is `waiting` until
    /// they all complete, and ends `cancelled` if one fails for good.
    #[arg(long, value_name = "ID", conflicts_with_all = ["hold", "unique_key"])]
    pub after: Vec<String>,
    /// What a limit's `per_key` counts this job by (a customer, a tenant).
    #[arg(long, value_name = "KEY")]
    pub limit_key: Option<String>,
    /// With --after: run once those jobs have finished, however they ended.
    #[arg(long, requires = "after")]
    pub even_if_failed: bool,
    /// Wait for the job to finish (showing its progress), print its result, and exit 0
    /// completed, 1 error, 2 cancelled.
    #[arg(long, conflicts_with = "batch")]
    pub wait: bool,
    /// With --wait: give up waiting after this long, e.g. `30s` (exit 1; the job goes on).
    /// `--timeout` is the job's own time limit.
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = crate::durations::parse_duration)]
    pub wait_timeout: Option<Duration>,
    /// Add the jobs of a JSON Lines file instead (`-`: standard input), one
    /// `{"job": ..., "input": ...}` object a line, 10,000 a request; all of a request or none.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["job", "input", "hold", "unique_key", "delay", "at", "after"])]
    pub batch: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn add(args: &AddArgs) -> u8 {
    if let Some(path) = &args.batch {
        return add_batch(path, &args.client);
    }
    let input: Value = match args.input.as_deref().map(serde_json::from_str).transpose() {
        Ok(v) => v.unwrap_or(Value::Null),
        Err(e) => {
            eprintln!("error: INPUT_JSON is not valid JSON: {e}");
            return EXIT_USAGE;
        }
    };
    let request = AddJobRequest {
        job: args.job.clone().unwrap_or_default(),
        input,
        queue: args.queue.clone(),
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_seconds: args.timeout.map(|t| t.as_secs_f64()),
        delay_seconds: args.delay.map(|d| d.as_secs_f64()),
        run_at: args.at.clone(),
        hold: args.hold,
        unique_key: args.unique_key.clone(),
        depends_on: args
            .after
            .iter()
            .map(|id| match args.even_if_failed {
                true => serde_json::json!({"id": id, "on_failure": "run"}),
                false => Value::String(id.clone()),
            })
            .collect(),
        reference: None,
        limit_key: args.limit_key.clone(),
    };
    // Ctrl-C while waiting leaves the job running: say so, and how to stop it. Set before the
    // job is sent, so that no moment of the wait ends the process without saying what became
    // of the job.
    let added_id: Arc<Mutex<Option<String>>> = Arc::default();
    if args.wait {
        let known = added_id.clone();
        let _ = ctrlc::set_handler(move || {
            match crate::sync::lock(&known).as_deref() {
                Some(id) => eprintln!(
                    "\ninterrupted: job {id} goes on; `jobhost status {id}` shows it, `jobhost cancel {id}` stops it"
                ),
                None => eprintln!(
                    "\ninterrupted before the server answered: the job may have been added; `jobhost list` shows the jobs"
                ),
            }
            #[allow(clippy::disallowed_methods)] // nothing of ours to flush: the job is the server's
            std::process::exit(130);
        });
    }
    run(|| {
        let client = Client::new(&args.client);
        let added: AddedView = client.create("/v1/jobs", &request)?;
        let job = added.job;
        if added.existing && !args.client.json {
            eprintln!("job {} ({}) already holds that unique key; not added again", job.id, job.status);
        }
        if !args.wait {
            if args.client.json {
                print_json(&job);
            } else {
                println!("{}", job.id);
            }
            return Ok(EXIT_OK);
        }
        *crate::sync::lock(&added_id) = Some(job.id.clone());
        match wait_with_progress(&client, &job.id, args.wait_timeout)? {
            Some(job) => Ok(print_ending(&job, args.client.json)),
            None => {
                let (id, waited) =
                    (&job.id, humantime::format_duration(args.wait_timeout.unwrap_or_default()));
                eprintln!(
                    "job {id} did not finish within {waited}; it goes on: `jobhost status {id}` shows it, `jobhost cancel {id}` stops it"
                );
                Ok(EXIT_FAILED)
            }
        }
    })
}

/// Jobs sent per request by `add --batch` (the server's default limit).
const BATCH_CHUNK: usize = 10_000;

/// `add --batch FILE`: parses every line first (a bad line stops everything before anything is
/// sent), then sends the jobs in requests of 10,000.
fn add_batch(path: &std::path::Path, client_args: &ClientArgs) -> u8 {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return EXIT_USAGE;
        }
    };
    // (line number, job) for every non-empty line.
    let mut jobs: Vec<(usize, Value)> = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<AddJobRequest>(line) {
            Ok(job) => jobs.push((n + 1, serde_json::to_value(job).unwrap_or_default())),
            Err(e) => {
                eprintln!("error: {} line {}: {e}", path.display(), n + 1);
                return EXIT_USAGE;
            }
        }
    }
    if jobs.is_empty() {
        eprintln!("error: {} holds no jobs", path.display());
        return EXIT_USAGE;
    }
    run(|| {
        let client = Client::new(client_args);
        let mut ids = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(BATCH_CHUNK) {
            let body = serde_json::json!({"jobs": chunk.iter().map(|(_, j)| j).collect::<Vec<_>>()});
            match client.create::<BatchAdded>("/v1/jobs/batch", &body) {
                Ok(added) => ids.extend(added.jobs.into_iter().map(|j| j.id)),
                Err(ClientError::Api { code, message, items: Some(items), .. }) => {
                    eprintln!(
                        "error: {message} ({code}); {} job(s) of earlier requests were added",
                        ids.len()
                    );
                    for item in items {
                        let line = chunk.get(item.index).map_or(0, |(n, _)| *n);
                        eprintln!("  line {line}: {} ({})", item.message, item.code);
                    }
                    return Ok(EXIT_FAILED);
                }
                Err(e) => return Err(e),
            }
        }
        if client_args.json {
            print_json(&ids);
        } else {
            println!(
                "added {} job(s): {}..{}",
                ids.len(),
                ids.first().map_or("", String::as_str),
                ids.last().map_or("", String::as_str)
            );
        }
        Ok(EXIT_OK)
    })
}

/// Long-polls until the job finishes (`None` if `limit` passes first), drawing its progress on
/// a terminal.
fn wait_with_progress(
    client: &Client,
    id: &str,
    limit: Option<Duration>,
) -> Result<Option<JobView>, ClientError> {
    let deadline = limit.map(|l| std::time::Instant::now() + l);
    let attended = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(1000);
    if attended {
        let style = indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // Short polls refresh the bar; unattended, one long poll at a time is enough.
    let wait = if attended { Duration::from_millis(500) } else { Duration::from_secs(30) };
    let job = loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            bar.finish_and_clear();
            return Ok(None);
        }
        let job = client.job(id, Some(left.map_or(wait, |l| l.min(wait))))?;
        if job.status.is_finished() {
            break job;
        }
        match &job.progress {
            Some(p) => {
                bar.set_position((p.fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                bar.set_message(format!("job {id} {}: {}", job.status, p.message));
            }
            None => bar.set_message(format!("job {id} {}", job.status)),
        }
    };
    bar.finish_and_clear();
    Ok(Some(job))
}
