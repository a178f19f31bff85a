//! The client commands: `add`, `status`, `result`, `errors`, `cancel`, `retry`, `list`,
//! `remove`, `queues`, `queue start|stop`, `factories`. Each talks to the server's API.
//!
//! Exit codes: 0 done (for a job: completed), 1 the job ended in `error` or the server refused
//! the request, 2 the job was cancelled, 3 bad usage or no server.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{segment, Client, ClientArgs, ClientError};
use super::{EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::job::Status;
use crate::server::types::{
    AddJobRequest, AddedView, BatchAdded, FactoryView, JobPage, JobView, QueueView, Removed,
};

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
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub timeout: Option<Duration>,
    /// Run no sooner than this long from now, e.g. `10s`, `5m` (the job is `scheduled`).
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration, conflicts_with = "at")]
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
    /// Wait for the job to finish (showing its progress), print its result, and exit 0
    /// completed, 1 error, 2 cancelled.
    #[arg(long, conflicts_with = "batch")]
    pub wait: bool,
    /// Add the jobs of a JSON Lines file instead (`-`: standard input), one
    /// `{"job": ..., "input": ...}` object a line, 10,000 a request; all of a request or none.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["job", "input", "hold", "unique_key", "delay", "at"])]
    pub batch: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The id (of a job or a schedule).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these statuses (comma-separated, e.g. `queued,processing`).
    #[arg(long)]
    pub status: Option<String>,
    /// Only jobs of this factory.
    #[arg(long)]
    pub job: Option<String>,
    #[arg(long)]
    pub queue: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Start after this job id (the `next` a previous page printed).
    #[arg(long)]
    pub after: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Finished statuses to remove (comma-separated); default completed,error,cancelled.
    #[arg(long)]
    pub status: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ClientOnly {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Start processing a queue.
    Start(QueueArgs),
    /// Stop claiming from a queue (it still accepts jobs; running jobs finish).
    Stop(QueueArgs),
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a client command and maps its failure to an exit code.
pub(super) fn run(f: impl FnOnce() -> Result<u8, ClientError>) -> u8 {
    match f() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                ClientError::Api { status: 401, .. } | ClientError::Unreachable { .. } => EXIT_USAGE,
                ClientError::Api { .. } | ClientError::Protocol { .. } => EXIT_FAILED,
            }
        }
    }
}

