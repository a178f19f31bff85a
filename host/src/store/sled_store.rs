//! The embedded store on sled.
//!
//! Trees: `jobs` (id → record), `ready` ((queue, priority desc, ready time, id) → factory),
//! `waiting` ((run time, id), jobs waiting for a retry or run time), `leases` ((expiry, id) →
//! token), `unique` ((factory, unique key) → id of the pending job holding it), `finished`
//! ((finished time, id) of finished jobs, for removal and retention), `schedules`
//! (id → schedule), `schedules_due` ((next run, id), active schedules with a next run), `meta`
//! (format version, id high-water marks). A job is in exactly one of `ready`, `waiting`, `leases`
//! or none (held or finished), and its record says which: the key of its index entry is derived
//! from the record (`run_at`, `lease.expires_at`), so it can always be found and removed.
//!
//! Durability: additions, cancels and retries return only once flushed (group commit); outcomes
//! and progress reach the disk within the flush interval (see `flusher`): losing one in a crash
//! means the job runs again, which at-least-once delivery allows. Claims are written to the claims journal
//! (see `claim_journal`) before their job runs, or flushed with `ClaimDurability::Flush`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use super::claim_journal::{self, ClaimJournal};
use super::codec::{self, CodecError, FORMAT_VERSION, OLDEST_READABLE};
use super::durability::Combiner;
use super::flusher::{Flusher, Flushes};
use super::keys;
use super::{
    Added, Cancelled, ClaimFilter, Claimed, Finished, Fired, LeaseTerms, ListFilter, Store, StoreError,
    StoreResult,
};
use crate::clock::{duration_micros, Micros};
use crate::job::{Job, JobId, Lease, NewJob, Outcome, Progress, ScheduleId, Status};
use crate::schedule::Schedule;

/// The error recorded on a job that was running when its host died.
pub const WORKER_LOST_HOST_STOPPED: &str = "worker lost: host stopped while the job was running";
/// The error recorded on a job whose worker stopped renewing its lease.
pub const WORKER_LOST_LEASE_EXPIRED: &str = "worker lost: its lease expired";

const META_FORMAT: &[u8] = b"format_version";
/// The highest job id ever deleted, so that deleting the newest jobs never lets their ids be
/// issued again after a restart (the others are found in the `jobs` tree).
const META_ID_HIGH_WATER: &[u8] = b"id_high_water";
/// The last schedule id issued (schedules are few: the counter lives in the store).
const META_SCHEDULE_ID: &[u8] = b"schedule_last_id";
/// Present once the `finished` index covers every finished job (stores older than it get it
/// built at open).
const META_FINISHED_INDEX: &[u8] = b"finished_index";

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// How often the store flushes changes that were not flushed on the spot (outcomes,
    /// progress, journaled claims).
    pub flush_interval_ms: u64,
    /// How a claim is kept before its job runs.
    pub claims: ClaimDurability,
}

/// How a claim (a counted attempt) is kept before its job runs. Either way, an attempt that
/// kills the host is counted, so a poison job ends in `error` after its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClaimDurability {
    /// Appended to the claims journal (one `write`, no sync): survives the death of the
    /// process; reaches the disk with the flush interval, so a machine crash inside that
    /// interval can lose the count (the job then runs again).
    Journal,
    /// Flushed to disk before the job runs (shared flushes): survives a machine crash too,
    /// at the cost of a disk sync per claim.
    Flush,
}

impl ClaimDurability {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimDurability::Journal => "journal",
            ClaimDurability::Flush => "flush",
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            claims: ClaimDurability::Journal,
        }
    }
}

/// sled's page cache. With 1,000,000 queued jobs the process holds 113 MB at this default;
/// peak RSS went 355 → 230 → 203 MB from 64 to 16 to 4 MiB, drain within 6 % across them
/// (the hot indexes are small).
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// The window in which a completed outcome can be lost in a crash (the job then runs again).
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 100;

pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    jobs: Tree,
    ready: Tree,
    waiting: Tree,
    leases: Tree,
    unique: Tree,
    /// (finished time, id) of every finished job: retention and removal scan this, not every
    /// job.
    finished: Tree,
    schedules: Tree,
    schedules_due: Tree,
    meta: Tree,
    claims: ClaimDurability,
    journal: ClaimJournal,
    /// What the previous process journaled, until `recover_all` applies it.
    journaled: Mutex<BTreeMap<JobId, u32>>,
    /// The last job id issued. Ids are consecutive (sled's own `generate_id` jumps by a
    /// million after a restart, which users would see); at open it is the highest id stored
    /// or ever deleted.
    last_id: AtomicU64,
    flushes: Arc<Flushes>,
    /// Flushes lazy changes within the interval; stopped (after a last flush) when the store
    /// is dropped.
    _flusher: Flusher,
    /// Concurrent additions (without unique keys), committed in shared transactions.
    adds: Combiner<Job>,
    /// One claimer at a time in this process: claimers would otherwise race for the same
    /// first key and retry their transactions. Held only for the claim's transaction, not
    /// for its flush, so concurrent claims still share flushes.
    claim_lock: Mutex<()>,
    /// One add with a unique key at a time: the check for a pending holder and the insert
    /// must not interleave with another add of the same key.
    unique_lock: Mutex<()>,
    /// Jobs per (queue, status). Exact: one process owns an embedded store, and every
    /// transition updates it after its transaction commits. Built at open. Signed, because
    /// transitions are counted in the order their callers get here, not the order they
    /// committed: a worker can claim a new job, and count it leaving `queued`, before its
    /// adder counts it arriving. Increments commute; a floor at zero lost that decrement and
    /// left the queue showing a job forever.
    counts: Mutex<BTreeMap<(String, Status), i64>>,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn tx_result<T>(r: Result<T, TransactionError<StoreError>>) -> StoreResult<T> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    })
}

fn decode_job(id: JobId, bytes: &[u8]) -> Result<Job, StoreError> {
    codec::decode_job(bytes).map_err(|error| StoreError::Corrupt { what: format!("job {id}"), error })
}

fn load(jobs: &TransactionalTree, id: JobId) -> TxResult<Job> {
    match jobs.get(keys::id_key(id))? {
        Some(bytes) => decode_job(id, &bytes).map_err(ConflictableTransactionError::Abort),
        None => abort(StoreError::NotFound(id)),
    }
}

fn save(jobs: &TransactionalTree, job: &Job) -> TxResult<()> {
    jobs.insert(&keys::id_key(job.id), codec::encode(job))?;
    Ok(())
}

fn ready_key(job: &Job) -> Vec<u8> {
    keys::ready_key(&job.queue, job.priority, job.run_at, job.id)
}

/// Puts a queued job where a claimer finds it: `ready` if due, else `waiting`.
fn enqueue(ready: &TransactionalTree, waiting: &TransactionalTree, job: &Job, now: Micros) -> TxResult<()> {
    if job.run_at <= now {
        ready.insert(ready_key(job), job.factory.as_bytes())?;
    } else {
        waiting.insert(&keys::time_key(job.run_at, job.id), &[])?;
    }
    Ok(())
}

/// The running job `id` if `token` still holds its lease, with the lease removed (record and
/// index); `None` when the token is stale.
fn take_lease(
    jobs: &TransactionalTree,
    leases: &TransactionalTree,
    id: JobId,
    token: u64,
) -> TxResult<Option<Job>> {
    let mut job = load(jobs, id)?;
    let Some(lease) = job.lease.filter(|l| l.token == token && job.status == Status::Processing) else {
        return Ok(None);
    };
    leases.remove(&keys::time_key(lease.expires_at, id))?;
    job.lease = None;
    Ok(Some(job))
}

