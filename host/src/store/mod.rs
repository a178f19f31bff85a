//! The job store: the operations the processor needs, and the embedded sled implementation.
//!
//! **Invariant:** every change that touches more than one tree is one transaction, so a job's
//! record and its index entries never disagree, even across a crash. The trait is shaped so
//! that a PostgreSQL store can implement it (claim = `SELECT … FOR UPDATE SKIP LOCKED`, the
//! wake-up = `LISTEN/NOTIFY`); its methods block, so async callers run them on blocking threads.

mod claim_journal;
mod codec;
mod durability;
mod flusher;
mod keys;
mod sled_store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::clock::Micros;
use crate::job::{Job, JobId, NewJob, Outcome, Progress, ScheduleId, Status};
use crate::schedule::Schedule;

pub use codec::{CodecError, FORMAT_VERSION, OLDEST_READABLE};
pub use sled_store::{
    ClaimDurability, SledStore, StoreOptions, DEFAULT_CACHE_BYTES, DEFAULT_FLUSH_INTERVAL_MS,
    WORKER_LOST_HOST_STOPPED, WORKER_LOST_LEASE_EXPIRED,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {0} is in use by another process (only one process can open an embedded store)")]
    Locked(PathBuf),
    #[error("the store at {path} was written by a newer jobhost (format {found}; this build reads {FORMAT_VERSION})")]
    NewerFormat { path: PathBuf, found: u8 },
    #[error("stored record {what} is unreadable: {error}")]
    Corrupt { what: String, error: CodecError },
    #[error("no job with id {0}")]
    NotFound(JobId),
    #[error("no schedule with id {0}")]
    ScheduleNotFound(ScheduleId),
    #[error("job {id} is {status}; cannot {action} it")]
    Conflict { id: JobId, status: Status, action: &'static str },
    #[error("claims journal {path}: {error}")]
    Journal { path: PathBuf, error: std::io::Error },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot start the store's flush thread: {0}")]
    Flusher(std::io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

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
    pub token: u64,
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
#[derive(Debug, Clone, Default)]
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
    pub after: Option<JobId>,
    pub limit: usize,
}

/// A running job's liveness: the processor renews leases while the worker lives.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub duration: Duration,
}

pub trait Store: Send + Sync + 'static {
    /// Adds a job (`queued`, `scheduled` until its run time, or `held`); returns once it is
    /// durable. With a unique key held by a pending job of the same factory, returns that job
    /// instead and stores nothing.
    fn add(&self, job: NewJob, now: Micros) -> StoreResult<Added>;

    /// Adds many jobs in one transaction and one flush: all or none. The jobs carry no unique
    /// keys (the processor refuses them in batches). Returns them in order, with their ids.
    fn add_batch(&self, jobs: Vec<NewJob>, now: Micros) -> StoreResult<Vec<Job>>;

    /// Queues a `held` or `scheduled` job now. Durable.
    fn start(&self, id: JobId, now: Micros) -> StoreResult<Job>;

    /// Moves jobs whose run or retry time has come to their queues' ready lists (`scheduled` →
    /// `queued`); how many. Claims do this too; the scheduler does it so that statuses are
    /// right even for queues nobody claims from.
    fn promote_due(&self, now: Micros) -> StoreResult<usize>;

    /// Moves due retry waits to ready, then claims the next ready job matching `filter`:
    /// status `processing`, attempt counted, a fresh lease token. Durable before it returns,
    /// so an attempt that kills the host is counted (poison jobs end after max attempts).
    fn claim(&self, filter: &ClaimFilter<'_>, now: Micros, lease: LeaseTerms)
        -> StoreResult<Option<Claimed>>;

    /// Extends a running job's lease. False if the token is stale.
    fn heartbeat(&self, id: JobId, token: u64, now: Micros, lease: LeaseTerms) -> StoreResult<bool>;

    /// Records a running job's progress (not flushed: progress is advisory).
    fn set_progress(&self, id: JobId, token: u64, progress: Progress) -> StoreResult<()>;

    /// Applies an attempt's outcome if `token` still holds the lease. A job whose cancel was
    /// requested ends `cancelled` whatever the outcome.
    fn finish(&self, id: JobId, token: u64, outcome: Outcome, now: Micros) -> StoreResult<Finished>;

    /// `finish`, then `claim` for the worker's next job, in one transaction when it can (an
    /// outcome other than a retry, and a job ready): a drain then costs one transaction per job
    /// instead of two, and each transaction costs sled two synced log writes. The claim is
    /// kept as `claim` keeps it; what either reports is exactly what the two calls would.
    fn finish_and_claim(
        &self,
        id: JobId,
        token: u64,
        outcome: Outcome,
        now: Micros,
        filter: &ClaimFilter<'_>,
        lease: LeaseTerms,
    ) -> StoreResult<(Finished, Option<Claimed>)>;

    /// Cancels a waiting job at once, or requests cancellation of a running one. Durable.
    fn cancel(&self, id: JobId, now: Micros) -> StoreResult<Cancelled>;

    /// Sends a job in `error` or `cancelled` back to `queued` with fresh attempts, keeping its
    /// error history. Durable.
    fn retry(&self, id: JobId, max_attempts: Option<u32>, now: Micros) -> StoreResult<Job>;

    fn get(&self, id: JobId) -> StoreResult<Option<Job>>;

    fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Job>>;

    /// Deletes finished jobs in `statuses` (all finished statuses when empty), only those that
    /// finished before `finished_before` when given (retention); counts per status. Durable.
    fn remove(
        &self,
        statuses: &[Status],
        finished_before: Option<Micros>,
    ) -> StoreResult<BTreeMap<Status, u64>>;

    /// Gives a running job back to its queue without counting the attempt (the host is
    /// shutting down and will not wait for it). False if `token` is stale. Durable.
    fn release(&self, id: JobId, token: u64, now: Micros) -> StoreResult<bool>;

    /// Requeues (or, with attempts spent, fails) every job whose lease expired before `now`.
    fn recover_expired(&self, now: Micros) -> StoreResult<Vec<JobId>>;

    /// Requeues (or fails) every running job whatever its lease: for a store that only this
    /// process can hold, called once at start, when every such job belongs to a dead host.
    fn recover_all(&self, now: Micros) -> StoreResult<Vec<JobId>>;

    /// The earliest time a waiting job becomes due, if any (for the workers' sleep).
    fn next_due(&self) -> StoreResult<Option<Micros>>;

    /// Jobs per queue and status.
    fn counts(&self) -> StoreResult<BTreeMap<String, BTreeMap<Status, u64>>>;

    /// Writes everything to disk (shutdown, the end of `run-once`).
    fn flush(&self) -> StoreResult<()>;

    /// Stores a new schedule (its `id` is assigned). Durable.
    fn add_schedule(&self, schedule: Schedule) -> StoreResult<Schedule>;

    fn get_schedule(&self, id: ScheduleId) -> StoreResult<Option<Schedule>>;

    /// Every schedule, by id.
    fn list_schedules(&self) -> StoreResult<Vec<Schedule>>;

    /// Applies `update` to a schedule in one transaction (a reschedule sets its new
    /// `next_run_at` there). Durable.
    fn update_schedule(&self, id: ScheduleId, update: &dyn Fn(&mut Schedule)) -> StoreResult<Schedule>;

    /// Deletes a schedule (its jobs stay); false if there was none. Durable.
    fn remove_schedule(&self, id: ScheduleId) -> StoreResult<bool>;

    /// Active schedules whose `next_run_at` is at or before `now`, earliest first.
    fn due_schedules(&self, now: Micros, limit: usize) -> StoreResult<Vec<Schedule>>;

    /// The earliest `next_run_at` of an active schedule (for the scheduler's sleep).
    fn next_schedule_due(&self) -> StoreResult<Option<Micros>>;

    /// Fires slot `slot` of a schedule in one transaction: only if the schedule is active and
    /// its `next_run_at` is still `slot`, stores `job` (if any) and moves `next_run_at` to
    /// `next`. `None` when another scheduler fired the slot first: each slot makes at most
    /// one job however many schedulers race (with PostgreSQL: the row lock of
    /// `SELECT … FOR UPDATE SKIP LOCKED` plus the insert, in one transaction).
    fn fire_schedule(
        &self,
        id: ScheduleId,
        slot: Micros,
        job: Option<NewJob>,
        next: Option<Micros>,
        now: Micros,
    ) -> StoreResult<Option<Fired>>;
}
