//! Jobs on the wire: adding one or a batch, a job and its summary, pages, removal and retry counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::job::{Callback, Deps, Job, OnFailure, Progress, Status};
use crate::server::extract::{integral, object};
use crate::service::GroupState;

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
    /// Jobs this one waits for: it is `waiting` until every one of them completes, then
    /// `queued`. Each is a job id, or an object naming a job by `id` or, in a batch, another
    /// job of the batch by its `ref`, with `on_failure`: `cancel` (the default: this job ends
    /// `cancelled`, naming the failed one; retrying that one brings this one back) or `run`
    /// (this job runs once that one has finished, however it ended). At most 10,000; not with
    /// `hold` or `unique_key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<DependencyRef>)]
    pub depends_on: Vec<Value>,
    /// What a limit's `per_key` counts this job by (a customer, a tenant): `PUT
    /// /v1/limits/{kind}/{name}` with `per_key: 2` runs at most two jobs of one key at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_key: Option<String>,
    /// In a batch: this job's name for the others' `depends_on` (`{"ref": "…"}`), unique
    /// within the batch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// An entry of `depends_on`: a job id, or an object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DependencyRef {
    /// A stored job's id.
    Id(String),
    Edge(DependencyEdge),
}

/// A parent named by `id` (a stored job) or `ref` (a job of the same batch), exactly one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DependencyEdge {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Default `cancel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

/// A job's parents, as its view shows them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DependenciesView {
    /// In the order given (in `GET /v1/jobs/{id}`; empty in lists, which give `total`).
    pub parents: Vec<ParentView>,
    /// How many parents it has.
    pub total: u32,
    /// Parents it still waits for.
    pub waiting_for: u32,
    /// Parents whose failure cancels it (not retried since).
    pub failed: u32,
    /// While it is `cancelled` because a parent failed: that parent's id.
    pub blocked_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ParentView {
    pub id: String,
    pub on_failure: OnFailure,
}

impl DependenciesView {
    /// `job`'s, if it has parents (listed as the store filled them in).
    fn of(job: &Job) -> Option<Self> {
        let d: &Deps = job.deps.as_ref()?;
        Some(DependenciesView {
            parents: job
                .parents
                .iter()
                .map(|p| ParentView { id: p.id.to_string(), on_failure: p.on_failure })
                .collect(),
            total: d.total,
            waiting_for: d.left,
            failed: d.failed,
            blocked_by: d.blocked_by.map(|id| id.to_string()),
        })
    }
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
    /// Each kept as its text until it is read (a parsed tree would cost many times the body).
    #[schema(value_type = Vec<AddJobRequest>)]
    pub jobs: Vec<Box<serde_json::value::RawValue>>,
    /// Makes the batch's jobs a group, with callbacks that run once when all of them have
    /// finished (`GET /v1/groups/{id}` shows its progress).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::opt")]
    pub group: Option<GroupRequest>,
}

/// A batch's group: a name, and callback jobs (each as for `POST /v1/jobs`, without
/// `depends_on`, `unique_key` or `hold`: a callback depends on every member).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// Up to 200 characters, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Runs once every member has finished, however each ended; reads each member's outcome
    /// through `Context::parents`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::opt")]
    pub on_complete: Option<AddJobRequest>,
    /// Runs once every member has completed; ends `cancelled` if one fails for good.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::opt")]
    pub on_success: Option<AddJobRequest>,
}

/// The jobs of a batch, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAdded {
    pub jobs: Vec<BatchItem>,
    /// The batch's group, if it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupAdded>,
}

/// A group just made: its id and its callbacks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupAdded {
    /// The group's id (its first job's).
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<BatchItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<BatchItem>,
}

