//! Bulk operations on the wire: `POST /v1/operations` and how they show.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::job::Status;
use crate::service::{Action, OperationStatus, Phase};

/// `POST /v1/operations`: what to do to which jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationRequest {
    /// `retry` (`error` and `cancelled` jobs back to `queued`, fresh attempts), `remove`
    /// (finished jobs deleted) or `cancel` (pending jobs cancelled; a running one is asked to
    /// stop).
    pub action: Action,
    /// The statuses it takes: for `retry` `error` and `cancelled`, for `remove` any finished
    /// one, for `cancel` any pending one. Default (absent): all it can take; an empty list is
    /// refused.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub status: Option<Vec<Status>>,
    /// Only jobs of this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Only jobs of this factory.
    #[serde(default)]
    pub job: Option<String>,
    /// Only these jobs (1 to 1,000; a repeat counts once), those of them the filter matches
    /// when reached: an operator's selection. Absent: every job the filter matches; an empty
    /// list is refused (it would select nothing, never everything).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Option<Vec<String>>,
}

/// A bulk operation and how far it got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationView {
    pub id: String,
    pub action: Action,
    pub status: Vec<Status>,
    pub queue: Option<String>,
    pub job: Option<String>,
    /// The jobs it was given one by one (empty: every job the filter matched).
    pub ids: Vec<String>,
    /// `running`, `completed`, `cancelled` (stopped between two pages when asked) or `failed`
    /// (`error` says why; what it changed stays changed).
    pub state: Phase,
    /// Matching jobs when it started, from the store's counts; `null` with a factory (not
    /// counted).
    pub total: Option<u64>,
    /// Jobs changed so far.
    pub done: u64,
    /// Jobs passed over: changed by someone else meanwhile, still needed by a job that depends
    /// on them (remove), or holding a unique key another job has (retry).
    pub skipped: u64,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl From<OperationStatus> for OperationView {
    fn from(o: OperationStatus) -> Self {
        OperationView {
            id: o.id.to_string(),
            action: o.action,
            status: o.selection.statuses,
            queue: o.selection.queue,
            job: o.selection.factory,
            ids: o.selection.ids.iter().map(|id| id.to_string()).collect(),
            state: o.phase,
            total: o.total,
            done: o.done,
            skipped: o.skipped,
            error: o.error,
            started_at: rfc3339(o.started_at),
            finished_at: o.finished_at.map(rfc3339),
        }
    }
}
