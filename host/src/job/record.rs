//! The record and its state machine (see the module's header).

use serde::{Deserialize, Serialize};

use super::edges::{Deps, Membership, NewMembership, NewParent, Parent};
use crate::clock::{self, Micros};
pub use crate::ids::{AttemptToken, JobId, ScheduleId};

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
    /// Waiting for the jobs it depends on (last, so older records' tags keep their meaning).
    Waiting,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Waiting,
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
            Status::Waiting => "waiting",
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
            format!("unknown status `{}`; expected one of {}", crate::text::clip(s), names.join(", "))
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
    pub token: AttemptToken,
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
    /// The jobs it depends on, and how many it still waits for (see [`Deps`]).
    pub deps: Option<Deps>,
    /// The group it belongs to, as a member or a callback.
    pub group: Option<Membership>,
    /// What a limit's `per_key` counts it by (a customer, a tenant).
    pub limit_key: Option<String>,
    /// Where its plugin code last panicked and the stack then, `[<RFC 3339>] panicked at …`
    /// (at most [`MAX_BACKTRACE`] bytes), kept across later attempts and retries; none if it
    /// never panicked, or its plugin's SDK cannot tell.
    pub backtrace: Option<String>,
    /// The jobs it depends on, in the order given. Not part of the record as encoded: the
    /// store keeps the list apart (written once, at submission), fills it in on the reads
    /// callers make (`JobStore::get`, `list`), and leaves it empty on its own reads, so that a
    /// parent's change never reads or rewrites a fan-in's list.
    #[serde(skip)]
    pub parents: Vec<Parent>,
}

impl Job {
    /// Waiting, scheduled, held, queued or processing: not finished.
    pub fn is_pending(&self) -> bool {
        !self.status.is_finished()
    }

    /// Appends `[time] message` to the error history (RFC 3339 UTC with microseconds, like
    /// every time the API shows).
    pub fn push_error(&mut self, at: Micros, message: &str) {
        self.errors.push(format!("[{}] {message}", clock::rfc3339(at)));
    }

    /// A panic's location and stack replace the one kept (an attempt without one keeps it).
    fn keep_backtrace(&mut self, at: Micros, backtrace: Option<&str>) {
        if let Some(text) = backtrace {
            let mut end = text.len().min(MAX_BACKTRACE);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.backtrace = Some(format!("[{}] {}", clock::rfc3339(at), &text[..end]));
        }
    }

    /// The lease of the running attempt holding `token`; `None` when the job is not running
    /// or another attempt holds it (the report is stale).
    pub fn lease_held_by(&self, token: AttemptToken) -> Option<Lease> {
        self.lease.filter(|l| l.token == token && self.status == Status::Processing)
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
    /// The jobs it waits for: `waiting` until they complete (the store counts them).
    pub depends_on: Vec<NewParent>,
    /// In a batch with a group: this job's part in it (the store makes the group).
    pub group: Option<NewMembership>,
    pub limit_key: Option<String>,
}

/// Longest queue and factory names (they appear in index keys, URLs and metric labels).
pub const MAX_NAME_LEN: usize = 64;

/// The most of a panic's backtrace a job keeps, in bytes (the rest is cut).
pub const MAX_BACKTRACE: usize = 16 * 1024;

/// Queue and factory names: 1 to 64 characters from `a-z A-Z 0-9 _ - .`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        // A name is a URL path segment (`/v1/queues/NAME/stop`): these two would be resolved
        // away by every browser and most clients before the request is sent.
        && name != "."
        && name != ".."
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// The error recorded on a job that was running when its host died.
pub const WORKER_LOST_HOST_STOPPED: &str = "worker lost: host stopped while the job was running";
/// The error recorded on a job whose worker stopped renewing its lease.
pub const WORKER_LOST_LEASE_EXPIRED: &str = "worker lost: its lease expired";

/// The error recorded on a job whose host (sharing the store with others) stopped
/// heartbeating while it held the job.
pub fn worker_lost_host_silent(host: &str) -> String {
    format!("worker lost: host {} stopped heartbeating", crate::text::clip(host))
}

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
        /// A panic's location and stack, when the attempt panicked.
        backtrace: Option<String>,
    },
    /// No more attempts: the job ends in `error`.
    Failed {
        error: String,
        backtrace: Option<String>,
    },
}