/// Indexes a job that is not running by its status: queued → `ready` or `waiting` (retry time),
/// scheduled → `waiting`, held → nowhere.
fn place(ready: &TransactionalTree, waiting: &TransactionalTree, job: &Job, now: Micros) -> TxResult<()> {
    match job.status {
        Status::Queued => enqueue(ready, waiting, job, now),
        Status::Scheduled => {
            waiting.insert(&keys::time_key(job.run_at, job.id), &[])?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The `unique` index key of a job that has a unique key.
fn unique_index_key(job: &Job) -> Option<Vec<u8>> {
    job.unique_key.as_ref().map(|key| keys::unique_key(&job.factory, key))
}

/// A job that finished gives up its unique key (if it holds it), so the next add makes a new job.
fn drop_unique(unique: &TransactionalTree, job: &Job) -> TxResult<()> {
    if let Some(key) = unique_index_key(job) {
        if unique.get(&key)?.is_some_and(|v| keys::id_from(&v) == Some(job.id)) {
            unique.remove(key)?;
        }
    }
    Ok(())
}

/// A job just finished: it gives up its unique key and enters the `finished` index.
fn settle(unique: &TransactionalTree, finished: &TransactionalTree, job: &Job) -> TxResult<()> {
    drop_unique(unique, job)?;
    if let Some(at) = job.finished_at {
        finished.insert(&keys::time_key(at, job.id), &[])?;
    }
    Ok(())
}

/// Applies an attempt's outcome to its job if `token` still holds the lease; the job
/// afterwards, `None` when the token is stale. The body of `finish`, shared with
/// `finish_and_claim`.
#[allow(clippy::too_many_arguments)] // one per tree of the transaction, then the outcome's
fn apply_outcome(
    jobs: &TransactionalTree,
    ready: &TransactionalTree,
    waiting: &TransactionalTree,
    leases: &TransactionalTree,
    unique: &TransactionalTree,
    finished: &TransactionalTree,
    id: JobId,
    token: u64,
    outcome: &Outcome,
    now: Micros,
) -> TxResult<Option<Job>> {
    let Some(mut job) = take_lease(jobs, leases, id, token)? else { return Ok(None) };
    if job.cancel_requested {
        job.status = Status::Cancelled;
        job.finished_at = Some(now);
    } else {
        match outcome.clone() {
            Outcome::Completed { result } => {
                job.status = Status::Completed;
                job.result = Some(result);
                job.finished_at = Some(now);
            }
            Outcome::Retry { error, retry_at } => {
                job.push_error(now, &error);
                job.status = Status::Queued;
                job.run_at = retry_at;
                enqueue(ready, waiting, &job, now)?;
            }
            Outcome::Failed { error } => {
                job.push_error(now, &error);
                job.status = Status::Error;
                job.finished_at = Some(now);
            }
        }
    }
    if job.status.is_finished() {
        settle(unique, finished, &job)?;
    }
    save(jobs, &job)?;
    Ok(Some(job))
}

/// The ready job a claim picked (under the claim lock), and the lease it will hold.
struct NextClaim {
    key: sled::IVec,
    id: JobId,
    now: Micros,
    token: u64,
    expires_at: Micros,
}

impl NextClaim {
    fn new(key: sled::IVec, id: JobId, now: Micros, lease: LeaseTerms) -> Self {
        // Random, not from sled's id sequence, so job ids stay consecutive. A token only has to
        // differ from the same job's earlier attempts': 1 in 2^64 that it doesn't.
        let token = fastrand::u64(1..);
        let expires_at = now.saturating_add(duration_micros(lease.duration));
        NextClaim { key, id, now, token, expires_at }
    }

    /// Takes the job out of `ready` and starts its attempt: `processing`, attempt counted,
    /// leased. `None` if it left `ready` meanwhile (a cancel).
    fn take(
        &self,
        jobs: &TransactionalTree,
        ready: &TransactionalTree,
        leases: &TransactionalTree,
    ) -> TxResult<Option<Job>> {
        if ready.remove(&self.key)?.is_none() {
            return Ok(None);
        }
        let mut job = load(jobs, self.id)?;
        job.status = Status::Processing;
        job.attempts += 1;
        job.started_at = Some(self.now);
        job.progress = None;
        job.lease = Some(Lease { token: self.token, expires_at: self.expires_at });
        save(jobs, &job)?;
        leases.insert(&keys::time_key(self.expires_at, self.id), &self.token.to_be_bytes())?;
        Ok(Some(job))
    }
}

fn schedule_due_key(schedule: &Schedule) -> Option<[u8; 16]> {
    schedule.next_run_at.filter(|_| schedule.active).map(|at| keys::time_key(at, schedule.id))
}

fn decode_schedule(id: ScheduleId, bytes: &[u8]) -> Result<Schedule, StoreError> {
    codec::decode(bytes).map_err(|error| StoreError::Corrupt { what: format!("schedule {id}"), error })
}

fn load_schedule(schedules: &TransactionalTree, id: ScheduleId) -> TxResult<Option<Schedule>> {
    match schedules.get(keys::id_key(id))? {
        Some(bytes) => decode_schedule(id, &bytes).map(Some).map_err(ConflictableTransactionError::Abort),
        None => Ok(None),
    }
}

/// Writes a schedule and moves its `schedules_due` entry from `old`'s to its own.
fn save_schedule(
    schedules: &TransactionalTree,
    due: &TransactionalTree,
    old: Option<&Schedule>,
    schedule: &Schedule,
) -> TxResult<()> {
    if let Some(key) = old.and_then(schedule_due_key) {
        due.remove(&key)?;
    }
    if let Some(key) = schedule_due_key(schedule) {
        due.insert(&key, &[])?;
    }
    schedules.insert(&keys::id_key(schedule.id), codec::encode(schedule))?;
    Ok(())
}

/// Removes whichever waiting-index entry a queued/scheduled job has.
fn dequeue(ready: &TransactionalTree, waiting: &TransactionalTree, job: &Job) -> TxResult<()> {
    ready.remove(ready_key(job))?;
    waiting.remove(&keys::time_key(job.run_at, job.id))?;
    Ok(())
}

impl SledStore {
    /// Opens (or creates) the store at `path`. The caller then runs [`Store::recover_all`]:
    /// one process holds an embedded store, so every job still `processing` belongs to a host
    /// that died.
    pub fn open(path: &Path, options: StoreOptions) -> StoreResult<Self> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            // sled's flusher would also run its segment cleaner, which can write forever on an
            // idle host (see `flusher`): the store flushes itself.
            .flush_every_ms(None);
        // sled's background I/O keeps the file (and its lock) open for a moment after a `Db`
        // is dropped, so a reopen in the same process can find it still locked: try for up to a
        // second before calling it held by another process.
        let mut tries = 0;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(ref io))
                    if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
                {
                    tries += 1;
                    if tries >= 50 {
                        return Err(StoreError::Locked(path.to_owned()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(other) => return Err(StoreError::Sled(other)),
            }
        };
        let meta = db.open_tree("meta")?;
        match meta.get(META_FORMAT)?.map(|v| v.first().copied().unwrap_or(0)) {
            Some(FORMAT_VERSION) => {}
            Some(found) if found > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat { path: path.to_owned(), found });
            }
            // Older records are upgraded as they are read (see `codec`); new ones are written in
            // the current format.
            Some(found) if found >= OLDEST_READABLE => {
                log::info!("store at {}: format {found} upgraded to {FORMAT_VERSION}", path.display());
                meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
            Some(found) => {
                return Err(StoreError::Corrupt {
                    what: "meta/format_version".to_owned(),
                    error: CodecError::Unknown(found),
                });
            }
            None => {
                meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
        }
        let journal = ClaimJournal::open(path)?;
        let replay = journal.replay()?;
        if replay.unreadable_bytes > 0 {
            log::warn!(
                "{}: {} unreadable bytes skipped (a torn write from a machine crash)",
                journal.path().display(),
                replay.unreadable_bytes
            );
        }
        let jobs = db.open_tree("jobs")?;
        let newest = jobs.last()?.and_then(|(key, _)| keys::id_from(&key)).unwrap_or(0);
        let deleted = meta.get(META_ID_HIGH_WATER)?.and_then(|v| keys::id_from(&v)).unwrap_or(0);
        let flushes =
            Arc::new(Flushes::new(db.clone(), Duration::from_millis(options.flush_interval_ms.max(1))));
        let store = SledStore {
            path: path.to_owned(),
            jobs,
            meta,
            claims: options.claims,
            journal,
            journaled: Mutex::new(replay.attempts),
            last_id: AtomicU64::new(newest.max(deleted)),
            ready: db.open_tree("ready")?,
            waiting: db.open_tree("waiting")?,
            leases: db.open_tree("leases")?,
            unique: db.open_tree("unique")?,
            finished: db.open_tree("finished")?,
            schedules: db.open_tree("schedules")?,
            schedules_due: db.open_tree("schedules_due")?,
            _flusher: Flusher::start(flushes.clone()).map_err(StoreError::Flusher)?,
            flushes,
            db,
            adds: Combiner::new(),
            claim_lock: Mutex::new(()),
            unique_lock: Mutex::new(()),
            counts: Mutex::new(BTreeMap::new()),
        };
        store.rebuild_counts()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn durable(&self) -> StoreResult<()> {
        Ok(self.flushes.durable()?)
    }

    /// See [`Flushes::pace`]: a claim waits for a flush once an interval.
    fn pace(&self) -> StoreResult<()> {
        Ok(self.flushes.pace()?)
    }

    /// Records a job's new attempt count in the claims journal (journal mode), checkpointing
    /// the journal when it has grown large.
    fn journal_attempts(&self, id: JobId, attempts: u32) -> StoreResult<()> {
        if self.claims != ClaimDurability::Journal {
            return Ok(());
        }
        if self.journal.append(id, attempts)? >= claim_journal::CHECKPOINT_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Flushes the store and empties the claims journal, whose records that flush made
    /// redundant.
    fn checkpoint(&self) -> StoreResult<()> {
        self.journal.checkpoint(|| self.durable())
    }

    /// Counts the attempts the previous process journaled but never flushed: their jobs are
    /// back in `queued` with one attempt fewer (the claim was lost with the process) and
    /// were running when it died. They get the error of a job whose host stopped, and end
    /// in `error` if that was their last attempt.
    fn recover_journaled(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        let journaled = std::mem::take(&mut *self.journaled.lock().unwrap_or_else(PoisonError::into_inner));
        let mut recovered = Vec::new();
        for (id, attempts) in journaled {
            // Most records describe attempts the store already has: read before writing, so
            // a journal of thousands of records costs reads, not transactions, at start-up.
            let lost =
                |job: &Job| job.status == Status::Queued && job.attempts.checked_add(1) == Some(attempts);
            if !self.get(id)?.is_some_and(|job| lost(&job)) {
                continue;
            }
            let result = (&self.jobs, &self.ready, &self.waiting, &self.unique, &self.finished).transaction(
                |(jobs, ready, waiting, unique, finished)| {
                    let Some(bytes) = jobs.get(keys::id_key(id))? else { return Ok(None) };
                    let mut job = decode_job(id, &bytes).map_err(ConflictableTransactionError::Abort)?;
                    if !lost(&job) {
                        return Ok(None); // moved on since the read
                    }
                    job.attempts = attempts;
                    job.push_error(now, WORKER_LOST_HOST_STOPPED);
                    if job.attempts >= job.max_attempts {
                        dequeue(ready, waiting, &job)?;
                        job.status = Status::Error;
                        job.finished_at = Some(now);
                        settle(unique, finished, &job)?;
                    }
                    save(jobs, &job)?;
                    Ok(Some(job))
                },
            );
            if let Some(job) = tx_result(result)? {
                self.count(&job.queue, Some(Status::Queued), Some(job.status));
                recovered.push(id);
            }
        }
        Ok(recovered)
    }

    /// Counts jobs per (queue, status); builds the `finished` index if this store predates it.
    fn rebuild_counts(&self) -> StoreResult<()> {
        let build_index = self.meta.get(META_FINISHED_INDEX)?.is_none();
        let mut counts = BTreeMap::new();
        for entry in self.jobs.iter() {
            let (key, value) = entry?;
            let id = keys::id_from(&key).unwrap_or_default();
            match decode_job(id, &value) {
                Ok(job) => {
                    if build_index && job.status.is_finished() {
                        self.finished.insert(keys::time_key(job.finished_at.unwrap_or(0), id), &[])?;
                    }
                    *counts.entry((job.queue, job.status)).or_insert(0) += 1
                }
                // One unreadable record must not make the whole store unusable; it is
                // reported whenever it is read.
                Err(e) => log::error!("{e}"),
            }
        }
        if build_index {
            self.meta.insert(META_FINISHED_INDEX, &[1])?;
        }
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = counts;
        Ok(())
    }

    /// Keeps a committed claim by the configured `store.claims` policy.
    fn keep_claim(&self, claimed: &Claimed) -> StoreResult<()> {
        match self.claims {
            ClaimDurability::Flush => self.durable(),
            ClaimDurability::Journal => {
                self.journal_attempts(claimed.job.id, claimed.job.attempts)?;
                self.pace()
            }
        }
    }

    /// Counts a committed outcome (`None`: stale, nothing changed).
    fn count_finished(&self, done: Option<Job>) -> Finished {
        match done {
            Some(job) => {
                self.count(&job.queue, Some(Status::Processing), Some(job.status));
                Finished::Applied(job)
            }
            None => Finished::Stale,
        }
    }

    /// Counts a committed claim.
    fn count_claimed(&self, job: Job, token: u64) -> Claimed {
        self.count(&job.queue, Some(Status::Queued), Some(Status::Processing));
        Claimed { job, token }
    }

    /// Records a transition in the in-memory counts.
    fn count(&self, queue: &str, from: Option<Status>, to: Option<Status>) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(from) = from {
            *counts.entry((queue.to_owned(), from)).or_insert(0) -= 1;
        }
        if let Some(to) = to {
            *counts.entry((queue.to_owned(), to)).or_insert(0) += 1;
        }
    }

    /// Moves every waiting job due by `now` to `ready`; how many.
    fn promote_waiting(&self, now: Micros) -> StoreResult<usize> {
        let mut promoted_count = 0;
        for entry in self.waiting.range(..=keys::time_upper_bound(now)) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            let promoted = (&self.jobs, &self.ready, &self.waiting).transaction(|(jobs, ready, waiting)| {
                if waiting.remove(&key)?.is_none() {
                    return Ok(None);
                }
                let mut job = load(jobs, id)?;
                let from = job.status;
                if !matches!(from, Status::Queued | Status::Scheduled) {
                    return Ok(None);
                }
                job.status = Status::Queued;
                save(jobs, &job)?;
                ready.insert(ready_key(&job), job.factory.as_bytes())?;
                Ok(Some((job.queue, from)))
            });
            if let Some((queue, from)) = tx_result(promoted)? {
                self.count(&queue, Some(from), Some(Status::Queued));
                promoted_count += 1;
            }
        }
        Ok(promoted_count)
    }

    /// The first ready key matching `filter`, and how many index entries were inspected to
    /// find it: one without a factory filter at any queue depth (the claim's cost is one
    /// ordered-tree seek), more only when skipping other factories' jobs (`run-once --factory`).
    fn next_ready(&self, filter: &ClaimFilter<'_>) -> StoreResult<(Option<(sled::IVec, JobId)>, usize)> {
        let iter = match filter.queue {
            Some(queue) => self.ready.scan_prefix(keys::queue_prefix(queue)),
            None => self.ready.iter(),
        };
        let mut inspected = 0;
        for entry in iter {
            let (key, factory) = entry?;
            inspected += 1;
            if filter.factory.is_some_and(|f| f.as_bytes() != &*factory) {
                continue;
            }
            if let Some((_, id)) = keys::parse_ready_key(&key) {
                return Ok((Some((key, id)), inspected));
            }
        }
        Ok((None, inspected))
    }

    /// Requeues or fails every job whose lease expires at or before `upto`.
    fn requeue_leases(&self, upto: Micros, now: Micros, reason: &str) -> StoreResult<Vec<JobId>> {
        let mut recovered = Vec::new();
        for entry in self.leases.range(..=keys::time_upper_bound(upto)) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            let result = (&self.jobs, &self.ready, &self.waiting, &self.leases, &self.unique, &self.finished)
                .transaction(|(jobs, ready, waiting, leases, unique, finished)| {
                    if leases.remove(&key)?.is_none() {
                        return Ok(None);
                    }
                    let mut job = load(jobs, id)?;
                    if job.status != Status::Processing {
                        return Ok(None);
                    }
                    job.lease = None;
                    job.progress = None;
                    if job.cancel_requested {
                        job.status = Status::Cancelled;
                        job.finished_at = Some(now);
                    } else {
                        job.push_error(now, reason);
                        if job.attempts >= job.max_attempts {
                            job.status = Status::Error;
                            job.finished_at = Some(now);
                        } else {
                            // Keeps its `run_at`: an interrupted job resumes its place in line,
                            // so a strict-FIFO queue stays in order across a crash.
                            job.status = Status::Queued;
                            enqueue(ready, waiting, &job, now.max(job.run_at))?;
                        }
                    }
                    if job.status.is_finished() {
                        settle(unique, finished, &job)?;
                    }
                    save(jobs, &job)?;
                    Ok(Some((job.queue, job.status)))
                });
            if let Some((queue, status)) = tx_result(result)? {
                self.count(&queue, Some(Status::Processing), Some(status));
                recovered.push(id);
            }
        }
        if !recovered.is_empty() {
            self.durable()?;
        }
        Ok(recovered)
    }
}

impl SledStore {
    /// Stores new jobs (records and index entries) in one transaction and counts them. Each
    /// is placed as of its own `created_at`: combined adds come from callers with their own
    /// clocks.
    fn insert_new(&self, jobs: &[Job]) -> StoreResult<()> {
        tx_result((&self.jobs, &self.ready, &self.waiting).transaction(|(tree, ready, waiting)| {
            for job in jobs {
                save(tree, job)?;
                place(ready, waiting, job, job.created_at)?;
            }
            Ok(())
        }))?;
        for job in jobs {
            self.count(&job.queue, None, Some(job.status));
        }
        Ok(())
    }

    /// A new queued record (id 0 until assigned).
    fn add_record(&self, new: NewJob, now: Micros) -> Job {
        let run_at = new.run_at.map_or(now, |at| at.max(now));
        let status = if new.hold {
            Status::Held
        } else if run_at > now {
            Status::Scheduled
        } else {
            Status::Queued
        };
        Job {
            id: 0,
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
        }
    }
}

impl Store for SledStore {
    fn add(&self, new: NewJob, now: Micros) -> StoreResult<Added> {
        let mut job = self.add_record(new, now);
        if job.unique_key.is_none() {
            // Shares a transaction with the additions made meanwhile (see `Combiner`); the id
            // is taken in commit order, so ids stay consecutive.
            let job = self.adds.submit(
                || Job { id: self.last_id.fetch_add(1, Ordering::Relaxed) + 1, ..job },
                |jobs| {
                    self.insert_new(jobs).map_err(|e| match e {
                        StoreError::Sled(e) => e,
                        // Storing new records aborts on nothing of its own.
                        other => sled::Error::ReportableBug(other.to_string()),
                    })
                },
            )?;
            self.durable()?;
            return Ok(Added { job, existing: false });
        }
        let _one_unique_add =
            job.unique_key.is_some().then(|| self.unique_lock.lock().unwrap_or_else(PoisonError::into_inner));
        // Looked up before an id is taken, so returning the holder leaves no gap in the ids.
        if let Some(key) = unique_index_key(&job) {
            if let Some(holder) = self.unique.get(&key)?.and_then(|v| keys::id_from(&v)) {
                match self.get(holder)? {
                    Some(existing) if existing.is_pending() => {
                        return Ok(Added { job: existing, existing: true })
                    }
                    _ => {}
                }
            }
        }
        job.id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        tx_result((&self.jobs, &self.ready, &self.waiting, &self.unique).transaction(
            |(jobs, ready, waiting, unique)| {
                if let Some(key) = unique_index_key(&job) {
                    unique.insert(key, &keys::id_key(job.id))?;
                }
                save(jobs, &job)?;
                place(ready, waiting, &job, now)
            },
        ))?;
        self.count(&job.queue, None, Some(job.status));
        self.durable()?;
        Ok(Added { job, existing: false })
    }

    fn add_batch(&self, news: Vec<NewJob>, now: Micros) -> StoreResult<Vec<Job>> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.last_id.fetch_add(news.len() as u64, Ordering::Relaxed) + 1;
        let jobs: Vec<Job> = news
            .into_iter()
            .zip(first..)
            .map(|(new, id)| {
                debug_assert!(new.unique_key.is_none(), "batches carry no unique keys");
                Job { id, ..self.add_record(new, now) }
            })
            .collect();
        self.insert_new(&jobs)?;
        self.durable()?;
        Ok(jobs)
    }

    fn start(&self, id: JobId, now: Micros) -> StoreResult<Job> {
        let result = (&self.jobs, &self.ready, &self.waiting).transaction(|(jobs, ready, waiting)| {
            let mut job = load(jobs, id)?;
            let from = job.status;
            if !matches!(from, Status::Held | Status::Scheduled) {
                return abort(StoreError::Conflict { id, status: from, action: "start" });
            }
            dequeue(ready, waiting, &job)?;
            // A start runs the job now, whatever time it was waiting for.
            job.run_at = now;
            job.status = Status::Queued;
            save(jobs, &job)?;
            place(ready, waiting, &job, now)?;
            Ok((from, job))
        });
        let (from, job) = tx_result(result)?;
        self.count(&job.queue, Some(from), Some(job.status));
        self.durable()?;
        Ok(job)
    }

    fn promote_due(&self, now: Micros) -> StoreResult<usize> {
        self.promote_waiting(now)
    }

    fn claim(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        lease: LeaseTerms,
    ) -> StoreResult<Option<Claimed>> {
        let claimed = {
            let _one_claimer = self.claim_lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.promote_waiting(now)?;
            loop {
                let (Some((key, id)), _) = self.next_ready(filter)? else { return Ok(None) };
                let next = NextClaim::new(key, id, now, lease);
                let result = (&self.jobs, &self.ready, &self.leases)
                    .transaction(|(jobs, ready, leases)| next.take(jobs, ready, leases));
                if let Some(job) = tx_result(result)? {
                    break self.count_claimed(job, next.token);
                }
            }
        };
        self.keep_claim(&claimed)?;
        Ok(Some(claimed))
    }

    fn heartbeat(&self, id: JobId, token: u64, now: Micros, lease: LeaseTerms) -> StoreResult<bool> {
        let expires_at = now.saturating_add(duration_micros(lease.duration));
        tx_result((&self.jobs, &self.leases).transaction(|(jobs, leases)| {
            let mut job = load(jobs, id)?;
            let Some(old) = job.lease.filter(|l| l.token == token && job.status == Status::Processing) else {
                return Ok(false);
            };
            leases.remove(&keys::time_key(old.expires_at, id))?;
            leases.insert(&keys::time_key(expires_at, id), &token.to_be_bytes())?;
            job.lease = Some(Lease { token, expires_at });
            save(jobs, &job)?;
            Ok(true)
        }))
    }

    fn set_progress(&self, id: JobId, token: u64, progress: Progress) -> StoreResult<()> {
        tx_result(self.jobs.transaction(|jobs| {
            let mut job = load(jobs, id)?;
            if job.status == Status::Processing && job.lease.is_some_and(|l| l.token == token) {
                job.progress = Some(progress.clone());
                save(jobs, &job)?;
            }
            Ok(())
        }))
    }

    fn finish(&self, id: JobId, token: u64, outcome: Outcome, now: Micros) -> StoreResult<Finished> {
        let result = (&self.jobs, &self.ready, &self.waiting, &self.leases, &self.unique, &self.finished)
            .transaction(|(jobs, ready, waiting, leases, unique, finished)| {
                apply_outcome(jobs, ready, waiting, leases, unique, finished, id, token, &outcome, now)
            });
        Ok(self.count_finished(tx_result(result)?))
    }

    fn finish_and_claim(
        &self,
        id: JobId,
        token: u64,
        outcome: Outcome,
        now: Micros,
        filter: &ClaimFilter<'_>,
        lease: LeaseTerms,
    ) -> StoreResult<(Finished, Option<Claimed>)> {
        if matches!(outcome, Outcome::Retry { .. }) {
            // A retry due now may belong ahead of the job picked below (a strict-FIFO queue
            // takes it again first): only a claim after the outcome sees it.
            let finished = self.finish(id, token, outcome, now)?;
            return Ok((finished, self.claim(filter, now, lease)?));
        }
        let (finished, claimed) = {
            let _one_claimer = self.claim_lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.promote_waiting(now)?;
            let (next, _) = self.next_ready(filter)?;
            let Some((key, next_id)) = next else {
                return Ok((self.finish(id, token, outcome, now)?, None));
            };
            let next = NextClaim::new(key, next_id, now, lease);
            let result = (&self.jobs, &self.ready, &self.waiting, &self.leases, &self.unique, &self.finished)
                .transaction(|(jobs, ready, waiting, leases, unique, finished)| {
                    let done = apply_outcome(
                        jobs, ready, waiting, leases, unique, finished, id, token, &outcome, now,
                    )?;
                    Ok((done, next.take(jobs, ready, leases)?))
                });
            let (done, claimed) = tx_result(result)?;
            (self.count_finished(done), claimed.map(|job| self.count_claimed(job, next.token)))
        };
        match claimed {
            Some(claimed) => {
                self.keep_claim(&claimed)?;
                Ok((finished, Some(claimed)))
            }
            // The job picked was cancelled meanwhile: look again, as `claim` does.
            None => Ok((finished, self.claim(filter, now, lease)?)),
        }
    }

    fn cancel(&self, id: JobId, now: Micros) -> StoreResult<Cancelled> {
        let result = (&self.jobs, &self.ready, &self.waiting, &self.unique, &self.finished).transaction(
            |(jobs, ready, waiting, unique, finished)| {
                let mut job = load(jobs, id)?;
                let from = job.status;
                match from {
                    Status::Queued | Status::Scheduled | Status::Held => {
                        dequeue(ready, waiting, &job)?;
                        job.status = Status::Cancelled;
                        job.finished_at = Some(now);
                        settle(unique, finished, &job)?;
                        save(jobs, &job)?;
                        Ok((from, Cancelled::Now(job)))
                    }
                    Status::Processing => {
                        job.cancel_requested = true;
                        save(jobs, &job)?;
                        Ok((from, Cancelled::Requested(job)))
                    }
                    _ => abort(StoreError::Conflict { id, status: from, action: "cancel" }),
                }
            },
        );
        let (from, cancelled) = tx_result(result)?;
        if let Cancelled::Now(job) = &cancelled {
            self.count(&job.queue, Some(from), Some(Status::Cancelled));
        }
        self.durable()?;
        Ok(cancelled)
    }

    fn retry(&self, id: JobId, max_attempts: Option<u32>, now: Micros) -> StoreResult<Job> {
        let result = (&self.jobs, &self.ready, &self.waiting, &self.unique, &self.finished).transaction(
            |(jobs, ready, waiting, unique, finished)| {
                let mut job = load(jobs, id)?;
                let from = job.status;
                if !matches!(from, Status::Error | Status::Cancelled) {
                    return abort(StoreError::Conflict { id, status: from, action: "retry" });
                }
                if let Some(at) = job.finished_at {
                    finished.remove(&keys::time_key(at, id))?;
                }
                job.status = Status::Queued;
                job.attempts = 0;
                job.max_attempts = max_attempts.unwrap_or(job.max_attempts);
                job.run_at = now;
                job.finished_at = None;
                job.result = None;
                job.progress = None;
                job.cancel_requested = false;
                // Pending again: it takes its unique key back unless another pending job has it.
                if let Some(key) = unique_index_key(&job) {
                    if unique.get(&key)?.is_none() {
                        unique.insert(key, &keys::id_key(id))?;
                    }
                }
                save(jobs, &job)?;
                enqueue(ready, waiting, &job, now)?;
                Ok((from, job))
            },
        );
        let (from, job) = tx_result(result)?;
        self.count(&job.queue, Some(from), Some(Status::Queued));
        // Attempts restart at 0: an older journal record must not read as a lost claim.
        self.journal_attempts(id, job.attempts)?;
        self.durable()?;
        Ok(job)
    }

    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        match self.jobs.get(keys::id_key(id))? {
            Some(bytes) => Ok(Some(decode_job(id, &bytes)?)),
            None => Ok(None),
        }
    }

    fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Job>> {
        let start = filter.after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        for entry in self.jobs.range(keys::id_key(start)..) {
            if out.len() >= filter.limit {
                break;
            }
            let (key, value) = entry?;
            let job = decode_job(keys::id_from(&key).unwrap_or_default(), &value)?;
            let keep = (filter.statuses.is_empty() || filter.statuses.contains(&job.status))
                && filter.factory.as_ref().is_none_or(|f| *f == job.factory)
                && filter.queue.as_ref().is_none_or(|q| *q == job.queue);
            if keep {
                out.push(job);
            }
        }
        Ok(out)
    }

    fn remove(
        &self,
        statuses: &[Status],
        finished_before: Option<Micros>,
    ) -> StoreResult<BTreeMap<Status, u64>> {
        let wanted: Vec<Status> =
            if statuses.is_empty() { Status::FINISHED.to_vec() } else { statuses.to_vec() };
        // The `finished` index in time order: only finished jobs, and with retention only those
        // old enough, are read.
        let upper = keys::time_key(finished_before.unwrap_or(Micros::MAX), 0);
        let mut removed = BTreeMap::new();
        for entry in self.finished.range(..upper) {
            let (index_key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&index_key) else { continue };
            // In a transaction that re-checks the job: a retry may have requeued it since the
            // scan, and deleting it then would leave its other index entries dangling.
            let result = (&self.jobs, &self.finished, &self.meta).transaction(|(jobs, finished, meta)| {
                let job = match jobs.get(keys::id_key(id))? {
                    Some(bytes) => decode_job(id, &bytes).map_err(ConflictableTransactionError::Abort)?,
                    None => {
                        finished.remove(&index_key)?; // a stale entry
                        return Ok(None);
                    }
                };
                if !job.status.is_finished() || !wanted.contains(&job.status) {
                    return Ok(None);
                }
                jobs.remove(&keys::id_key(id))?;
                finished.remove(&index_key)?;
                let high = meta.get(META_ID_HIGH_WATER)?.and_then(|v| keys::id_from(&v)).unwrap_or(0);
                if id > high {
                    meta.insert(META_ID_HIGH_WATER, &keys::id_key(id))?;
                }
                Ok(Some(job))
            });
            if let Some(job) = tx_result(result)? {
                *removed.entry(job.status).or_insert(0) += 1;
                self.count(&job.queue, Some(job.status), None);
            }
        }
        if !removed.is_empty() {
            self.durable()?;
        }
        Ok(removed)
    }

    fn release(&self, id: JobId, token: u64, now: Micros) -> StoreResult<bool> {
        let result = (&self.jobs, &self.ready, &self.waiting, &self.leases, &self.unique, &self.finished)
            .transaction(|(jobs, ready, waiting, leases, unique, finished)| {
                let Some(mut job) = take_lease(jobs, leases, id, token)? else { return Ok(None) };
                job.progress = None;
                if job.cancel_requested {
                    job.status = Status::Cancelled;
                    job.finished_at = Some(now);
                    settle(unique, finished, &job)?;
                } else {
                    // The host interrupted the attempt, not the job: it does not count.
                    job.attempts = job.attempts.saturating_sub(1);
                    job.status = Status::Queued;
                    enqueue(ready, waiting, &job, now.max(job.run_at))?;
                }
                save(jobs, &job)?;
                Ok(Some(job))
            });
        match tx_result(result)? {
            Some(job) => {
                self.count(&job.queue, Some(Status::Processing), Some(job.status));
                // The attempt was given back: the claim's journal record no longer stands.
                self.journal_attempts(id, job.attempts)?;
                self.durable()?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn recover_expired(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        self.requeue_leases(now, now, WORKER_LOST_LEASE_EXPIRED)
    }

    fn recover_all(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        let mut recovered = self.recover_journaled(now)?;
        recovered.extend(self.requeue_leases(Micros::MAX, now, WORKER_LOST_HOST_STOPPED)?);
        // Everything the journal said is now in the store, flushed.
        self.checkpoint()?;
        Ok(recovered)
    }

    fn next_due(&self) -> StoreResult<Option<Micros>> {
        Ok(match self.waiting.first()? {
            Some((key, _)) => keys::parse_time_key(&key).map(|(at, _)| at),
            None => None,
        })
    }

    fn counts(&self) -> StoreResult<BTreeMap<String, BTreeMap<Status, u64>>> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: BTreeMap<String, BTreeMap<Status, u64>> = BTreeMap::new();
        // Below zero only between a transition's two halves (see `counts`): none yet.
        for ((queue, status), n) in counts.iter().filter(|(_, n)| **n > 0) {
            out.entry(queue.clone()).or_default().insert(*status, n.unsigned_abs());
        }
        Ok(out)
    }

    fn flush(&self) -> StoreResult<()> {
        self.checkpoint()
    }

    fn add_schedule(&self, schedule: Schedule) -> StoreResult<Schedule> {
        let result =
            (&self.schedules, &self.schedules_due, &self.meta).transaction(|(schedules, due, meta)| {
                let last = meta.get(META_SCHEDULE_ID)?.and_then(|v| keys::id_from(&v)).unwrap_or(0);
                let schedule = Schedule { id: last + 1, ..schedule.clone() };
                meta.insert(META_SCHEDULE_ID, &keys::id_key(schedule.id))?;
                save_schedule(schedules, due, None, &schedule)?;
                Ok(schedule)
            });
        let schedule = tx_result(result)?;
        self.durable()?;
        Ok(schedule)
    }

    fn get_schedule(&self, id: ScheduleId) -> StoreResult<Option<Schedule>> {
        match self.schedules.get(keys::id_key(id))? {
            Some(bytes) => Ok(Some(decode_schedule(id, &bytes)?)),
            None => Ok(None),
        }
    }

    fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        self.schedules
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode_schedule(keys::id_from(&key).unwrap_or_default(), &value)
            })
            .collect()
    }

    fn update_schedule(&self, id: ScheduleId, update: &dyn Fn(&mut Schedule)) -> StoreResult<Schedule> {
        let result = (&self.schedules, &self.schedules_due).transaction(|(schedules, due)| {
            let Some(old) = load_schedule(schedules, id)? else {
                return abort(StoreError::ScheduleNotFound(id));
            };
            let mut schedule = old.clone();
            update(&mut schedule);
            schedule.id = id;
            save_schedule(schedules, due, Some(&old), &schedule)?;
            Ok(schedule)
        });
        let schedule = tx_result(result)?;
        self.durable()?;
        Ok(schedule)
    }

    fn remove_schedule(&self, id: ScheduleId) -> StoreResult<bool> {
        let result = (&self.schedules, &self.schedules_due).transaction(|(schedules, due)| {
            let Some(old) = load_schedule(schedules, id)? else { return Ok(false) };
            if let Some(key) = schedule_due_key(&old) {
                due.remove(&key)?;
            }
            schedules.remove(&keys::id_key(id))?;
            Ok(true)
        });
        let removed = tx_result(result)?;
        if removed {
            self.durable()?;
        }
        Ok(removed)
    }

    fn due_schedules(&self, now: Micros, limit: usize) -> StoreResult<Vec<Schedule>> {
        let mut due = Vec::new();
        for entry in self.schedules_due.range(..=keys::time_upper_bound(now)).take(limit) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            if let Some(schedule) = self.get_schedule(id)? {
                due.push(schedule);
            }
        }
        Ok(due)
    }

    fn next_schedule_due(&self) -> StoreResult<Option<Micros>> {
        Ok(match self.schedules_due.first()? {
            Some((key, _)) => keys::parse_time_key(&key).map(|(at, _)| at),
            None => None,
        })
    }

    fn fire_schedule(
        &self,
        id: ScheduleId,
        slot: Micros,
        job: Option<NewJob>,
        next: Option<Micros>,
        now: Micros,
    ) -> StoreResult<Option<Fired>> {
        // Checked before an id is taken, so a lost race leaves no gap in the job ids.
        if self.get_schedule(id)?.is_none_or(|s| !s.active || s.next_run_at != Some(slot)) {
            return Ok(None);
        }
        let job = job.map(|new| {
            let mut job = self.add_record(new, now);
            job.id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
            job
        });
        let result = (&self.jobs, &self.ready, &self.waiting, &self.schedules, &self.schedules_due)
            .transaction(|(jobs, ready, waiting, schedules, due)| {
                let Some(old) = load_schedule(schedules, id)? else { return Ok(None) };
                // The slot is the claim: whoever moves `next_run_at` off it first made its job.
                if !old.active || old.next_run_at != Some(slot) {
                    return Ok(None);
                }
                let mut schedule = old.clone();
                schedule.next_run_at = next;
                if let Some(job) = &job {
                    save(jobs, job)?;
                    place(ready, waiting, job, now)?;
                    schedule.last_run_at = Some(now);
                    schedule.last_job_id = Some(job.id);
                    schedule.last_error = None;
                    schedule.runs += 1;
                }
                save_schedule(schedules, due, Some(&old), &schedule)?;
                Ok(Some(Fired { schedule, job: job.clone() }))
            });
        let fired = tx_result(result)?;
        if let Some(Fired { job: Some(job), .. }) = &fired {
            self.count(&job.queue, None, Some(job.status));
        }
        if fired.is_some() {
            self.durable()?;
        }
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::DEFAULT_QUEUE;

    fn new_job(n: u32) -> NewJob {
        NewJob {
            factory: "echo".into(),
            input: n.to_string(),
            queue: DEFAULT_QUEUE.into(),
            priority: 0,
            max_attempts: 3,
            ..NewJob::default()
        }
    }

    fn open(dir: &Path) -> SledStore {
        SledStore::open(dir, StoreOptions::default()).unwrap()
    }

    /// Writes `n` queued jobs straight into the trees (no per-job flush: a fixture, not a test
    /// of `add`).
    fn fill(store: &SledStore, n: u64) {
        let mut jobs = sled::Batch::default();
        let mut ready = sled::Batch::default();
        for id in 1..=n {
            let mut job = store.add_record(new_job(id as u32), id as i64);
            job.id = id;
            jobs.insert(&keys::id_key(id), codec::encode(&job));
            ready.insert(ready_key(&job), job.factory.as_bytes());
        }
        store.jobs.apply_batch(jobs).unwrap();
        store.ready.apply_batch(ready).unwrap();
    }

    #[test]
    fn claiming_inspects_one_index_entry_whether_10_or_100_000_jobs_wait() {
        for depth in [10, 100_000] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path());
            fill(&store, depth);
            let (found, inspected) = store.next_ready(&ClaimFilter::default()).unwrap();
            assert_eq!((found.map(|(_, id)| id), inspected), (Some(1), 1), "depth {depth}");
            let lease = LeaseTerms { duration: std::time::Duration::from_secs(30) };
            let claimed = store.claim(&ClaimFilter::default(), 1_000_000, lease).unwrap().unwrap();
            assert_eq!((claimed.job.id, claimed.job.attempts), (1, 1));
            let (next, inspected) = store.next_ready(&ClaimFilter::default()).unwrap();
            assert_eq!((next.map(|(_, id)| id), inspected), (Some(2), 1), "depth {depth}");
        }
    }

    #[test]
    fn removal_reads_the_finished_index_which_older_stores_get_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            for n in 1..=4 {
                store.add(new_job(n), 0).unwrap();
            }
            store.cancel(1, 10).unwrap();
            store.cancel(2, 20).unwrap();
            // Retention: only what finished before the cut-off.
            assert_eq!(store.remove(&[], Some(15)).unwrap(), BTreeMap::from([(Status::Cancelled, 1)]));
            // A store written before the index existed: no entries, no marker.
            store.finished.clear().unwrap();
            store.meta.remove(META_FINISHED_INDEX).unwrap();
            store.flush().unwrap();
        }
        let store = open(dir.path());
        assert_eq!(
            store.remove(&[Status::Cancelled], None).unwrap(),
            BTreeMap::from([(Status::Cancelled, 1)])
        );
        assert_eq!(store.finished.len(), 0);
        // Retried jobs leave the index; queued ones never enter it.
        store.cancel(3, 30).unwrap();
        store.retry(3, None, 31).unwrap();
        assert_eq!(store.finished.len(), 0);
        assert!(store.remove(&[], None).unwrap().is_empty());
        assert_eq!(store.get(3).unwrap().unwrap().status, Status::Queued);
    }

    #[test]
    fn ids_are_consecutive_and_never_reused_across_restarts_or_removals() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            let ids: Vec<JobId> = (1..=3).map(|n| store.add(new_job(n), 0).unwrap().job.id).collect();
            assert_eq!(ids, [1, 2, 3]);
        }
        let store = open(dir.path());
        assert_eq!(store.add(new_job(4), 0).unwrap().job.id, 4, "no jump after a restart");
        // Finish and remove the newest job: its id stays spent.
        assert!(matches!(store.cancel(4, 0).unwrap(), Cancelled::Now(_)));
        assert_eq!(store.remove(&[Status::Cancelled], None).unwrap()[&Status::Cancelled], 1);
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.add(new_job(5), 0).unwrap().job.id, 5);
    }

    #[test]
    fn a_corrupt_record_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let id = store.add(new_job(1), 0).unwrap().job.id;
        store.jobs.insert(keys::id_key(id), &[FORMAT_VERSION, 0xff, 0xff]).unwrap();
        let err = store.get(id).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("stored record job {id} is unreadable: the record does not decode")),
            "{err}"
        );
        let err = store.list(&ListFilter { limit: 10, ..Default::default() }).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }));
        let claim = store.claim(
            &ClaimFilter::default(),
            0,
            LeaseTerms { duration: std::time::Duration::from_secs(1) },
        );
        assert!(matches!(claim, Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn a_store_written_by_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.db.open_tree("meta").unwrap().insert(META_FORMAT, &[FORMAT_VERSION + 1]).unwrap();
            store.db.flush().unwrap();
        }
        let err = SledStore::open(dir.path(), StoreOptions::default()).err().expect("refused");
        assert!(
            err.to_string()
                .contains(&format!("was written by a newer jobhost (format {};", FORMAT_VERSION + 1)),
            "{err}"
        );
    }
    const LEASE: LeaseTerms = LeaseTerms { duration: std::time::Duration::from_secs(30) };

    /// A claim the process died with: in the journal, never flushed to the store (written
    /// here by hand, because an in-process drop of the store flushes it).
    fn lose_claim(dir: &Path, id: JobId, attempts: u32) {
        ClaimJournal::open(dir).unwrap().append(id, attempts).unwrap();
    }

    #[test]
    fn a_journaled_claim_that_never_reached_the_store_counts_at_recovery() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.add(NewJob { max_attempts: 2, ..new_job(1) }, 0).unwrap();
            store.add(NewJob { max_attempts: 1, unique_key: Some("k".into()), ..new_job(2) }, 0).unwrap();
            store.add(new_job(3), 0).unwrap();
        }
        lose_claim(dir.path(), 1, 1);
        lose_claim(dir.path(), 2, 1);
        lose_claim(dir.path(), 3, 5); // not the next attempt: the store's record stands
        lose_claim(dir.path(), 99, 1); // a job since removed
        let store = open(dir.path());
        assert_eq!(store.recover_all(100).unwrap(), [1, 2]);
        // Recovery checkpointed: what the journal said is in the store now.
        assert_eq!(std::fs::metadata(store.journal.path()).unwrap().len(), 0);
        let one = store.get(1).unwrap().unwrap();
        assert_eq!((one.status, one.attempts), (Status::Queued, 1));
        assert!(one.errors[0].ends_with(WORKER_LOST_HOST_STOPPED), "{:?}", one.errors);
        let two = store.get(2).unwrap().unwrap();
        assert_eq!((two.status, two.attempts, two.finished_at), (Status::Error, 1, Some(100)));
        assert_eq!(store.get(3).unwrap().unwrap().attempts, 0);
        // Job 2 left the ready index and gave up its unique key; job 1 kept its place in line.
        assert_eq!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().unwrap().job.id, 1);
        assert_eq!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().unwrap().job.id, 3);
        assert!(store.claim(&ClaimFilter::default(), 200, LEASE).unwrap().is_none());
        assert!(!store.add(NewJob { unique_key: Some("k".into()), ..new_job(4) }, 300).unwrap().existing);
        let counts = store.counts().unwrap();
        assert_eq!(counts[DEFAULT_QUEUE][&Status::Error], 1);
    }

    #[test]
    fn transitions_counted_out_of_order_still_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // A worker claims and finishes a job before its adder counts it in.
        store.count("q", Some(Status::Queued), Some(Status::Processing));
        store.count("q", Some(Status::Processing), Some(Status::Completed));
        assert_eq!(store.counts().unwrap()["q"], BTreeMap::from([(Status::Completed, 1)]));
        store.count("q", None, Some(Status::Queued));
        assert_eq!(store.counts().unwrap()["q"], BTreeMap::from([(Status::Completed, 1)]));
    }

    #[test]
    fn counts_stay_exact_while_jobs_are_added_and_run_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        const JOBS: u32 = 300;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..JOBS {
                    store.add(new_job(n), 0).unwrap();
                }
            });
            // One worker claims and finishes in two calls, the other carries each next claim
            // in its outcome's transaction, as the processor's workers do.
            for combined in [false, true] {
                let store = &store;
                scope.spawn(move || loop {
                    match store.claim(&ClaimFilter::default(), 1, LEASE).unwrap() {
                        Some(mut c) => loop {
                            let done = Outcome::Completed { result: String::new() };
                            if !combined {
                                store.finish(c.job.id, c.token, done, 2).unwrap();
                                break;
                            }
                            let filter = ClaimFilter::default();
                            match store.finish_and_claim(c.job.id, c.token, done, 2, &filter, LEASE).unwrap()
                            {
                                (Finished::Applied(_), Some(next)) => c = next,
                                (Finished::Applied(_), None) => break,
                                (Finished::Stale, _) => panic!("job {} lost its lease", c.job.id),
                            }
                        },
                        None if store
                            .get(JobId::from(JOBS))
                            .unwrap()
                            .is_some_and(|j| j.status.is_finished()) =>
                        {
                            break
                        }
                        None => std::thread::yield_now(),
                    }
                });
            }
        });
        let done = store.jobs.iter().filter(|e| e.is_ok()).count() as u64;
        assert_eq!(done, u64::from(JOBS));
        assert_eq!(store.counts().unwrap()[DEFAULT_QUEUE], BTreeMap::from([(Status::Completed, done)]));
    }

    #[test]
    fn a_release_or_retry_supersedes_the_claim_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.add(new_job(1), 0).unwrap();
            store.add(new_job(2), 0).unwrap();
            let first = store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
            let failed = Outcome::Failed { error: "no".into() };
            store.finish(first.job.id, first.token, failed, 2).unwrap();
            store.retry(first.job.id, None, 3).unwrap(); // attempts back to 0
            let second = store.claim(&ClaimFilter::default(), 4, LEASE).unwrap().unwrap();
            assert_eq!(second.job.id, 2);
            assert!(store.release(second.job.id, second.token, 5).unwrap()); // attempts back to 0
            assert!(std::fs::metadata(store.journal.path()).unwrap().len() > 0);
        }
        let store = open(dir.path());
        assert!(store.recover_all(10).unwrap().is_empty());
        for id in [1, 2] {
            let job = store.get(id).unwrap().unwrap();
            assert_eq!((job.status, job.attempts), (Status::Queued, 0), "{job:?}");
        }
    }

    #[test]
    fn with_flushed_claims_the_journal_stays_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(
            dir.path(),
            StoreOptions { claims: ClaimDurability::Flush, ..Default::default() },
        )
        .unwrap();
        store.add(new_job(1), 0).unwrap();
        store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
        assert_eq!(std::fs::metadata(store.journal.path()).unwrap().len(), 0);
    }
    #[test]
    fn a_journaled_claim_flushes_only_once_the_interval_has_passed() {
        let last_flush = |store: &SledStore| store.flushes.last();
        for (interval_ms, flushes) in [(3_600_000, false), (1, true)] {
            let dir = tempfile::tempdir().unwrap();
            let options = StoreOptions { flush_interval_ms: interval_ms, ..Default::default() };
            let store = SledStore::open(dir.path(), options).unwrap();
            store.add(new_job(1), 0).unwrap();
            let before = last_flush(&store);
            std::thread::sleep(std::time::Duration::from_millis(5));
            store.claim(&ClaimFilter::default(), 1, LEASE).unwrap().unwrap();
            assert_eq!(last_flush(&store) > before, flushes, "interval {interval_ms} ms");
        }
    }
    #[test]
    fn an_unopenable_claims_journal_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(claim_journal::FILE_NAME)).unwrap();
        let err = SledStore::open(dir.path(), StoreOptions::default()).err().expect("refused").to_string();
        let path = dir.path().join(claim_journal::FILE_NAME);
        assert!(err.starts_with(&format!("claims journal {}: ", path.display())), "{err}");
    }

    fn claim(store: &SledStore, now: Micros) -> Claimed {
        store.claim(&ClaimFilter::default(), now, LEASE).unwrap().expect("a job is ready")
    }

    fn finish_and_claim(
        store: &SledStore,
        c: &Claimed,
        outcome: Outcome,
        now: Micros,
    ) -> (Job, Option<Claimed>) {
        match store.finish_and_claim(c.job.id, c.token, outcome, now, &ClaimFilter::default(), LEASE).unwrap()
        {
            (Finished::Applied(job), next) => (job, next),
            (Finished::Stale, _) => panic!("job {} lost its lease", c.job.id),
        }
    }

    #[test]
    fn finish_and_claim_records_the_outcome_and_claims_the_next_job() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.add(new_job(1), 0).unwrap();
            store.add(new_job(2), 0).unwrap();
            let first = claim(&store, 1);
            let (done, next) = finish_and_claim(&store, &first, Outcome::Completed { result: "1".into() }, 2);
            assert_eq!((done.id, done.status, done.result.as_deref()), (1, Status::Completed, Some("1")));
            let next = next.expect("job 2 claimed with the outcome");
            assert_eq!((next.job.id, next.job.status, next.job.attempts), (2, Status::Processing, 1));
            let stored = store.get(2).unwrap().unwrap();
            assert_eq!(stored.lease.map(|l| l.token), Some(next.token));
            let counts = &store.counts().unwrap()[DEFAULT_QUEUE];
            assert_eq!(counts, &BTreeMap::from([(Status::Completed, 1), (Status::Processing, 1)]));
            // Nothing left to claim: the outcome alone.
            let (done, none) = finish_and_claim(&store, &next, Outcome::Failed { error: "no".into() }, 3);
            assert_eq!((done.id, done.status, none.is_none()), (2, Status::Error, true));
            assert!(store.flush().is_ok());
        }
        // The attempt counted by the combined claim survives a restart.
        let store = open(dir.path());
        assert_eq!(store.get(2).unwrap().unwrap().attempts, 1);
    }

    #[test]
    fn finish_and_claim_after_a_retry_takes_the_retried_job_when_it_leads_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.add(NewJob { priority: 5, ..new_job(1) }, 0).unwrap();
        store.add(new_job(2), 0).unwrap();
        let first = claim(&store, 1);
        assert_eq!(first.job.id, 1);
        let retry = Outcome::Retry { error: "again".into(), retry_at: 2 };
        let (done, next) = finish_and_claim(&store, &first, retry, 2);
        assert_eq!(done.status, Status::Queued);
        let next = next.expect("a job claimed with the retry");
        assert_eq!((next.job.id, next.job.attempts), (1, 2), "the higher-priority retry goes first");
    }

    #[test]
    fn finish_and_claim_with_a_stale_token_changes_nothing_but_still_claims() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.add(new_job(1), 0).unwrap();
        store.add(new_job(2), 0).unwrap();
        let first = claim(&store, 1);
        let stale = first.token.wrapping_add(1).max(1);
        let done = Outcome::Completed { result: String::new() };
        let (finished, next) =
            store.finish_and_claim(1, stale, done, 2, &ClaimFilter::default(), LEASE).unwrap();
        assert!(matches!(finished, Finished::Stale));
        assert_eq!(store.get(1).unwrap().unwrap().status, Status::Processing);
        assert_eq!(next.map(|c| c.job.id), Some(2));
    }
}
