//! What a store can do, as three capabilities a backend implements one by one: jobs (what
//! the API and the CLI change), work (what the workers and the reaper change) and schedules.
//! [`Store`] is all three; the host holds an `Arc<dyn Store>`.
//!
//! Methods block (async callers run them on blocking threads). The shape fits a shared
//! database as well as the embedded store: a claim is `SELECT … FOR UPDATE SKIP LOCKED`, a
//! slot fires in one conditional transaction.

use std::collections::BTreeMap;

use super::error::StoreResult;
use super::types::{
    Added, BackupSummary, Cancelled, ClaimFilter, Claimed, Counts, Finished, Fired, GroupState, HostRecord,
    Keyed, LeaseTerms, ListFilter, Notice, Once, QueuePause, Remembered, Removal,
};
use crate::clock::Micros;
use crate::history::Row as HistoryRow;
use crate::job::{AttemptToken, Job, JobId, NewJob, Outcome, Parent, Progress, ScheduleId, Status};
use crate::limits::{Limit, LimitState, Scope};
use crate::schedule::Schedule;

/// Jobs as their submitters and operators see them.
pub trait JobStore: Send + Sync + 'static {
    /// Adds a job (`queued`, `scheduled` until its run time, or `held`); returns once it is
    /// durable. With a unique key held by a pending job of the same factory, returns that job
    /// instead and stores nothing.
    fn add(&self, job: NewJob, now: Micros) -> StoreResult<Added>;

    /// Adds many jobs in one transaction and one flush: all or none. The jobs carry no unique
    /// keys (the service refuses them in batches). Returns them in order, with their ids.
    fn add_batch(&self, jobs: Vec<NewJob>, now: Micros) -> StoreResult<Vec<Job>>;

    /// [`add`](Self::add) under an idempotency key: if `once.key` is stored and not expired,
    /// stores nothing and returns its record; else adds the job and stores the key with what
    /// it made, in one transaction. Concurrent calls with one key make one job.
    fn add_keyed(&self, job: NewJob, now: Micros, once: &Once) -> StoreResult<Keyed<Added>>;

    /// [`add_batch`](Self::add_batch) under an idempotency key (see [`add_keyed`](Self::add_keyed)).
    fn add_batch_keyed(&self, jobs: Vec<NewJob>, now: Micros, once: &Once) -> StoreResult<Keyed<Vec<Job>>>;

    /// The record of idempotency key `key`, unless it expired before `now`.
    fn remembered(&self, key: &str, now: Micros) -> StoreResult<Option<Remembered>>;

    /// Deletes the idempotency keys expired before `now`, at most `limit`; how many.
    fn forget_keys(&self, now: Micros, limit: usize) -> StoreResult<usize>;

    /// Queues a `held` or `scheduled` job now. Durable.
    fn start(&self, id: JobId, now: Micros) -> StoreResult<Job>;

    /// Cancels a waiting job at once, or requests cancellation of a running one. Durable.
    fn cancel(&self, id: JobId, now: Micros) -> StoreResult<Cancelled>;

    /// Sends a job in `error` or `cancelled` back to `queued` with fresh attempts, keeping its
    /// error history. Durable.
    fn retry(&self, id: JobId, max_attempts: Option<u32>, now: Micros) -> StoreResult<Job>;

    /// The job, with its parents filled in (see `Job::parents`).
    fn get(&self, id: JobId) -> StoreResult<Option<Job>>;

    /// The jobs job `id` depends on, in the order given (none for a job without parents).
    fn parents(&self, id: JobId) -> StoreResult<Vec<Parent>>;

    /// Group `id` (a batch's, by its first job's id) and where its jobs are.
    fn group(&self, id: JobId) -> StoreResult<Option<GroupState>>;

    /// The jobs that wait for job `id` (or did), by id (the order they were added), those after
    /// `after` if given, at most `limit`.
    fn dependents(&self, id: JobId, after: Option<JobId>, limit: usize) -> StoreResult<Vec<JobId>>;

    fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Job>>;

    /// Deletes the finished jobs `which` selects; counts per status. Durable.
    fn remove(&self, which: &Removal) -> StoreResult<BTreeMap<Status, u64>>;

    /// Jobs per queue and status.
    fn counts(&self) -> StoreResult<Counts>;

    /// Every limit (see `crate::limits`), with its rate's state, by scope.
    fn limits(&self) -> StoreResult<Vec<LimitState>>;

    /// Sets the limit on `limit.scope` (adding or replacing it; its rate's pace is kept).
    /// Durable; claims from then on pass it.
    fn set_limit(&self, limit: Limit) -> StoreResult<LimitState>;

    /// Removes the limit on `scope`; false if there was none. Durable.
    fn remove_limit(&self, scope: &Scope) -> StoreResult<bool>;

    /// The queues operators paused, by name.
    fn pauses(&self) -> StoreResult<Vec<QueuePause>>;

    /// Pauses `pause.queue`; a queue paused already keeps its first record, which is returned.
    /// Durable.
    fn pause(&self, pause: &QueuePause) -> StoreResult<QueuePause>;

    /// Resumes `queue`; false if it was not paused. Durable.
    fn resume(&self, queue: &str) -> StoreResult<bool>;

    /// The jobs of `factory` (and of `queue`, if given) in `statuses` (any when empty),
    /// counted up to `cap`: an answer of `cap` means at least that many. (Counts by queue and
    /// status are [`counts`](Self::counts).)
    fn count_of_factory(
        &self,
        factory: &str,
        queue: Option<&str>,
        statuses: &[Status],
        cap: u64,
    ) -> StoreResult<u64>;

    /// Adds a host's throughput history (`crate::history`): each row summed into the stored
    /// row of its minute and queue (on PostgreSQL, every host's into one), and the minutes
    /// older than `history::KEEP_MINUTES` before `now` forgotten. Not synced on its own.
    fn add_history(&self, rows: &[HistoryRow], now: Micros) -> StoreResult<()>;

    /// The history rows from `from_minute` (minutes since the epoch) on, every queue.
    fn history(&self, from_minute: i64) -> StoreResult<Vec<HistoryRow>>;

    /// Writes a consistent copy of the whole store to `out`, for `jobhost store restore`.
    /// Writes wait while it is taken; reads go on.
    fn backup(&self, out: &mut dyn std::io::Write) -> StoreResult<BackupSummary>;
}