/// Every change of status a job may make, `(from, to)`:
///
/// - `scheduled`, `held` → `queued` (due, or started), `cancelled`;
/// - `queued` → `queued` (a retry wait that came due; a claim lost with its host counted),
///   `processing` (claimed), `cancelled`, `error` (a claim lost with its host was its last
///   attempt);
/// - `processing` → `completed`, `queued` (retry, released by a stopping host, worker lost),
///   `error`, `cancelled`;
/// - `waiting` → `queued` or `scheduled` (its parents completed), `cancelled` (a parent
///   failed, or by hand);
/// - `error`, `cancelled` → `queued` (retried by hand); `cancelled` → `waiting` (cancelled for
///   a failed parent, which was retried). `completed` is final.
pub const TRANSITIONS: &[(Status, Status)] = &[
    (Status::Waiting, Status::Queued),
    (Status::Waiting, Status::Scheduled),
    (Status::Waiting, Status::Cancelled),
    (Status::Cancelled, Status::Waiting),
    (Status::Scheduled, Status::Queued),
    (Status::Scheduled, Status::Cancelled),
    (Status::Held, Status::Queued),
    (Status::Held, Status::Cancelled),
    (Status::Queued, Status::Queued),
    (Status::Queued, Status::Processing),
    (Status::Queued, Status::Cancelled),
    (Status::Queued, Status::Error),
    (Status::Processing, Status::Completed),
    (Status::Processing, Status::Queued),
    (Status::Processing, Status::Error),
    (Status::Processing, Status::Cancelled),
    (Status::Error, Status::Queued),
    (Status::Cancelled, Status::Queued),
];

impl Status {
    /// Whether a job in this status may move to `to` (see [`TRANSITIONS`]).
    pub fn may_become(self, to: Status) -> bool {
        TRANSITIONS.contains(&(self, to))
    }
}

/// A request the job's status does not allow (cancelling a finished job, retrying a queued one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {id} is {status}; cannot {action} it")]
pub struct Refused {
    pub id: JobId,
    pub status: Status,
    pub action: &'static str,
}

/// What a cancel did to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelEffect {
    /// It was waiting and is `cancelled` now.
    Now,
    /// It is running: cancellation is requested; it ends `cancelled` when its attempt ends.
    Requested,
}

/// The transitions. Each sets everything its new status implies, so no caller spells out
/// `finished_at` or an attempt count; stores call them inside their transactions and move
/// the index entries the change implies.
impl Job {
    /// A new record for `new`: `held` if asked, `scheduled` until a future run time, else
    /// `queued`.
    pub fn new(id: JobId, new: NewJob, now: Micros) -> Job {
        Job::new_in_batch(id, new, &[], now)
    }

    /// [`Job::new`] for a job of a batch whose jobs have the ids `batch`, in order (what its
    /// `Upon::Item` parents name).
    pub fn new_in_batch(id: JobId, new: NewJob, batch: &[JobId], now: Micros) -> Job {
        let run_at = new.run_at.map_or(now, |at| at.max(now));
        let status = if !new.depends_on.is_empty() {
            Status::Waiting
        } else if new.hold {
            Status::Held
        } else if run_at > now {
            Status::Scheduled
        } else {
            Status::Queued
        };
        Job {
            id,
            factory: new.factory,
            queue: new.queue,
            priority: new.priority,
            input: new.input,
            status,
            result: None,
            errors: Vec::new(),
            attempts: 0,
            max_attempts: new.max_attempts,
            timeout_ms: new.timeout_ms,
            created_at: now,
            started_at: None,
            finished_at: None,
            run_at,
            progress: None,
            lease: None,
            cancel_requested: false,
            unique_key: new.unique_key,
            schedule_id: new.schedule_id,
            deps: (!new.depends_on.is_empty())
                .then(|| Deps { total: new.depends_on.len() as u32, ..Deps::default() }),
            parents: new.depends_on.iter().map(|p| p.resolve(batch)).collect(),
            // The group's id is its first job's, which the batch's store assigns.
            group: new
                .group
                .as_ref()
                .and_then(|m| batch.first().map(|&first| Membership { group: first, callback: m.callback })),
            limit_key: new.limit_key,
            backtrace: None,
        }
    }

    pub(super) fn become_(&mut self, to: Status) {
        debug_assert!(
            self.status.may_become(to),
            "job {}: {} → {to} is not a transition",
            self.id,
            self.status
        );
        self.status = to;
    }

    pub(super) fn finish(&mut self, to: Status, now: Micros) {
        self.become_(to);
        self.finished_at = Some(now);
    }

    fn refuse(&self, action: &'static str) -> Refused {
        Refused { id: self.id, status: self.status, action }
    }

    /// `held` or `scheduled` → `queued`, to run now whatever time it waited for.
    pub fn start(&mut self, now: Micros) -> Result<(), Refused> {
        if !matches!(self.status, Status::Held | Status::Scheduled) {
            return Err(self.refuse("start"));
        }
        self.run_at = now;
        self.become_(Status::Queued);
        Ok(())
    }

