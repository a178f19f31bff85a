//! The client commands: `status`, `result`, `errors`, `cancel`, `retry`, `start`, `list`,
//! `remove`, `queues`, `queue start|stop`, `factories` (`add` is `add_cmd`'s). Each talks to
//! the server's API.
//!
//! Exit codes: 0 done (for a job: completed), 1 the job ended in `error` or the server refused
//! the request, 2 the job was cancelled, 3 bad usage or no server.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{segment, Client, ClientArgs, ClientError};
use super::{EXIT_CANCELLED, EXIT_FAILED, EXIT_OK};
use crate::job::Status;
use crate::server::types::{FactoryView, JobPage, JobView, QueueView, Removed};

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
    /// Only jobs with an error containing this text (any case; searched, a page at a time).
    #[arg(long)]
    pub error: Option<String>,
    /// Only jobs whose input has this top-level field and value: `FIELD=VALUE`.
    #[arg(long)]
    pub input: Option<String>,
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
    /// Start processing a queue, ending its pause on every host.
    Start(QueueArgs),
    /// Pause a queue: no host claims from it, restarts included, until `queue start` (it still
    /// accepts jobs; running jobs finish).
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
            e.exit_code()
        }
    }
}

pub(super) fn print_json(value: &impl serde::Serialize) {
    // Serializing our own types to a string cannot fail.
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Prints a finished job's result (or why it has none) and returns the exit code.
pub(super) fn print_ending(job: &JobView, json: bool) -> u8 {
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
                // Why, if the job says: a parent that failed, a timeout before it started.
                match job.errors.last() {
                    Some(reason) => eprintln!("job {} was cancelled: {reason}", job.id),
                    None => eprintln!("job {} was cancelled", job.id),
                }
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
        if let Some(deps) = &job.dependencies {
            let parents: Vec<&str> = deps.parents.iter().map(|p| p.id.as_str()).collect();
            rows.push(("after", parents.join(", ")));
            if job.status == Status::Waiting {
                rows.push(("waiting", format!("for {} of {}", deps.waiting_for, deps.parents.len())));
            }
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
        query.extend(args.error.clone().map(|s| ("error", s)));
        query.extend(args.input.clone().map(|s| ("input", s)));
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
        if let Some(searched) = page.searched {
            eprintln!("searched {searched} job(s)");
        }
        if let Some(next) = page.next {
            eprintln!("more: jobhost list --after {next} (with the same filters)");
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
            vec![
                q.name.clone(),
                queue_state(q).split(' ').next().unwrap_or_default().to_owned(),
                q.concurrency.to_string(),
                q.queued.to_string(),
                q.running.to_string(),
                q.jobs.get(&Status::Waiting).copied().unwrap_or(0).to_string(),
                q.jobs.get(&Status::Error).copied().unwrap_or(0).to_string(),
                q.paused.as_ref().map_or_else(String::new, |p| format!("by {} at {}", p.by, p.at)),
            ]
        });
        print_table(
            &["QUEUE", "STATE", "CONCURRENCY", "QUEUED", "RUNNING", "WAITING", "FAILED", "PAUSED"],
            rows,
        );
        Ok(EXIT_OK)
    })
}

/// `processing`, `paused by HOST at TIME` (the store's pause, on every host) or `stopped` (on
/// this host only: `serve --paused`, `autostart = false`).
fn queue_state(queue: &QueueView) -> String {
    match &queue.paused {
        Some(pause) => format!("paused by {} at {}", pause.by, pause.at),
        None if queue.processing => "processing".to_owned(),
        None => "stopped".to_owned(),
    }
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
            println!(
                "queue {}: {} ({} queued, {} running)",
                queue.name,
                queue_state(&queue),
                queue.queued,
                queue.running
            );
        }
        Ok(EXIT_OK)
    })
}

#[derive(Debug, Args)]
pub struct FactoriesArgs {
    #[command(subcommand)]
    pub command: Option<FactoriesCommand>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum FactoriesCommand {
    /// One factory: what it does, its defaults, an example, and the JSON Schema every input
    /// must match.
    Show {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn factories(args: &FactoriesArgs) -> u8 {
    if let Some(FactoriesCommand::Show { name, client }) = &args.command {
        return show_factory(name, client);
    }
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

fn show_factory(name: &str, client: &ClientArgs) -> u8 {
    run(|| {
        let f: FactoryView = Client::new(client).get(&format!("/v1/factories/{}", segment(name)), &[])?;
        if client.json {
            print_json(&f);
            return Ok(EXIT_OK);
        }
        println!("{} ({} {}): {}", f.name, f.plugin, f.plugin_version, f.description);
        if let Some(example) = &f.example {
            println!("example input: {example}");
        }
        if f.typed {
            println!("input schema (every submission is checked against it):");
            println!("{}", serde_json::to_string_pretty(&f.input_schema).unwrap_or_default());
        } else {
            println!("input: any JSON");
        }
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
