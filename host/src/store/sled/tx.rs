//! One transaction over every tree, and the helpers that keep a record and its index entries
//! in step inside it. Every multi-tree change of the store goes through [`Trees::transact`]
//! with a [`Tx`]: the bundle of trees is spelled out once, here. Records are decoded here too.
//!
//! The record's fields decide its index entries (`ready`/`waiting` by status and `run_at`,
//! `leases` by `lease.expires_at`, `finished` by `finished_at`), so the helpers take the record
//! as it was or is and derive the keys; what a status change sets on the record is
//! `crate::job`'s.

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use std::cell::RefCell;
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use super::health::Health;
use super::keys::{META_FINISHED_HIGH_WATER, META_ID_HIGH_WATER, META_SCHEDULE_ID};
use super::state_file::Progress;
use super::{codec, keys};
use crate::clock::Micros;
use crate::job::{AttemptToken, Job, JobId, OnFailure, Parent, ScheduleId, Status};
use crate::schedule::Schedule;
use crate::store::dependents::{self, Moved};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::Report;
use crate::sync;

/// The store's trees (see the module header of `sled` for what each holds).
#[derive(Clone)]
pub(super) struct Trees {
    pub jobs: Tree,
    pub ready: Tree,
    pub waiting: Tree,
    pub leases: Tree,
    pub unique: Tree,
    /// (finished time, id) of every finished job: retention and removal scan this, not every
    /// job.
    pub finished: Tree,
    pub schedules: Tree,
    pub schedules_due: Tree,
    pub meta: Tree,
    /// Idempotency key → its record (see `idempotency`).
    pub idempotency: Tree,
    /// (expiry time, key) of every idempotency key: the sweep reads this, not every key.
    pub idempotency_expiry: Tree,
    /// Both directions of the edges (sled's transactions take at most 14 trees). Parent id →
    /// the jobs that depend on it (`keys::edge_entry`: id and `on_failure`), in the order they
    /// were added: what a parent's change must reach (a dependent removed since is skipped).
    /// `keys::parents_key(dependent)` → its parents (`Vec<Parent>`), written once at
    /// submission: kept out of the job's record, which a parent's change rewrites (see
    /// `Job::parents`).
    pub dependents: Tree,
    /// Group id (its first job's) → the `Group` record.
    pub groups: Tree,
    /// Scope key (`queue/NAME`, `factory/NAME`) → its `LimitState`.
    pub limits: Tree,
    /// Told when a transaction fails to write (see `health`).
    health: Arc<Health>,
    /// Told, after a commit, of the dependents it moved (see [`AfterMove`]).
    after_move: AfterMove,
    /// Every transaction holds it shared; a backup holds it alone while it copies the trees,
    /// so what it copies is one consistent state.
    barrier: Arc<RwLock<()>>,
}

impl Trees {
    pub fn open(db: &sled::Db, health: Arc<Health>, after_move: AfterMove) -> sled::Result<Trees> {
        Ok(Trees {
            health,
            after_move,
            barrier: Arc::default(),
            jobs: db.open_tree("jobs")?,
            ready: db.open_tree("ready")?,
            waiting: db.open_tree("waiting")?,
            leases: db.open_tree("leases")?,
            unique: db.open_tree("unique")?,
            finished: db.open_tree("finished")?,
            schedules: db.open_tree("schedules")?,
            schedules_due: db.open_tree("schedules_due")?,
            meta: db.open_tree("meta")?,
            idempotency: db.open_tree("idempotency")?,
            idempotency_expiry: db.open_tree("idempotency_expiry")?,
            dependents: db.open_tree("dependents")?,
            groups: db.open_tree("groups")?,
            limits: db.open_tree("limits")?,
        })
    }
}