    /// A waiting job (`scheduled`, or `queued` for a retry time) whose time came: `queued`,
    /// ready to claim. False for any other status.
    pub fn promote(&mut self) -> bool {
        if !matches!(self.status, Status::Queued | Status::Scheduled) {
            return false;
        }
        self.become_(Status::Queued);
        true
    }

    /// `queued` → `processing`: the attempt is counted now, before it runs, and `lease` is
    /// the only one entitled to report its outcome.
    pub fn claim(&mut self, lease: Lease, now: Micros) {
        self.become_(Status::Processing);
        self.attempts += 1;
        self.started_at = Some(now);
        self.progress = None;
        self.lease = Some(lease);
    }

    /// The running attempt really started at `at` (after its claim: it waited for a worker).
    /// Never before the claim, never after `now`.
    pub fn started(&mut self, at: Micros, now: Micros) {
        let claimed = self.started_at.unwrap_or(at);
        self.started_at = Some(at.clamp(claimed, now.max(claimed)));
    }

    /// The running attempt ended with `outcome` (its lease already checked by the store). A
    /// cancel requested meanwhile wins over any outcome.
    pub fn end_attempt(&mut self, outcome: &Outcome, now: Micros) {
        self.lease = None;
        if self.cancel_requested {
            return self.finish(Status::Cancelled, now);
        }
        match outcome {
            Outcome::Completed { result } => {
                self.result = Some(result.clone());
                self.finish(Status::Completed, now);
            }
            Outcome::Retry { error, retry_at, backtrace } => {
                self.push_error(now, error);
                self.keep_backtrace(now, backtrace.as_deref());
                self.run_at = *retry_at;
                self.become_(Status::Queued);
            }
            Outcome::Failed { error, backtrace } => {
                self.push_error(now, error);
                self.keep_backtrace(now, backtrace.as_deref());
                self.finish(Status::Error, now);
            }
        }
    }

    /// A stopping host gives the running attempt back: `queued` with the attempt not counted
    /// (the host interrupted it, not the job), keeping its place in line; `cancelled` if a
    /// cancel was requested.
    pub fn release(&mut self, now: Micros) {
        self.lease = None;
        self.progress = None;
        // The claim's provisional start: the attempt is given back, so it did not start.
        self.started_at = None;
        if self.cancel_requested {
            return self.finish(Status::Cancelled, now);
        }
        self.attempts = self.attempts.saturating_sub(1);
        self.become_(Status::Queued);
    }

    /// The running attempt's worker is gone (its lease expired, or its host died): the attempt
    /// counts, with `reason` in the history; `queued` again keeping its place in line (so a
    /// strict-FIFO queue stays in order across a crash), or `error` with its attempts spent.
    pub fn lose_worker(&mut self, reason: &str, now: Micros) {
        self.lease = None;
        self.progress = None;
        if self.cancel_requested {
            return self.finish(Status::Cancelled, now);
        }
        self.push_error(now, reason);
        if self.attempts >= self.max_attempts {
            self.finish(Status::Error, now);
        } else {
            self.become_(Status::Queued);
        }
    }

    /// A claim of this `queued` job was lost with its host before the store recorded it (the
    /// claims journal knows it): it counts as `attempts`, like [`lose_worker`](Self::lose_worker).
    pub fn count_lost_claim(&mut self, attempts: u32, reason: &str, now: Micros) {
        self.attempts = attempts;
        self.push_error(now, reason);
        if self.attempts >= self.max_attempts {
            self.finish(Status::Error, now);
        }
    }

    /// A waiting job is `cancelled` at once; a running one gets its cancellation requested.
    pub fn cancel(&mut self, now: Micros) -> Result<CancelEffect, Refused> {
        match self.status {
            Status::Queued | Status::Scheduled | Status::Held | Status::Waiting => {
                self.finish(Status::Cancelled, now);
                Ok(CancelEffect::Now)
            }
            Status::Processing => {
                self.cancel_requested = true;
                Ok(CancelEffect::Requested)
            }
            _ => Err(self.refuse("cancel")),
        }
    }

    /// `error` or `cancelled` → `queued` now, with fresh attempts (`max_attempts` when given)
    /// and its error history kept (the dead-letter re-run).
    pub fn retry(&mut self, max_attempts: Option<u32>, now: Micros) -> Result<(), Refused> {
        if !matches!(self.status, Status::Error | Status::Cancelled) {
            return Err(self.refuse("retry"));
        }
        self.become_(Status::Queued);
        self.attempts = 0;
        self.max_attempts = max_attempts.unwrap_or(self.max_attempts);
        self.run_at = now;
        self.finished_at = None;
        self.result = None;
        self.progress = None;
        self.cancel_requested = false;
        // Retried by hand, it runs now, whatever its parents did.
        if let Some(deps) = self.deps.as_mut() {
            deps.blocked_by = None;
        }
        Ok(())
    }
}