pub(super) fn print_json(value: &impl serde::Serialize) {
    // Serializing our own types to a string cannot fail.
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
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
    };
    run(|| {
        let client = Client::new(&args.client);
        let added: AddedView = client.post("/v1/jobs", Some(&request))?;
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
        let job = wait_with_progress(&client, &job.id)?;
        Ok(print_ending(&job, args.client.json))
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
            match client.post::<BatchAdded>("/v1/jobs/batch", Some(&body)) {
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

/// Long-polls until the job finishes, drawing its progress on a terminal.
fn wait_with_progress(client: &Client, id: &str) -> Result<JobView, ClientError> {
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
        let job = client.job(id, Some(wait))?;
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
    Ok(job)
}

/// Prints a finished job's result (or why it has none) and returns the exit code.
fn print_ending(job: &JobView, json: bool) -> u8 {
    if json {
        print_json(job);
    }
    match job.status {
        Status::Completed => {
            if !json {
                println!("{}", job.result.clone().unwrap_or(Value::Null));
            }
            EXIT_OK
        }
        Status::Error => {
            if !json {
                eprintln!("job {} failed after {} attempt(s):", job.id, job.attempts);
                for e in &job.errors {
                    eprintln!("  {e}");
                }
            }
            EXIT_FAILED
        }
        Status::Cancelled => {
            if !json {
                eprintln!("job {} was cancelled", job.id);
            }
            EXIT_CANCELLED
        }
        other => {
            if !json {
                eprintln!("job {} is {other}; it has no result yet", job.id);
            }
            EXIT_FAILED
        }
    }
}

pub fn status(args: &IdArgs) -> u8 {
    run(|| {
        let job = Client::new(&args.client).job(&args.id, None)?;
        if args.client.json {
            print_json(&job);
            return Ok(EXIT_OK);
        }
        let attempts = format!("{}/{}", job.attempts, job.max_attempts);
        let mut rows: Vec<(&str, String)> = vec![
            ("id", job.id.clone()),
            ("job", job.job.clone()),
            ("queue", job.queue.clone()),
            ("status", job.status.to_string()),
            ("attempts", attempts),
            ("created", job.created_at.clone()),
        ];
        rows.extend(job.started_at.clone().map(|t| ("started", t)));
        rows.extend(job.finished_at.clone().map(|t| ("finished", t)));
        if let Some(p) = &job.progress {
            rows.push(("progress", format!("{:.0}% {}", p.fraction * 100.0, p.message)));
        }
        if job.cancel_requested && !job.status.is_finished() {
            rows.push(("cancel", "requested".to_owned()));
        }
        rows.extend(job.errors.last().map(|e| ("last error", e.clone())));
        for (key, value) in rows {
            println!("{key:<10} {value}");
        }
        Ok(EXIT_OK)
    })
}

pub fn result(args: &IdArgs) -> u8 {
    run(|| {
        let job = Client::new(&args.client).job(&args.id, None)?;
        if args.client.json {
            println!("{}", job.result.clone().unwrap_or(Value::Null));
            return Ok(exit_for(job.status));
        }
        Ok(print_ending(&job, false))
    })
}

fn exit_for(status: Status) -> u8 {
    match status {
        Status::Completed => EXIT_OK,
        Status::Cancelled => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    }
}

pub fn errors(args: &IdArgs) -> u8 {
    run(|| {
        let job = Client::new(&args.client).job(&args.id, None)?;
        if args.client.json {
            print_json(&job.errors);
        } else {
            for e in &job.errors {
                println!("{e}");
            }
        }
        Ok(EXIT_OK)
    })
}

pub fn cancel(args: &IdArgs) -> u8 {
    run(|| {
        let job: JobView =
            Client::new(&args.client).post(&format!("/v1/jobs/{}/cancel", segment(&args.id)), None::<&()>)?;
        if args.client.json {
            print_json(&job);
        } else if job.status == Status::Cancelled {
            println!("job {} cancelled", job.id);
        } else {
            println!("job {} is running; asked it to stop (it ends cancelled when it returns)", job.id);
        }
        Ok(EXIT_OK)
    })
}

pub fn start(args: &IdArgs) -> u8 {
    run(|| {
        let path = format!("/v1/jobs/{}/start", segment(&args.id));
        let job: JobView = Client::new(&args.client).post(&path, None::<&()>)?;
        if args.client.json {
            print_json(&job);
        } else {
            println!("job {} {}", job.id, job.status);
        }
        Ok(EXIT_OK)
    })
}

pub fn retry(args: &IdArgs) -> u8 {
    run(|| {
        let job: JobView =
            Client::new(&args.client).post(&format!("/v1/jobs/{}/retry", segment(&args.id)), None::<&()>)?;
        if args.client.json {
            print_json(&job);
        } else {
            println!("job {} queued again ({} attempts)", job.id, job.max_attempts);
        }
        Ok(EXIT_OK)
    })
}

pub fn list(args: &ListArgs) -> u8 {
    run(|| {
        let mut query = vec![("limit", args.limit.to_string())];
        query.extend(args.status.clone().map(|s| ("status", s)));
        query.extend(args.job.clone().map(|s| ("job", s)));
        query.extend(args.queue.clone().map(|s| ("queue", s)));
        query.extend(args.after.clone().map(|s| ("after", s)));
        let page: JobPage = Client::new(&args.client).get("/v1/jobs", &query)?;
        if args.client.json {
            print_json(&page);
            return Ok(EXIT_OK);
        }
        let rows = page.jobs.iter().map(|j| {
            vec![
                j.id.clone(),
                j.status.to_string(),
                j.job.clone(),
                j.queue.clone(),
                format!("{}/{}", j.attempts, j.max_attempts),
                j.created_at.clone(),
            ]
        });
        print_table(&["ID", "STATUS", "JOB", "QUEUE", "ATTEMPTS", "CREATED"], rows);
        if let Some(next) = page.next {
            eprintln!("more: jobhost list --after {next}");
        }
        Ok(EXIT_OK)
    })
}

pub fn remove(args: &RemoveArgs) -> u8 {
    run(|| {
        let query: Vec<(&str, String)> = args.status.clone().map(|s| ("status", s)).into_iter().collect();
        let removed: Removed = Client::new(&args.client).delete("/v1/jobs", &query)?;
        if args.client.json {
            print_json(&removed);
        } else {
            let parts: Vec<String> = removed.removed.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!("removed: {}", parts.join(", "));
        }
        Ok(EXIT_OK)
    })
}

pub fn queues(args: &ClientOnly) -> u8 {
    run(|| {
        let queues: Vec<QueueView> = Client::new(&args.client).get("/v1/queues", &[])?;
        if args.client.json {
            print_json(&queues);
            return Ok(EXIT_OK);
        }
        let rows = queues.iter().map(|q| {
            let state = if q.processing { "processing" } else { "stopped" };
            vec![
                q.name.clone(),
                state.to_owned(),
                q.concurrency.to_string(),
                q.queued.to_string(),
                q.running.to_string(),
            ]
        });
        print_table(&["QUEUE", "STATE", "CONCURRENCY", "QUEUED", "RUNNING"], rows);
        Ok(EXIT_OK)
    })
}

pub fn queue(command: &QueueCommand) -> u8 {
    let (args, action) = match command {
        QueueCommand::Start(args) => (args, "start"),
        QueueCommand::Stop(args) => (args, "stop"),
    };
    run(|| {
        let path = format!("/v1/queues/{}/{action}", segment(&args.name));
        let queue: QueueView = Client::new(&args.client).post(&path, None::<&()>)?;
        if args.client.json {
            print_json(&queue);
        } else {
            let state = if queue.processing { "processing" } else { "stopped" };
            println!("queue {}: {state} ({} queued, {} running)", queue.name, queue.queued, queue.running);
        }
        Ok(EXIT_OK)
    })
}

pub fn factories(args: &ClientOnly) -> u8 {
    run(|| {
        let factories: Vec<FactoryView> = Client::new(&args.client).get("/v1/factories", &[])?;
        if args.client.json {
            print_json(&factories);
            return Ok(EXIT_OK);
        }
        let rows = factories.iter().map(|f| {
            vec![f.name.clone(), format!("{} {}", f.plugin, f.plugin_version), f.description.clone()]
        });
        print_table(&["FACTORY", "PLUGIN", "DESCRIPTION"], rows);
        Ok(EXIT_OK)
    })
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub(super) fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    lines.extend(rows);
    let mut widths: BTreeMap<usize, usize> = BTreeMap::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            let w = widths.entry(i).or_insert(0);
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in &lines {
        let last = line.len().saturating_sub(1);
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.clone() } else { format!("{c:<w$}", w = widths[&i]) })
            .collect();
        println!("{}", cells.join("  "));
    }
}
