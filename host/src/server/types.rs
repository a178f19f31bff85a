//! The wire contract: request and response bodies of the HTTP API, shared by the server and the
//! CLI client so that both sides agree by construction. Field names are part of the contract:
//! add fields freely, never rename.

use std::collections::BTreeMap;

use super::extract::integral;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::job::{Job, Progress, Status};
use crate::plugins::{Conflict, FactoryInfo, PluginInfo, Rejected, Resolution};
use crate::schedule::{MissedPolicy, Schedule, Trigger};

/// `POST /v1/jobs`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddJobRequest {
    /// The factory name (`GET /v1/factories` lists them).
    pub job: String,
    /// The job's input; `null` when absent.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default, deserialize_with = "integral::i32")]
    pub priority: i32,
    /// Default: the factory's, else the server's (3).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit; default: the factory's, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Run no sooner than this many seconds from now (the job is `scheduled` until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Run no sooner than this time (RFC 3339); not with `delay_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// Add it `held`: it runs only after `POST /v1/jobs/{id}/start`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// While a job of the same factory with this key is scheduled, held, queued or
    /// processing, adding returns that job (`200`, `"existing": true`) instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
}

/// `POST /v1/jobs`: the job, and whether it already existed (a unique key's holder).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddedView {
    #[serde(flatten)]
    pub job: JobView,
    /// True when a pending job with the same factory and unique key was returned instead
    /// (status 200 rather than 201).
    pub existing: bool,
}

/// `POST /v1/jobs/batch`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to `limits.max_batch_jobs` (10,000) jobs, each as for `POST /v1/jobs` (without
    /// `unique_key`).
    #[schema(value_type = Vec<AddJobRequest>)]
    pub jobs: Vec<Value>,
}

/// The jobs of a batch, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAdded {
    pub jobs: Vec<BatchItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    pub id: String,
    pub status: Status,
}

/// A job as the API shows it. Times are RFC 3339 UTC with microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Decimal; unique for the life of the store, increasing with submission.
    pub id: String,
    /// The factory name.
    pub job: String,
    pub queue: String,
    pub status: Status,
    pub priority: i32,
    #[schema(value_type = Object)]
    pub input: Value,
    /// The factory's result once `completed`.
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// `[time] message`, oldest first.
    pub errors: Vec<String>,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub timeout_seconds: Option<f64>,
    pub created_at: String,
    /// When the latest attempt started.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// When the job may run next (its retry time while it waits for one).
    pub run_at: String,
    pub progress: Option<Progress>,
    /// A cancel arrived while it ran; it ends `cancelled` when its factory returns.
    pub cancel_requested: bool,
    pub unique_key: Option<String>,
    /// The schedule that made this job.
    pub schedule_id: Option<String>,
}

/// A job without its input, result and error texts: a row of a list that is read again every
/// few seconds (`GET /v1/jobs/summaries`), whatever size the jobs' data.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub job: String,
    pub queue: String,
    pub status: Status,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    /// How many errors its history holds.
    pub error_count: usize,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub run_at: String,
    pub progress: Option<Progress>,
    pub cancel_requested: bool,
}

impl From<&Job> for JobSummary {
    fn from(job: &Job) -> Self {
        JobSummary {
            id: job.id.to_string(),
            job: job.factory.clone(),
            queue: job.queue.clone(),
            status: job.status,
            priority: job.priority,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            error_count: job.errors.len(),
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            run_at: rfc3339(job.run_at),
            progress: job.progress.clone(),
            cancel_requested: job.cancel_requested,
        }
    }
}

/// `GET /v1/jobs/summaries`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SummaryPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Stored JSON text shown as JSON; text that is not (it never should be) shows as a string.
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id.to_string(),
            job: job.factory.clone(),
            queue: job.queue.clone(),
            status: job.status,
            priority: job.priority,
            input: json_value(&job.input),
            result: job.result.as_deref().map(json_value),
            errors: job.errors.clone(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            timeout_seconds: job.timeout_ms.map(|ms| ms as f64 / 1000.0),
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            run_at: rfc3339(job.run_at),
            progress: job.progress.clone(),
            cancel_requested: job.cancel_requested,
            unique_key: job.unique_key.clone(),
            schedule_id: job.schedule_id.map(|id| id.to_string()),
        }
    }
}