/// Running jobs: claims, outcomes, leases and recovery.
pub trait WorkStore: Send + Sync + 'static {
    /// Moves jobs whose run or retry time has come to their queues' ready lists (`scheduled` →
    /// `queued`); how many. Claims do this too; the scheduler does it so that statuses are
    /// right even for queues nobody claims from.
    fn promote_due(&self, now: Micros) -> StoreResult<usize>;

    /// The earliest time a waiting job becomes due, or a rate limit's next start after now, if
    /// any (for the workers' sleep).
    fn next_due(&self) -> StoreResult<Option<Micros>>;

    /// Moves due retry waits to ready, then claims up to `max` ready jobs matching `filter`,
    /// in queue order, in one transaction: each `processing`, its attempt counted, a fresh
    /// lease token. A job some limit does not admit now is passed over and stays `queued`
    /// (see `crate::limits`). Kept before it returns (see the store's claim durability), so an attempt
    /// that kills the host is counted (poison jobs end after max attempts).
    fn claim_batch(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        lease: LeaseTerms,
        max: usize,
    ) -> StoreResult<Vec<Claimed>>;

    /// [`claim_batch`](Self::claim_batch) of one.
    fn claim(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        lease: LeaseTerms,
    ) -> StoreResult<Option<Claimed>> {
        Ok(self.claim_batch(filter, now, lease, 1)?.pop())
    }

    /// Extends a running job's lease. False if the token is stale.
    fn heartbeat(&self, id: JobId, token: AttemptToken, now: Micros, lease: LeaseTerms) -> StoreResult<bool>;

    /// Records a running job's progress (not flushed: progress is advisory).
    fn set_progress(&self, id: JobId, token: AttemptToken, progress: Progress) -> StoreResult<()>;

    /// Applies attempts' outcomes in one transaction, each only if its `token` still holds the
    /// job's lease (a stale one changes nothing). A job whose cancel was requested ends
    /// `cancelled` whatever the outcome. In the order given.
    fn finish_batch(&self, reports: &[Report], now: Micros) -> StoreResult<Vec<Finished>>;

    /// [`finish_batch`](Self::finish_batch) of one.
    fn finish(&self, report: Report, now: Micros) -> StoreResult<Finished> {
        let mut finished = self.finish_batch(std::slice::from_ref(&report), now)?;
        Ok(finished.pop().unwrap_or(Finished::Stale))
    }

    /// Gives running jobs back to their queues without counting their attempts (claimed but
    /// never started, or the host is shutting down and will not wait for them), in one
    /// transaction; how many were still held by their tokens. Durable.
    fn release_batch(&self, jobs: &[(JobId, AttemptToken)], now: Micros) -> StoreResult<usize>;

    /// [`release_batch`](Self::release_batch) of one: false if `token` is stale.
    fn release(&self, id: JobId, token: AttemptToken, now: Micros) -> StoreResult<bool> {
        Ok(self.release_batch(&[(id, token)], now)? == 1)
    }

    /// Requeues (or, with attempts spent, fails) every job whose lease expired before `now`.
    fn recover_expired(&self, now: Micros) -> StoreResult<Vec<JobId>>;

    /// Requeues (or fails) every running job whatever its lease: for a store that only this
    /// process can hold, called once at start, when every such job belongs to a dead host.
    fn recover_all(&self, now: Micros) -> StoreResult<Vec<JobId>>;

    /// Writes everything to disk (shutdown, the end of `run-once`).
    fn flush(&self) -> StoreResult<()>;

    /// Why the store cannot write now (a full disk, a failing device), if it cannot. Writes
    /// fail meanwhile with an error for which [`StoreError::is_unavailable`] holds.
    ///
    /// [`StoreError::is_unavailable`]: super::StoreError::is_unavailable
    fn unwritable(&self) -> Option<String>;

    /// Once the store can write again, makes it do so (the embedded store reopens its
    /// database, which never retries a failed write by itself); true if it writes now. The
    /// host calls this every second while [`unwritable`](Self::unwritable) says why not.
    fn heal(&self) -> StoreResult<bool>;

    /// Has `tell` called with what other processes sharing the store do that this one must
    /// act on: jobs made ready, cancels requested. A store only this process can open has
    /// nothing to tell: the host acts on its own changes as it makes them.
    fn on_notice(&self, tell: std::sync::Arc<dyn Fn(Notice) + Send + Sync>) {
        let _ = tell;
    }

    /// Records that host `me` is alive (registering it the first time); from then on its
    /// claims are marked as its own, so that a host that stops beating is named on the jobs
    /// it left. A store only one process opens keeps nothing.
    fn beat(&self, me: &HostRecord) -> StoreResult<()> {
        let _ = me;
        Ok(())
    }

    /// Host `name` stopped cleanly: it leaves the list.
    fn leave(&self, name: &str) -> StoreResult<()> {
        let _ = name;
        Ok(())
    }

    /// The hosts registered in the store, by name: none for a store only one process opens.
    fn hosts(&self) -> StoreResult<Vec<HostRecord>> {
        Ok(Vec::new())
    }
}

