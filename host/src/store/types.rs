//! The values store calls take and return.

use std::time::Duration;

use crate::clock::Micros;
use crate::job::{AttemptToken, Callback, Job, JobId, Status};
use crate::schedule::Schedule;

/// What `add` did: stored a new job, or found a pending one with the same unique key.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub job: Job,
    /// True: `job` is the pending job that already held the unique key; nothing was stored.
    pub existing: bool,
}

/// A schedule slot that fired: the schedule afterwards, and the job it made (none when the
/// slot was a missed one skipped by policy).
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    pub schedule: Schedule,
    pub job: Option<Job>,
}

/// A claimed job: the record (status `processing`, attempt counted) and the lease it holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: Job,
    pub token: AttemptToken,
}

/// What `finish` did with a reported outcome.
// Returned once per attempt and never held in bulk: boxing the job would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Finished {
    /// Applied; the job is now in this status.
    Applied(Job),
    /// The report's token no longer matches (the attempt was superseded): nothing changed.
    Stale,
}

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// The job was waiting and is now `cancelled`.
    Now(Job),
    /// The job is running: its cancellation was requested; it ends `cancelled` when it returns.
    Requested(Job),
}

/// Which jobs `claim` may take.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimFilter<'a> {
    /// One queue, or any.
    pub queue: Option<&'a str>,
    /// One factory, or any.
    pub factory: Option<&'a str>,
}

/// Which jobs `list` returns, in id order after `after`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub statuses: Vec<Status>,
    pub factory: Option<String>,
    pub queue: Option<String>,
    /// Continue past this id, in the listing's order.
    pub after: Option<JobId>,
    pub limit: usize,
    /// Highest id (the newest job) first, instead of lowest.
    pub newest_first: bool,
}

/// Which finished jobs `remove` deletes.
#[derive(Debug, Clone, Default)]
pub struct Removal {
    /// Finished statuses (all three when empty).
    pub statuses: Vec<Status>,
    /// Only jobs that finished before this (retention).
    pub finished_before: Option<Micros>,
    pub queue: Option<String>,
    pub factory: Option<String>,
    /// Only this job.
    pub id: Option<JobId>,
}

impl Removal {
    /// Whether `job` is one of these (its status is checked as finished by the caller).
    pub fn covers(&self, job: &Job) -> bool {
        self.id.is_none_or(|id| id == job.id)
            && (self.statuses.is_empty() || self.statuses.contains(&job.status))
            && self.queue.as_ref().is_none_or(|q| *q == job.queue)
            && self.factory.as_ref().is_none_or(|f| *f == job.factory)
    }
}

/// A running job's liveness: the processor renews leases while the worker lives.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub duration: Duration,
}

/// Jobs per queue and status.
pub type Counts = std::collections::BTreeMap<String, std::collections::BTreeMap<Status, u64>>;

/// What another process sharing the store tells this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Jobs became ready in this queue (`None`: maybe in any, e.g. after a reconnect).
    Ready(Option<String>),
    /// A cancel was requested for this running job.
    Cancel(JobId),
}

/// A queue an operator paused: no host claims from it until it is resumed. Kept in the store,
/// so it outlives restarts and, on a shared store, holds on every host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueuePause {
    pub queue: String,
    /// The host that took the request.
    pub by: String,
    pub at: Micros,
}

/// A host process using the store, as it last told the store it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    /// Unique among the hosts sharing a store (`name` in the config; default
    /// `<machine>-<pid>`).
    pub name: String,
    pub pid: u32,
    /// The machine it runs on (its host name): with `pid`, tells whether a host that stopped
    /// beating is gone (its pid is dead on this machine). Empty in rows from before it was kept.
    pub machine: String,
    pub version: String,
    pub started_at: Micros,
    pub heartbeat_at: Micros,
}

impl HostRecord {
    /// This process as a host record: `name` if configured, else `<machine>-<pid>`.
    pub fn this_process(name: Option<&str>, now: Micros) -> HostRecord {
        let pid = std::process::id();
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "host".into());
        let name = match name {
            Some(name) => name.to_owned(),
            None => format!("{machine}-{pid}"),
        };
        HostRecord {
            name,
            pid,
            machine,
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: now,
            heartbeat_at: now,
        }
    }
}

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BackupSummary {
    pub jobs: u64,
    pub schedules: u64,
    /// Records and index entries.
    pub entries: u64,
    /// The file's size.
    pub bytes: u64,
}

/// A creating request's `Idempotency-Key`, stored in the same transaction as what the request
/// created, so that a repeat finds either both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    /// The client's key (1 to 255 visible ASCII characters).
    pub key: String,
    /// What the request was (a digest of its method, path and body): a repeat must match.
    pub fingerprint: String,
    /// Until when a repeat gets the first answer; after that the key may be used anew.
    pub expires_at: Micros,
}

/// What a request with an idempotency key created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Created {
    /// One job; `existing`: the pending job that held its unique key, nothing was stored.
    Job {
        id: u64,
        existing: bool,
    },
    /// A batch's jobs, in order.
    Batch {
        ids: Vec<u64>,
    },
    Schedule {
        id: u64,
    },
}

/// A key's stored record: the request it came with and what that request created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    pub fingerprint: String,
    pub created: Created,
    pub expires_at: Micros,
}

/// A keyed creation's result: done now, or done before under the same key (what it made).
#[derive(Debug, Clone, PartialEq)]
pub enum Keyed<T> {
    New(T),
    Before(Remembered),
}

/// A batch's group, as stored with the batch: its members and its callbacks (jobs that depend
/// on every member). Its id is its first job's. It lasts as long as that job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    pub id: JobId,
    pub name: Option<String>,
    pub created_at: Micros,
    pub members: Vec<JobId>,
    pub callbacks: Vec<(Callback, JobId)>,
}

/// A group and where its jobs are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub group: Group,
    /// Members per status.
    pub members: std::collections::BTreeMap<Status, u64>,
    /// Members removed since (retention, or by hand).
    pub removed: u64,
    /// Each callback's status (`None`: removed).
    pub callbacks: Vec<(Callback, JobId, Option<Status>)>,
}