/// `GET /v1/jobs`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `DELETE /v1/jobs`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// Jobs removed per status (every requested status, 0 included).
    pub removed: BTreeMap<Status, u64>,
}

/// `GET /v1/stats`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Seconds per point.
    pub step: i64,
    /// The last hour, oldest first: each point's start (RFC 3339) and its jobs per second.
    pub series: Vec<StatsPoint>,
    /// Per queue, jobs completed and failed (ended in `error`) in the last hour.
    pub queues: BTreeMap<String, QueueTotals>,
    /// Attempts the percentiles are taken over (the latest, at most 4096).
    pub samples: usize,
    /// Attempt run time, milliseconds.
    pub run_ms: PercentilesView,
    /// From when a job was due to when its attempt started, milliseconds.
    pub wait_ms: PercentilesView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsPoint {
    pub at: String,
    pub completed: f64,
    pub failed: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueTotals {
    pub completed: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PercentilesView {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl StatsView {
    pub fn new(snap: crate::history::Snapshot, step: i64) -> Self {
        let p = |p: crate::history::Percentiles| PercentilesView {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            max: p.max,
        };
        StatsView {
            step,
            series: snap
                .series
                .iter()
                .map(|pt| StatsPoint {
                    at: crate::clock::rfc3339(pt.at * 1_000_000),
                    completed: pt.completed,
                    failed: pt.failed,
                })
                .collect(),
            queues: snap
                .totals
                .into_iter()
                .map(|(q, (completed, failed))| (q, QueueTotals { completed, failed }))
                .collect(),
            samples: snap.samples,
            run_ms: p(snap.run),
            wait_ms: p(snap.wait),
        }
    }
}

/// `POST /v1/jobs/retry`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    /// Jobs sent back to `queued`.
    pub retried: u64,
}

/// `GET /v1/factories`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FactoryView {
    pub name: String,
    pub plugin: String,
    pub plugin_version: String,
    pub description: String,
    /// An example input, as JSON text, when the factory declares one.
    pub example: Option<String>,
    pub max_attempts: Option<u32>,
    pub timeout_seconds: Option<f64>,
    pub retry_delay_seconds: Option<f64>,
}

impl From<&FactoryInfo> for FactoryView {
    fn from(f: &FactoryInfo) -> Self {
        let defaults = f.defaults;
        FactoryView {
            name: f.name.clone(),
            plugin: f.plugin.clone(),
            plugin_version: f.plugin_version.clone(),
            description: f.description.clone(),
            example: f.example.clone(),
            max_attempts: defaults.max_attempts,
            timeout_seconds: defaults.timeout.map(|d| d.as_secs_f64()),
            retry_delay_seconds: defaults.retry_delay.map(|d| d.as_secs_f64()),
        }
    }
}

/// `GET /v1/plugins`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginsView {
    pub plugins: Vec<PluginView>,
    /// Files the last scan refused, with the reason.
    pub rejected: Vec<RejectionView>,
    /// Factory names two files provide, and which one has each.
    pub conflicts: Vec<ConflictView>,
    /// Where plugin code runs: `process` (worker processes) or `none` (in the host).
    pub isolation: String,
}

/// A factory name two plugin files provide.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictView {
    pub factory: String,
    /// The file that has it.
    pub owner: String,
    /// The file that provides it too, unused.
    pub other: String,
    /// `pinned` (the config's `[factories]` table), `kept_loaded` (a reload kept the loaded
    /// owner) or `unresolved` (a starting service refuses).
    pub resolution: String,
    pub message: String,
}

