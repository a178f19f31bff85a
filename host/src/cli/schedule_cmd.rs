//! `jobhost schedule add|list|show|update|remove` (clients of the API) and `jobhost cron next`
//! (local: previews an expression without a server).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{segment, Client, ClientArgs};
use super::jobs_cmd::{print_json, run, IdArgs};
use super::{EXIT_OK, EXIT_USAGE};
use crate::clock::{rfc3339, Clock, SystemClock};
use crate::cron::CronSpec;
use crate::server::types::{MissedView, SchedulePatchRequest, ScheduleRequest, ScheduleView};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule: `--cron EXPR [--tz ZONE]`, or `--delay 10s` for a one-shot delay item.
    Add(AddScheduleArgs),
    /// List the schedules.
    List(ListArgs),
    /// Show one schedule.
    Show(IdArgs),
    /// Change a schedule (a new --cron or --tz reschedules it from now).
    Update(UpdateScheduleArgs),
    /// Delete a schedule (the jobs it made stay).
    Remove(IdArgs),
}

#[derive(Debug, Args)]
pub struct AddScheduleArgs {
    /// The job factory.
    pub job: String,
    /// The jobs' input as JSON (default: null).
    pub input: Option<String>,
    /// Five-field cron expression, e.g. "*/5 * * * *".
    #[arg(long, required_unless_present = "delay", conflicts_with = "delay")]
    pub cron: Option<String>,
    /// IANA time zone the expression is read in (default UTC), e.g. Europe/Zurich.
    #[arg(long = "tz", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// A one-shot delay item: one job this long from now, e.g. `10s`.
    #[arg(long, value_name = "DURATION", value_parser = crate::durations::parse_duration)]
    pub delay: Option<Duration>,
    #[arg(long)]
    pub queue: Option<String>,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Add it inactive.
    #[arg(long)]
    pub inactive: bool,
    /// Missed slots after downtime: one job for the period (default) or none.
    #[arg(long, value_enum, default_value = "run-once")]
    pub missed: MissedArg,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MissedArg {
    RunOnce,
    Skip,
}

impl From<MissedArg> for MissedView {
    fn from(m: MissedArg) -> Self {
        match m {
            MissedArg::RunOnce => MissedView::RunOnce,
            MissedArg::Skip => MissedView::Skip,
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateScheduleArgs {
    pub id: String,
    #[arg(long)]
    pub cron: Option<String>,
    /// A new zone (`UTC` to go back to UTC).
    #[arg(long = "tz", value_name = "ZONE")]
    pub timezone: Option<String>,
    /// New input JSON.
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    #[arg(long)]
    pub queue: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Pause (`false`) or resume (`true`) it.
    #[arg(long, value_name = "BOOL")]
    pub active: Option<bool>,
    #[arg(long, value_enum)]
    pub missed: Option<MissedArg>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Print the next fire times of an expression, one RFC 3339 UTC time a line.
    Next(CronNextArgs),
}

#[derive(Debug, Args)]
pub struct CronNextArgs {
    /// A five-field cron expression, e.g. "*/5 * * * *".
    pub expr: String,
    /// Times strictly after this RFC 3339 time (default: now).
    #[arg(long, value_name = "RFC3339")]
    pub after: Option<String>,
    /// How many.
    #[arg(short = 'n', default_value_t = 5)]
    pub count: usize,
    /// IANA time zone the expression is read in (default UTC).
    #[arg(long = "tz", value_name = "ZONE")]
    pub timezone: Option<String>,
}

fn parse_input(text: Option<&str>) -> Result<Value, u8> {
    match text.map(serde_json::from_str::<Value>).transpose() {
        Ok(v) => Ok(v.unwrap_or(Value::Null)),
        Err(e) => {
            eprintln!("error: INPUT_JSON is not valid JSON: {e}");
            Err(EXIT_USAGE)
        }
    }
}

pub fn schedule(command: &ScheduleCommand) -> u8 {
    match command {
        ScheduleCommand::Add(args) => add(args),
        ScheduleCommand::List(args) => list(&args.client),
        ScheduleCommand::Show(args) => run(|| {
            let s: ScheduleView =
                Client::new(&args.client).get(&format!("/v1/schedules/{}", segment(&args.id)), &[])?;
            print_schedule(&s, args.client.json);
            Ok(EXIT_OK)
        }),
        ScheduleCommand::Update(args) => update(args),
        ScheduleCommand::Remove(args) => run(|| {
            let s: ScheduleView =
                Client::new(&args.client).delete(&format!("/v1/schedules/{}", segment(&args.id)), &[])?;
            if args.client.json {
                print_json(&s);
            } else {
                println!("schedule {} removed", s.id);
            }
            Ok(EXIT_OK)
        }),
    }
}

fn add(args: &AddScheduleArgs) -> u8 {
    let input = match parse_input(args.input.as_deref()) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let request = ScheduleRequest {
        job: args.job.clone(),
        input,
        queue: args.queue.clone(),
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_seconds: None,
        cron: args.cron.clone(),
        timezone: args.timezone.clone(),
        delay_seconds: args.delay.map(|d| d.as_secs_f64()),
        active: !args.inactive,
        missed: args.missed.into(),
    };
    run(|| {
        let s: ScheduleView = Client::new(&args.client).create("/v1/schedules", &request)?;
        if args.client.json {
            print_json(&s);
        } else {
            println!("{} next run {}", s.id, s.next_run_at.as_deref().unwrap_or("-"));
        }
        Ok(EXIT_OK)
    })
}

fn update(args: &UpdateScheduleArgs) -> u8 {
    let input = match args.input.as_deref().map(|t| parse_input(Some(t))).transpose() {
        Ok(v) => v,
        Err(code) => return code,
    };
    let patch = SchedulePatchRequest {
        input,
        queue: args.queue.clone(),
        priority: args.priority,
        max_attempts: None,
        cron: args.cron.clone(),
        timezone: args.timezone.clone(),
        active: args.active,
        missed: args.missed.map(Into::into),
    };
    run(|| {
        let client = Client::new(&args.client);
        let s: ScheduleView = client.patch(&format!("/v1/schedules/{}", segment(&args.id)), &patch)?;
        print_schedule(&s, args.client.json);
        Ok(EXIT_OK)
    })
}

fn list(client_args: &ClientArgs) -> u8 {
    run(|| {
        let schedules: Vec<ScheduleView> = Client::new(client_args).get("/v1/schedules", &[])?;
        if client_args.json {
            print_json(&schedules);
            return Ok(EXIT_OK);
        }
        let rows = schedules.iter().map(|s| {
            vec![
                s.id.clone(),
                s.job.clone(),
                when(s),
                if s.active { "active" } else { "inactive" }.to_owned(),
                s.next_run_at.clone().unwrap_or_else(|| "-".to_owned()),
                s.last_job_id.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        });
        super::jobs_cmd::print_table(&["ID", "JOB", "WHEN", "STATE", "NEXT RUN", "LAST JOB"], rows);
        Ok(EXIT_OK)
    })
}

/// `*/5 * * * * (Europe/Zurich)` or `once after 10s`.
fn when(s: &ScheduleView) -> String {
    match (&s.cron, s.delay_seconds) {
        (Some(cron), _) => match &s.timezone {
            Some(tz) => format!("{cron} ({tz})"),
            None => cron.clone(),
        },
        (None, Some(delay)) => format!("once after {delay}s"),
        (None, None) => "-".to_owned(),
    }
}

fn print_schedule(s: &ScheduleView, json: bool) {
    if json {
        print_json(s);
        return;
    }
    let rows = [
        ("id", s.id.clone()),
        ("job", s.job.clone()),
        ("input", s.input.to_string()),
        ("queue", s.queue.clone()),
        ("when", when(s)),
        ("active", s.active.to_string()),
        ("next run", s.next_run_at.clone().unwrap_or_else(|| "-".to_owned())),
        ("last run", s.last_run_at.clone().unwrap_or_else(|| "-".to_owned())),
        ("last job", s.last_job_id.clone().unwrap_or_else(|| "-".to_owned())),
        ("runs", s.runs.to_string()),
    ];
    for (key, value) in rows {
        println!("{key:<9} {value}");
    }
    if let Some(error) = &s.last_error {
        println!("{:<9} {error}", "error");
    }
}

pub fn cron(command: &CronCommand) -> u8 {
    let CronCommand::Next(args) = command;
    let spec = match CronSpec::parse(&args.expr, args.timezone.as_deref()) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let after = match args.after.as_deref() {
        None => SystemClock.now(),
        Some(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => t.timestamp_micros(),
            Err(e) => {
                eprintln!("error: --after `{text}` is not an RFC 3339 time ({e}), e.g. 2026-11-22T16:40:00Z");
                return EXIT_USAGE;
            }
        },
    };
    let times = spec.upcoming(after, args.count);
    if times.is_empty() {
        // What the server answers 400 for: no schedule could be made of it.
        eprintln!("error: invalid cron: `{}` never matches a date (e.g. 30 February)", args.expr);
        return EXIT_USAGE;
    }
    for at in &times {
        println!("{}", rfc3339(*at));
    }
    if times.len() < args.count {
        eprintln!("no further fire times: `{}` matches {} time(s) from then on", args.expr, times.len());
    }
    EXIT_OK
}