/// The trees inside one transaction. sled takes one global lock per transaction, so naming
/// every tree costs nothing over naming the few a change touches.
pub(super) struct Tx<'a> {
    pub jobs: &'a TransactionalTree,
    pub ready: &'a TransactionalTree,
    pub waiting: &'a TransactionalTree,
    pub leases: &'a TransactionalTree,
    pub unique: &'a TransactionalTree,
    pub finished: &'a TransactionalTree,
    pub schedules: &'a TransactionalTree,
    pub schedules_due: &'a TransactionalTree,
    pub meta: &'a TransactionalTree,
    pub idempotency: &'a TransactionalTree,
    pub idempotency_expiry: &'a TransactionalTree,
    pub dependents: &'a TransactionalTree,
    pub groups: &'a TransactionalTree,
    pub limits: &'a TransactionalTree,
    /// The dependents this transaction moved, with their status before (see `propagate`).
    moved: RefCell<Vec<(Status, Job)>>,
}

/// What the store does after a commit with the dependents it moved (their status before, and
/// the record now): counts them and wakes the queues of those released. They changed as a
/// consequence of another job's change, which is all the caller knows of.
pub(super) type AfterMove = Arc<dyn Fn(&[(Status, Job)]) + Send + Sync>;

/// An [`AfterMove`] that does nothing (a store opened to be copied, not used).
pub(super) fn unmoved() -> AfterMove {
    Arc::new(|_: &[(Status, Job)]| {})
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Ends a transaction with `e` (nothing it wrote is kept).
pub(super) fn abort<T>(e: impl Into<StoreError>) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e.into()))
}

impl Trees {
    /// Runs `f` as one transaction over every tree (sled re-runs it on a conflict).
    pub fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> StoreResult<T> {
        let _not_during_a_backup = sync::read(&self.barrier);
        let t = self;
        let trees = (
            &t.jobs,
            &t.ready,
            &t.waiting,
            &t.leases,
            &t.unique,
            &t.finished,
            &t.schedules,
            &t.schedules_due,
            &t.meta,
            &t.idempotency,
            &t.idempotency_expiry,
            &t.dependents,
            &t.groups,
            &t.limits,
        );
        let result = trees.transaction(
            |(
                jobs,
                ready,
                waiting,
                leases,
                unique,
                finished,
                schedules,
                schedules_due,
                meta,
                idempotency,
                idempotency_expiry,
                dependents,
                groups,
                limits,
            )| {
                let tx = Tx {
                    moved: RefCell::default(),
                    jobs,
                    ready,
                    waiting,
                    leases,
                    unique,
                    finished,
                    schedules,
                    schedules_due,
                    meta,
                    idempotency,
                    idempotency_expiry,
                    dependents,
                    groups,
                    limits,
                };
                let result = f(&tx)?;
                Ok((result, tx.moved.take()))
            },
        );
        let (result, moved) = result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => {
                self.health.fail(&e);
                StoreError::Sled(e)
            }
        })?;
        if !moved.is_empty() {
            (self.after_move)(&moved);
        }
        Ok(result)
    }
}

impl Trees {
    /// Every tree's name, in the order backups number them (never reorder: append).
    pub const NAMES: [&'static str; 14] = [
        "jobs",
        "ready",
        "waiting",
        "leases",
        "unique",
        "finished",
        "schedules",
        "schedules_due",
        "meta",
        "idempotency",
        "idempotency_expiry",
        "dependents",
        "groups",
        "limits",
    ];

    /// Every tree with its name, in the order of [`Trees::NAMES`].
    pub fn all(&self) -> [(&'static str, &Tree); 14] {
        let trees = [
            &self.jobs,
            &self.ready,
            &self.waiting,
            &self.leases,
            &self.unique,
            &self.finished,
            &self.schedules,
            &self.schedules_due,
            &self.meta,
            &self.idempotency,
            &self.idempotency_expiry,
            &self.dependents,
            &self.groups,
            &self.limits,
        ];
        let mut i = 0;
        trees.map(|tree| {
            i += 1;
            (Trees::NAMES[i - 1], tree)
        })
    }

    /// Holds every transaction off until the guard is dropped (a backup's snapshot).
    pub fn pause_writes(&self) -> RwLockWriteGuard<'_, ()> {
        sync::write(&self.barrier)
    }

