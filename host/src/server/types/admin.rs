//! The host on the wire: factories, plugins, queues, workers, health and hosts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::job::Status;
use crate::plugins::{Conflict, FactoryInfo, PluginInfo, Rejected, Resolution};

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
    /// Whether its input is checked against a schema narrower than "any JSON".
    pub typed: bool,
    /// The JSON Schema (draft 2020-12) every submitted input must match. A factory taking
    /// free-form JSON has one of annotations only; a plugin built before SDK schemas, `true`.
    pub input_schema: serde_json::Value,
    /// The JSON Schema of its result; `true` when it does not say.
    pub output_schema: serde_json::Value,
}

/// A schema from its JSON text; none (or one that does not parse) is `true`, any JSON.
fn schema(text: Option<&String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or(serde_json::Value::Bool(true))
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
            typed: crate::plugins::narrows(&schema(f.input_schema.as_ref())),
            input_schema: schema(f.input_schema.as_ref()),
            output_schema: schema(f.output_schema.as_ref()),
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
    /// Jobs this host claimed for the queue's next free places and not given to a worker
    /// yet: at most the claim window (see `claim_batch`).
    #[serde(default)]
    pub claimed_ahead: usize,
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
    /// Set while the queue is paused (`POST /v1/queues/{name}/stop`): no host claims from it,
    /// restarts included, until it is started again.
    #[serde(default)]
    pub paused: Option<PauseView>,
}

/// Who paused a queue, and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    /// The host that took the request (its `host_name`).
    pub by: String,
    /// RFC 3339.
    pub at: String,
}

impl From<crate::service::QueueInfo> for QueueView {
    fn from(q: crate::service::QueueInfo) -> Self {
        QueueView {
            name: q.name,
            processing: q.processing,
            concurrency: q.concurrency,
            queued: q.queued,
            running: q.running,
            claimed_ahead: q.claimed_ahead,
            jobs: q.jobs,
            worker_restarts: q.worker_restarts,
            stuck: q.stuck,
            paused: q.paused.map(|p| PauseView { by: p.by, at: crate::clock::rfc3339(p.at) }),
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
    /// `starting` (its worker process), `idle`, `running` or `backing_off` (waiting to start a worker process again after deaths
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