impl From<&Conflict> for ConflictView {
    fn from(c: &Conflict) -> Self {
        let resolution = match c.resolution {
            Resolution::Pinned => "pinned",
            Resolution::KeptLoaded => "kept_loaded",
            Resolution::Unresolved => "unresolved",
        };
        ConflictView {
            factory: c.factory.clone(),
            owner: c.owner.display().to_string(),
            other: c.other.display().to_string(),
            resolution: resolution.to_owned(),
            message: c.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    pub path: String,
    pub factories: Vec<String>,
}

impl From<&PluginInfo> for PluginView {
    fn from(p: &PluginInfo) -> Self {
        PluginView {
            name: p.name.clone(),
            version: p.version.clone(),
            sdk_version: p.sdk_version.clone(),
            path: p.path.display().to_string(),
            factories: p.factories.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectionView {
    pub path: String,
    pub reason: String,
}

impl From<&Rejected> for RejectionView {
    fn from(r: &Rejected) -> Self {
        RejectionView { path: r.path.display().to_string(), reason: r.reason.clone() }
    }
}

/// `GET /v1/queues`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    pub name: String,
    /// Whether its workers are claiming jobs.
    pub processing: bool,
    pub concurrency: usize,
    /// Jobs waiting (ready or waiting for a retry time).
    pub queued: u64,
    /// Jobs running now.
    pub running: usize,
    /// Worker processes that died running this queue's jobs (each was replaced).
    #[serde(default)]
    pub worker_restarts: u64,
    /// Jobs running past their timeout or cancel plus the grace that nothing can stop
    /// (`isolation = "none"`).
    #[serde(default)]
    pub stuck: usize,
    /// The store's jobs of this queue by status (every host's, on a shared store); statuses
    /// with none are left out.
    #[serde(default)]
    pub jobs: BTreeMap<Status, u64>,
}

impl From<crate::service::QueueInfo> for QueueView {
    fn from(q: crate::service::QueueInfo) -> Self {
        QueueView {
            name: q.name,
            processing: q.processing,
            concurrency: q.concurrency,
            queued: q.queued,
            running: q.running,
            jobs: q.jobs,
            worker_restarts: q.worker_restarts,
            stuck: q.stuck,
        }
    }
}

/// `GET /v1/workers`: one worker of the host's pool (at most `max_workers`, shared by every
/// queue).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    pub id: usize,
    /// Its worker process (`isolation = "process"`), once started.
    pub pid: Option<u32>,
    /// `idle`, `running` or `backing_off` (waiting to start a worker process again after deaths
    /// in a row).
    pub state: String,
    /// The job it runs, and its queue.
    pub job: Option<String>,
    pub queue: Option<String>,
    /// Worker processes it started after its first (deaths, kills, reloads).
    pub restarts: u64,
}

impl From<&crate::service::WorkerStatus> for WorkerView {
    fn from(w: &crate::service::WorkerStatus) -> Self {
        WorkerView {
            id: w.id,
            pid: w.pid,
            state: w.state.as_str().to_owned(),
            job: w.job.map(|j| j.to_string()),
            queue: w.queue.clone(),
            restarts: w.restarts,
        }
    }
}

/// `GET /v1/health`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`; `unavailable` (with status 503) while the store cannot write; `shutting_down`
    /// once a stop signal arrived.
    pub status: String,
    pub version: String,
    /// Why the host is `unavailable`, e.g. `the store cannot write: disk full (no space left
    /// on device)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// `POST /v1/schedules`: a cron schedule (`cron`, optional `timezone`) or a one-shot delay
/// (`delay_seconds`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The factory of the jobs it makes.
    pub job: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, deserialize_with = "integral::i32")]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Five fields: minute hour day-of-month month day-of-week, e.g. `*/5 * * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA zone the cron expression is read in (default UTC), e.g. `Europe/Zurich`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A one-shot delay item: one job this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<f64>,
    /// Default true.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Slots missed while no scheduler ran: `run_once` (default: one job for the missed
    /// period) or `skip`.
    #[serde(default)]
    pub missed: MissedView,
}

fn default_true() -> bool {
    true
}

/// `PATCH /v1/schedules/{id}`: only the fields given change. A new `cron` or `timezone`, or
/// `active: true` on an inactive schedule, reschedules it from now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatchRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_i32")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "integral::opt_u32")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `UTC` to go back to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedView>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedView {
    #[default]
    RunOnce,
    Skip,
}

impl From<MissedView> for MissedPolicy {
    fn from(m: MissedView) -> Self {
        match m {
            MissedView::RunOnce => MissedPolicy::RunOnce,
            MissedView::Skip => MissedPolicy::Skip,
        }
    }
}

impl From<MissedPolicy> for MissedView {
    fn from(m: MissedPolicy) -> Self {
        match m {
            MissedPolicy::RunOnce => MissedView::RunOnce,
            MissedPolicy::Skip => MissedView::Skip,
        }
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub job: String,
    #[schema(value_type = Object)]
    pub input: Value,
    pub queue: String,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout_seconds: Option<f64>,
    /// Set for cron schedules.
    pub cron: Option<String>,
    /// The cron expression's zone; `null` is UTC.
    pub timezone: Option<String>,
    /// Set for one-shot delay items.
    pub delay_seconds: Option<f64>,
    pub active: bool,
    pub missed: MissedView,
    /// When it fires next; `null` when inactive or a delay item that has fired.
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    pub last_job_id: Option<String>,
    /// Why the last slot made no job, if it made none.
    pub last_error: Option<String>,
    /// Jobs made so far.
    pub runs: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        let (cron, timezone, delay_seconds) = match &s.trigger {
            Trigger::Cron { expr, timezone } => (Some(expr.clone()), timezone.clone(), None),
            Trigger::Delay { delay_ms } => (None, None, Some(*delay_ms as f64 / 1000.0)),
        };
        ScheduleView {
            id: s.id.to_string(),
            job: s.factory.clone(),
            input: json_value(&s.input),
            queue: s.queue.clone(),
            priority: s.priority,
            max_attempts: s.max_attempts,
            timeout_seconds: s.timeout_ms.map(|ms| ms as f64 / 1000.0),
            cron,
            timezone,
            delay_seconds,
            active: s.active,
            missed: s.missed.into(),
            next_run_at: s.next_run_at.filter(|_| s.active).map(rfc3339),
            last_run_at: s.last_run_at.map(rfc3339),
            last_job_id: s.last_job_id.map(|id| id.to_string()),
            last_error: s.last_error.clone(),
            runs: s.runs,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// `GET /v1/cron/next`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CronTimes {
    /// RFC 3339 UTC, strictly after `after`, increasing.
    pub times: Vec<String>,
}

/// `GET /v1/cron/check` (answered, never read back: no `Deserialize`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CronCheck {
    /// As `GET /v1/cron/next` gives them; empty when `error` is set.
    pub times: Vec<String>,
    /// The error `GET /v1/cron/next` would answer with; `null` when the expression is good.
    pub error: Option<super::error::ErrorDetail>,
}

/// `GET /v1/hosts`: a host using the store (with a PostgreSQL store, every host that shares
/// it; with the embedded store, this one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HostView {
    pub name: String,
    pub pid: u32,
    /// Its jobhost version.
    pub version: String,
    pub started_at: String,
    /// When it last told the store it was alive (every half lease).
    pub heartbeat_at: String,
    /// It did so within the last lease.
    pub alive: bool,
    /// It is the host answering this request.
    pub this: bool,
}

impl From<&crate::service::HostStatus> for HostView {
    fn from(h: &crate::service::HostStatus) -> Self {
        HostView {
            name: h.record.name.clone(),
            pid: h.record.pid,
            version: h.record.version.clone(),
            started_at: rfc3339(h.record.started_at),
            heartbeat_at: rfc3339(h.record.heartbeat_at),
            alive: h.alive,
            this: h.this,
        }
    }
}