    /// How far the store has got (see `state_file`): read before a flush, durable after it.
    pub fn progress(&self) -> StoreResult<Progress> {
        let newest = self.jobs.last()?.and_then(|(key, _)| keys::id_from(&key)).unwrap_or_default();
        let deleted = self.meta.get(META_ID_HIGH_WATER)?.and_then(|v| keys::id_from(&v)).unwrap_or_default();
        let last_schedule_id =
            self.meta.get(META_SCHEDULE_ID)?.and_then(|v| keys::schedule_id_from(&v)).unwrap_or_default();
        let finished = self.finished.last()?.and_then(|(key, _)| keys::parse_time_key(&key));
        let taken_out = self.meta.get(META_FINISHED_HIGH_WATER)?.and_then(|v| keys::parse_time_key(&v));
        let last_finish = finished.max(taken_out).map(|(at, id)| (at, id.get())).unwrap_or_default();
        Ok(Progress {
            last_job_id: newest.max(deleted).get(),
            last_schedule_id: last_schedule_id.0,
            last_finish,
        })
    }
}

impl Tx<'_> {
    /// Takes a job out of the `finished` index (a retry or a removal), keeping the latest key
    /// ever taken out so that the store's progress never goes back.
    pub fn unfinish(&self, key: &[u8]) -> TxResult<()> {
        self.finished.remove(key)?;
        if self.meta.get(META_FINISHED_HIGH_WATER)?.is_none_or(|high| high.as_ref() < key) {
            self.meta.insert(META_FINISHED_HIGH_WATER, key)?;
        }
        Ok(())
    }

    /// The job's record; aborts with `NotFound` if there is none.
    pub fn load(&self, id: JobId) -> TxResult<Job> {
        match self.find(id)? {
            Some(job) => Ok(job),
            None => abort(StoreError::NotFound(id)),
        }
    }

    pub fn find(&self, id: JobId) -> TxResult<Option<Job>> {
        match self.jobs.get(keys::id_key(id))? {
            Some(bytes) => decode_job(id, &bytes).map(Some).map_err(ConflictableTransactionError::Abort),
            None => Ok(None),
        }
    }

    pub fn save(&self, job: &Job) -> TxResult<()> {
        self.jobs.insert(&keys::id_key(job.id), codec::encode(job))?;
        Ok(())
    }

    /// Puts a queued job where a claimer finds it: `ready` if due at `now`, else `waiting`.
    pub fn enqueue(&self, job: &Job, now: Micros) -> TxResult<()> {
        if job.run_at <= now {
            self.ready.insert(ready_key(job), ready_value(job))?;
        } else {
            self.waiting.insert(&keys::time_key(job.run_at, job.id), &[])?;
        }
        Ok(())
    }

    /// Indexes a job that is not running by its status: queued → `ready` or `waiting` (retry
    /// time), scheduled → `waiting`, held → nowhere.
    pub fn place(&self, job: &Job, now: Micros) -> TxResult<()> {
        match job.status {
            Status::Queued => self.enqueue(job, now),
            Status::Scheduled => {
                self.waiting.insert(&keys::time_key(job.run_at, job.id), &[])?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Removes whichever waiting-index entry a queued or scheduled job has.
    pub fn dequeue(&self, job: &Job) -> TxResult<()> {
        self.ready.remove(ready_key(job))?;
        self.waiting.remove(&keys::time_key(job.run_at, job.id))?;
        Ok(())
    }

    /// The running job `id` if `token` still holds its lease, with its lease index entry
    /// removed (the transition clears the record's); `None` when the token is stale.
    pub fn take_lease(&self, id: JobId, token: AttemptToken) -> TxResult<Option<Job>> {
        let job = self.load(id)?;
        let Some(lease) = job.lease_held_by(token) else { return Ok(None) };
        self.leases.remove(&keys::time_key(lease.expires_at, id))?;
        Ok(Some(job))
    }

    /// Indexes a job whose attempt just ended (a running job's lease is already taken): its
    /// new place in line, or, once finished, the `finished` index and its unique key given up.
    pub fn settle(&self, job: &Job, now: Micros) -> TxResult<()> {
        if job.status.is_finished() {
            self.drop_unique(job)?;
            if let Some(at) = job.finished_at {
                self.finished.insert(&keys::time_key(at, job.id), &[])?;
            }
            Ok(())
        } else {
            // Requeued: it keeps its `run_at`, so an interrupted job resumes its place in line.
            self.place(job, now.max(job.run_at))
        }
    }

    /// A finishing job gives up its unique key (if it holds it), so the next add makes a new
    /// job.
    fn drop_unique(&self, job: &Job) -> TxResult<()> {
        if let Some(key) = unique_index_key(job) {
            if self.unique.get(&key)?.is_some_and(|v| keys::id_from(&v) == Some(job.id)) {
                self.unique.remove(key)?;
            }
        }
        Ok(())
    }

    /// Applies an attempt's outcome to its job if `token` still holds the lease; the job
    /// afterwards, `None` when the token is stale.
    pub fn apply_outcome(&self, report: &Report, now: Micros) -> TxResult<Option<Job>> {
        let Some(mut job) = self.take_lease(report.id, report.token)? else { return Ok(None) };
        if let Some(at) = report.started_at {
            job.started(at, now);
        }
        job.end_attempt(&report.outcome, now);
        // A retry waits for its own time: placed as of now, not of its old `run_at`.
        if job.status == Status::Queued {
            self.enqueue(&job, now)?;
        } else {
            self.settle(&job, now)?;
        }
        self.save(&job)?;
        self.propagate(&[Moved::of(Status::Processing, &job)], now)?;
        Ok(Some(job))
    }

    /// New jobs learn where their parents stand (see `store::dependents::admit`), and each
    /// parent records them as its dependents. A parent that is neither stored nor among
    /// `jobs` aborts with `UnknownParent`.
    pub fn admit(&self, jobs: &mut [Job], now: Micros) -> TxResult<()> {
        let new: std::collections::BTreeSet<JobId> = jobs.iter().map(|j| j.id).collect();
        let mut existing = std::collections::BTreeMap::new();
        let mut children: std::collections::BTreeMap<JobId, Vec<(JobId, OnFailure)>> = Default::default();
        for job in jobs.iter() {
            if job.deps.is_some() {
                self.dependents.insert(&keys::parents_key(job.id), codec::encode(&job.parents))?;
            }
            for parent in job.parents() {
                children.entry(parent.id).or_default().push((job.id, parent.on_failure));
                if new.contains(&parent.id) || existing.contains_key(&parent.id) {
                    continue;
                }
                match self.find(parent.id)? {
                    Some(found) => existing.insert(parent.id, found.status),
                    None => return abort(StoreError::UnknownParent(parent.id)),
                };
            }
        }
        dependents::admit(jobs, &existing, now);
        for (parent, kids) in children {
            self.add_children(parent, &kids)?;
        }
        Ok(())
    }

    /// The jobs that depend on `parent` (some perhaps removed since).
    pub fn children_of(&self, parent: JobId) -> TxResult<Vec<(JobId, OnFailure)>> {
        Ok(match self.dependents.get(keys::id_key(parent))? {
            Some(list) => keys::edges(&list).collect(),
            None => Vec::new(),
        })
    }

    /// Records `children` as dependents of `parent`, after those it has.
    pub fn add_children(&self, parent: JobId, children: &[(JobId, OnFailure)]) -> TxResult<()> {
        let mut list = self.dependents.get(keys::id_key(parent))?.map(|v| v.to_vec()).unwrap_or_default();
        for &(child, on_failure) in children {
            list.extend_from_slice(&keys::edge_entry(child, on_failure));
        }
        self.dependents.insert(&keys::id_key(parent), list)?;
        Ok(())
    }

    /// Tells the dependents of the jobs in `moved` (changed in this transaction), and theirs
    /// (see `store::dependents`); those that changed status are told to [`AfterMove`] once
    /// the transaction commits.
    pub fn propagate(&self, moved: &[Moved], now: Micros) -> TxResult<()> {
        let changed = dependents::propagate(&mut TxGraph(self), moved, now)?;
        self.moved.borrow_mut().extend(changed);
        Ok(())
    }

    pub fn load_schedule(&self, id: ScheduleId) -> TxResult<Option<Schedule>> {
        match self.schedules.get(keys::id_key(id))? {
            Some(bytes) => decode_schedule(id, &bytes).map(Some).map_err(ConflictableTransactionError::Abort),
            None => Ok(None),
        }
    }

    /// Writes a schedule and moves its `schedules_due` entry from `old`'s to its own.
    pub fn save_schedule(&self, old: Option<&Schedule>, schedule: &Schedule) -> TxResult<()> {
        if let Some(key) = old.and_then(schedule_due_key) {
            self.schedules_due.remove(&key)?;
        }
        if let Some(key) = schedule_due_key(schedule) {
            self.schedules_due.insert(&key, &[])?;
        }
        self.schedules.insert(&keys::id_key(schedule.id), codec::encode(schedule))?;
        Ok(())
    }
}

/// The walk of `store::dependents` over this transaction.
struct TxGraph<'t, 'a>(&'t Tx<'a>);

impl dependents::Graph for TxGraph<'_, '_> {
    type Error = ConflictableTransactionError<StoreError>;

    fn children_of(&mut self, parents: &[JobId]) -> TxResult<Vec<(Parent, JobId)>> {
        let mut edges = Vec::new();
        for &id in parents {
            let children = self.0.children_of(id)?;
            edges.extend(children.into_iter().map(|(child, on_failure)| (Parent { id, on_failure }, child)));
        }
        Ok(edges)
    }

    fn load(&mut self, ids: &[JobId]) -> TxResult<Vec<Job>> {
        let mut jobs = Vec::with_capacity(ids.len());
        for &id in ids {
            jobs.extend(self.0.find(id)?);
        }
        Ok(jobs)
    }

    fn save(&mut self, changed: &[(Job, Job)], now: Micros) -> TxResult<()> {
        let tx = self.0;
        for (before, after) in changed {
            if before.status != after.status {
                match before.finished_at {
                    Some(at) if before.status.is_finished() => tx.unfinish(&keys::time_key(at, before.id))?,
                    _ => tx.dequeue(before)?,
                }
                if after.status.is_finished() {
                    tx.settle(after, now)?;
                } else {
                    tx.place(after, now)?;
                }
            }
            tx.save(after)?;
        }
        Ok(())
    }
}

pub(super) fn ready_key(job: &Job) -> Vec<u8> {
    keys::ready_key(&job.queue, job.priority, job.run_at, job.id)
}

/// What a job's `ready` entry holds (see [`keys::ready_value`]).
pub(super) fn ready_value(job: &Job) -> Vec<u8> {
    keys::ready_value(&job.factory, job.limit_key.as_deref())
}

/// The `unique` index key of a job that has a unique key.
pub(super) fn unique_index_key(job: &Job) -> Option<Vec<u8>> {
    job.unique_key.as_ref().map(|key| keys::unique_key(&job.factory, key))
}

pub(super) fn schedule_due_key(schedule: &Schedule) -> Option<[u8; 16]> {
    schedule.next_run_at.filter(|_| schedule.active).map(|at| keys::time_key(at, schedule.id))
}

/// A job record as stored; an unreadable one is an error naming it.
pub(super) fn decode_job(id: JobId, bytes: &[u8]) -> Result<Job, StoreError> {
    codec::decode_job(bytes).map_err(|error| StoreError::Corrupt { what: format!("job {id}"), error })
}

pub(super) fn decode_schedule(id: ScheduleId, bytes: &[u8]) -> Result<Schedule, StoreError> {
    codec::decode(bytes).map_err(|error| StoreError::Corrupt { what: format!("schedule {id}"), error })
}