impl BatchAdded {
    /// A batch's answer from its stored jobs: members in `jobs`, callbacks under `group`.
    pub fn of(jobs: &[Job]) -> BatchAdded {
        let item = |j: &Job| BatchItem { id: j.id.to_string(), status: j.status };
        let mut group = jobs.first().and_then(|j| j.group).map(|m| GroupAdded {
            id: m.group.to_string(),
            on_complete: None,
            on_success: None,
        });
        let mut members = Vec::with_capacity(jobs.len());
        for job in jobs {
            match (job.group.and_then(|m| m.callback), group.as_mut()) {
                (Some(Callback::OnComplete), Some(g)) => g.on_complete = Some(item(job)),
                (Some(Callback::OnSuccess), Some(g)) => g.on_success = Some(item(job)),
                _ => members.push(item(job)),
            }
        }
        BatchAdded { jobs: members, group }
    }
}

/// `GET /v1/groups/{id}`: a group's progress.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupView {
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    /// How many members it has.
    pub total: u64,
    /// Members per status (those with none are left out).
    pub counts: BTreeMap<Status, u64>,
    /// Members removed since (retention, or by hand).
    pub removed: u64,
    /// Every member has finished (or was removed).
    pub finished: bool,
    pub callbacks: Vec<CallbackView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallbackView {
    pub kind: Callback,
    pub id: String,
    /// `null` once removed.
    pub status: Option<Status>,
}

impl From<&GroupState> for GroupView {
    fn from(g: &GroupState) -> Self {
        let pending: u64 = g.members.iter().filter(|(s, _)| !s.is_finished()).map(|(_, n)| n).sum();
        GroupView {
            id: g.group.id.to_string(),
            name: g.group.name.clone(),
            created_at: rfc3339(g.group.created_at),
            total: g.group.members.len() as u64,
            counts: g.members.clone(),
            removed: g.removed,
            finished: pending == 0,
            callbacks: g
                .callbacks
                .iter()
                .map(|&(kind, id, status)| CallbackView { kind, id: id.to_string(), status })
                .collect(),
        }
    }
}

/// `POST /v1/groups/{id}/cancel`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupCancelled {
    /// Members cancelled now (or, running, asked to stop).
    pub cancelled: u64,
    pub group: GroupView,
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
    /// The jobs it depends on (absent for a job without any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<DependenciesView>,
    /// The group it belongs to (absent outside one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<MembershipView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_key: Option<String>,
    /// Where its plugin code last panicked and the stack then: `[<time>] panicked at
    /// FILE:LINE:COL` and the frames (at most 16 KiB; absent if it never panicked, and in
    /// lists: `GET /v1/jobs/{id}` has it). The panic's message is in `errors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
}

/// A job's place in a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MembershipView {
    /// The group's id (`GET /v1/groups/{id}`).
    pub id: String,
    /// Which of its callbacks this job is; `null` for a member.
    pub callback: Option<Callback>,
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
    /// The first line of its latest error (cut at 300 characters), if it has any: what a
    /// list of failed jobs shows.
    #[serde(default)]
    pub last_error: Option<String>,
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
            last_error: job.errors.last().map(|e| crate::text::clip(e.lines().next().unwrap_or_default())),
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
    /// With `error` or `input`: the jobs this page examined. At 10,000 (or 32 MiB of their
    /// data) the page ends, perhaps short of `limit`, and `next` searches on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched: Option<u64>,
}

/// `GET /v1/jobs/count`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobCount {
    /// The jobs that match, counted up to 100,000.
    pub count: u64,
    /// True when counting stopped at 100,000: at least that many match.
    pub at_least: bool,
}

/// Stored JSON text shown as JSON; text that is not (it never should be) shows as a string.
pub(super) fn json_value(text: &str) -> Value {
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
            dependencies: DependenciesView::of(job),
            group: job.group.map(|m| MembershipView { id: m.group.to_string(), callback: m.callback }),
            limit_key: job.limit_key.clone(),
            backtrace: job.backtrace.clone(),
        }
    }
}

/// `GET /v1/jobs`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
    /// With `error` or `input`: the jobs this page examined. At 10,000 (or 32 MiB of their
    /// data) the page ends, perhaps short of `limit`, and `next` searches on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched: Option<u64>,
}

/// `DELETE /v1/jobs`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// Jobs removed per status (every requested status, 0 included).
    pub removed: BTreeMap<Status, u64>,
}

/// `POST /v1/jobs/retry`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    /// Jobs sent back to `queued`.
    pub retried: u64,
}