/// An attempt's outcome as its worker reports it: which job, which attempt, how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub id: JobId,
    pub token: AttemptToken,
    pub outcome: Outcome,
    /// When the attempt really started, if later than its claim (claimed in a batch, it waited
    /// for a worker): the job's `started_at` becomes this.
    pub started_at: Option<Micros>,
}

/// Cron and delay schedules.
pub trait ScheduleStore: Send + Sync + 'static {
    /// Stores a new schedule (its `id` is assigned). Durable.
    fn add_schedule(&self, schedule: Schedule) -> StoreResult<Schedule>;

    /// [`add_schedule`](Self::add_schedule) under an idempotency key (see
    /// [`JobStore::add_keyed`]).
    fn add_schedule_keyed(
        &self,
        schedule: Schedule,
        now: Micros,
        once: &Once,
    ) -> StoreResult<Keyed<Schedule>>;

    fn get_schedule(&self, id: ScheduleId) -> StoreResult<Option<Schedule>>;

    /// Every schedule, by id.
    fn list_schedules(&self) -> StoreResult<Vec<Schedule>>;

    /// Applies `update` to a schedule in one transaction (a reschedule sets its new
    /// `next_run_at` there). Durable.
    fn update_schedule(
        &self,
        id: ScheduleId,
        update: &(dyn Fn(&mut Schedule) + Sync),
    ) -> StoreResult<Schedule>;

    /// Deletes a schedule (its jobs stay); false if there was none. Durable.
    fn remove_schedule(&self, id: ScheduleId) -> StoreResult<bool>;

    /// Active schedules whose `next_run_at` is at or before `now`, earliest first.
    fn due_schedules(&self, now: Micros, limit: usize) -> StoreResult<Vec<Schedule>>;

    /// The earliest `next_run_at` of an active schedule (for the scheduler's sleep).
    fn next_schedule_due(&self) -> StoreResult<Option<Micros>>;

    /// Fires slot `slot` of a schedule in one transaction: only if the schedule is active and
    /// its `next_run_at` is still `slot`, stores `job` (if any) and moves `next_run_at` to
    /// `next`. `None` when another scheduler fired the slot first: each slot makes at most
    /// one job however many schedulers race.
    fn fire_schedule(
        &self,
        id: ScheduleId,
        slot: Micros,
        job: Option<NewJob>,
        next: Option<Micros>,
        now: Micros,
    ) -> StoreResult<Option<Fired>>;
}

/// Every capability: what the host needs of a backend.
pub trait Store: JobStore + WorkStore + ScheduleStore {}

impl<T: JobStore + WorkStore + ScheduleStore> Store for T {}
