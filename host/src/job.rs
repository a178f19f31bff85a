//! A job record and its life cycle: what is stored, and the closed set of statuses.

use serde::{Deserialize, Serialize};

use crate::clock::{self, Micros};

/// Unique for the life of a store, never reused, increasing with submission order.
pub type JobId = u64;

/// Where a job is in its life. Spelled in lower case in the API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for a worker (possibly for its retry time).
    Queued,
    /// Waiting for its run time (delayed jobs).
    Scheduled,
    /// Added with hold; waits for an explicit start.
    Held,
    /// Claimed by a worker that holds its lease.
    Processing,
    Completed,
    Error,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Scheduled,
        Status::Held,
        Status::Processing,
        Status::Completed,
        Status::Error,
        Status::Cancelled,
    ];
    /// The statuses a job never leaves by itself.
    pub const FINISHED: [Status; 3] = [Status::Completed, Status::Error, Status::Cancelled];

    pub fn is_finished(self) -> bool {
        Self::FINISHED.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Scheduled => "scheduled",
            Status::Held => "held",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown status `{s}`; expected one of {}", names.join(", "))
        })
    }
}

/// The last progress a running job reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    pub fraction: f64,
    pub message: String,
}

/// The worker currently entitled to report this job's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Differs per attempt: an outcome carrying another token is stale and discarded.
    pub token: u64,
    pub expires_at: Micros,
}

/// A stored job. `input` and `result` are JSON text (bincode cannot carry `serde_json::Value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub factory: String,
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    pub input: String,
    pub status: Status,
    pub result: Option<String>,
    /// `[<RFC 3339 with microseconds>] <message>`, oldest first.
    pub errors: Vec<String>,
    /// Attempts started so far (an attempt counts when it is claimed).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Per-attempt time limit in milliseconds (the factory's default when not given).
    pub timeout_ms: Option<u64>,
    pub created_at: Micros,
    pub started_at: Option<Micros>,
    pub finished_at: Option<Micros>,
    /// When the job may next run (its retry time while it waits for one).
    pub run_at: Micros,
    pub progress: Option<Progress>,
    pub lease: Option<Lease>,
    /// A cancel arrived while the job was running; it ends `cancelled` when the factory returns.
    pub cancel_requested: bool,
    /// While this job is pending (scheduled, held, queued, processing), adding another job of
    /// the same factory with the same key returns this one (Launchpad's `acquire`).
    pub unique_key: Option<String>,
    /// The schedule that created this job, if one did.
    pub schedule_id: Option<ScheduleId>,
}

/// Unique for the life of a store, like job ids.
pub type ScheduleId = u64;

impl Job {
    /// Scheduled, held, queued or processing: not finished.
    pub fn is_pending(&self) -> bool {
        !self.status.is_finished()
    }
}

impl Job {
    /// Appends `[time] message` to the error history (RFC 3339 UTC with microseconds, like
    /// every time the API shows).
    pub fn push_error(&mut self, at: Micros, message: &str) {
        self.errors.push(format!("[{}] {message}", clock::rfc3339(at)));
    }
}

/// What a caller supplies to add a job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewJob {
    pub factory: String,
    /// JSON text.
    pub input: String,
    pub queue: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub timeout_ms: Option<u64>,
    /// Not before this time: the job is `scheduled` until then.
    pub run_at: Option<Micros>,
    /// Added `held`: it waits for an explicit start.
    pub hold: bool,
    pub unique_key: Option<String>,
    pub schedule_id: Option<ScheduleId>,
}

/// Longest queue and factory names (they appear in index keys, URLs and metric labels).
pub const MAX_NAME_LEN: usize = 64;

/// Queue and factory names: 1 to 64 characters from `a-z A-Z 0-9 _ - .`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// How an attempt ended, as the processor reports it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed {
        result: String,
    },
    /// Try again at `retry_at`; the message joins the error history.
    Retry {
        error: String,
        retry_at: Micros,
    },
    /// No more attempts: the job ends in `error`.
    Failed {
        error: String,
    },
}
