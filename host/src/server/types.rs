//! The wire contract: request and response bodies of the HTTP API, shared by the server and the
//! CLI client so that both sides agree by construction. Field names are part of the contract:
//! add fields freely, never rename.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::job::{Job, Progress, Status};
use crate::plugins::{Factory, PluginInfo, Rejection};

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
    #[serde(default)]
    pub priority: i32,
    /// Default: the factory's, else the server's (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit; default: the factory's, else none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
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

impl From<&Factory> for FactoryView {
    fn from(f: &Factory) -> Self {
        let defaults = f.defaults();
        FactoryView {
            name: f.name().to_owned(),
            plugin: f.plugin().to_owned(),
            plugin_version: f.plugin_version().to_owned(),
            description: f.description().to_owned(),
            example: f.example().map(str::to_owned),
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

impl From<&Rejection> for RejectionView {
    fn from(r: &Rejection) -> Self {
        RejectionView { path: r.path.display().to_string(), reason: r.reason.to_string() }
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
}

impl From<crate::processor::QueueInfo> for QueueView {
    fn from(q: crate::processor::QueueInfo) -> Self {
        QueueView {
            name: q.name,
            processing: q.processing,
            concurrency: q.concurrency,
            queued: q.queued,
            running: q.running,
        }
    }
}

/// `GET /v1/health`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `shutting_down` once a stop signal arrived.
    pub status: String,
    pub version: String,
}
