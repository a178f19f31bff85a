//! The jobs capability on sled: adding (combined transactions, unique keys, batches), start,
//! cancel, retry, reading, listing and removal.

use std::collections::BTreeMap;

use super::codec;
use super::keys::{self, META_ID_HIGH_WATER};
use super::store::SledStore;
use super::tx::{abort, decode_job, unique_index_key, Trees};
use crate::clock::Micros;
use crate::history::Row as HistoryRow;
use crate::job::Parent;
use crate::job::{CancelEffect, Job, JobId, NewJob, Status};
use crate::limits::{Limit, LimitState, Scope};
use crate::store::dependents::{self, Moved};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::JobStore;
use crate::store::types::{
    Added, Cancelled, Counts, Created, Group, GroupState, Keyed, ListFilter, Once, QueuePause, Remembered,
    Removal,
};
use crate::sync;

impl SledStore {
    /// Stores new jobs (records and index entries) in one transaction and counts them. Each
    /// is placed as of its own `created_at`: combined adds come from callers with their own
    /// clocks.
    /// With `once`, the idempotency key is stored with them (a batch's).
    /// Jobs with parents are admitted against them in the transaction (`waiting`, or
    /// released or cancelled at once): the jobs as stored are returned.
    /// With `group`, its record is stored with them.
    pub(super) fn insert_new(
        &self,
        trees: &Trees,
        jobs: &[Job],
        once: Option<&Once>,
        group: Option<&Group>,
    ) -> StoreResult<Vec<Job>> {
        let dependents = jobs.iter().any(|j| j.deps.is_some());
        let admitted = trees.transact(|tx| {
            let admitted = if dependents {
                let mut jobs = jobs.to_vec();
                let now = jobs.first().map_or(0, |j| j.created_at);
                tx.admit(&mut jobs, now)?;
                Some(jobs)
            } else {
                None
            };
            for job in admitted.as_deref().unwrap_or(jobs) {
                tx.save(job)?;
                if job.status.is_finished() {
                    tx.settle(job, job.created_at)?;
                } else {
                    tx.place(job, job.created_at)?;
                }
            }
            if let Some(once) = once {
                tx.remember(once, &Created::Batch { ids: jobs.iter().map(|j| j.id.0).collect() })?;
            }
            if let Some(group) = group {
                tx.groups.insert(&keys::id_key(group.id), codec::encode(group))?;
            }
            Ok(admitted)
        })?;
        let stored = admitted.unwrap_or_else(|| jobs.to_vec());
        for job in &stored {
            self.counts.count(job, None, Some(job.status));
        }
        Ok(stored)
    }
}

impl SledStore {
    /// Adds a job in a transaction of its own, holding `unique_lock`: one with a unique key,
    /// or one with an idempotency key `once` (stored with it). A unique key held by a pending
    /// job returns that job (and stores `once` with it).
    pub(super) fn add_alone(&self, new: NewJob, now: Micros, once: Option<&Once>) -> StoreResult<Added> {
        let mut job = Job::new(JobId(0), new, now);
        // Looked up before an id is taken, so returning the holder leaves no gap in the ids.
        if let Some(key) = unique_index_key(&job) {
            if let Some(holder) = self.live()?.trees.unique.get(&key)?.and_then(|v| keys::id_from(&v)) {
                match self.get(holder)? {
                    Some(existing) if existing.is_pending() => {
                        if let Some(once) = once {
                            let created = Created::Job { id: existing.id.0, existing: true };
                            self.live()?.trees.transact(|tx| tx.remember(once, &created))?;
                            self.durable()?;
                        }
                        return Ok(Added { job: existing, existing: true });
                    }
                    _ => {}
                }
            }
        }
        job.id = self.next_id();
        let job = self.live()?.trees.transact(|tx| {
            let mut job = job.clone();
            if job.deps.is_some() {
                tx.admit(std::slice::from_mut(&mut job), now)?;
            }
            if let Some(key) = unique_index_key(&job) {
                tx.unique.insert(key, &keys::id_key(job.id))?;
            }
            if let Some(once) = once {
                tx.remember(once, &Created::Job { id: job.id.0, existing: false })?;
            }
            tx.save(&job)?;
            if job.status.is_finished() {
                tx.settle(&job, now)?;
            } else {
                tx.place(&job, now)?;
            }
            Ok(job)
        })?;
        self.counts.count(&job, None, Some(job.status));
        self.durable()?;
        Ok(Added { job, existing: false })
    }

    /// Adds a batch in one transaction (with `once`, its idempotency key too) and one flush.
    fn add_batch_with(&self, news: Vec<NewJob>, now: Micros, once: Option<&Once>) -> StoreResult<Vec<Job>> {
        if news.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_ids(news.len() as u64).0;
        let ids: Vec<JobId> = (first..first + news.len() as u64).map(JobId).collect();
        let group = dependents::new_group(&news, &ids, now);
        let jobs: Vec<Job> = news
            .into_iter()
            .zip(&ids)
            .map(|(new, &id)| {
                debug_assert!(new.unique_key.is_none(), "batches carry no unique keys");
                Job::new_in_batch(id, new, &ids, now)
            })
            .collect();
        let jobs = self.insert_new(&self.live()?.trees, &jobs, once, group.as_ref())?;
        self.durable()?;
        Ok(jobs)
    }

    /// `job` with its parents filled in, for a caller (see `Job::parents`).
    fn with_parents(&self, mut job: Job) -> StoreResult<Job> {
        if job.deps.is_some() {
            job.parents = self.parents(job.id)?;
        }
        Ok(job)
    }

    /// Every job in id order, from the records themselves.
    fn list_all(&self, trees: &Trees, filter: &ListFilter) -> StoreResult<Vec<Job>> {
        let range = match filter.after {
            None => trees.jobs.range::<&[u8], _>(..),
            Some(a) if filter.newest_first => trees.jobs.range(..keys::id_key(a)),
            Some(a) if a.0 == u64::MAX => return Ok(Vec::new()),
            Some(a) => trees.jobs.range(keys::id_key(a.0 + 1)..),
        };
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if filter.newest_first { Box::new(range.rev()) } else { Box::new(range) };
        entries
            .take(filter.limit)
            .map(|entry| {
                let (key, value) = entry?;
                self.with_parents(decode_job(keys::id_from(&key).unwrap_or_default(), &value)?)
            })
            .collect()
    }
}

impl JobStore for SledStore {
    fn add(&self, new: NewJob, now: Micros) -> StoreResult<Added> {
        if new.unique_key.is_none() && new.depends_on.is_empty() {
            // Shares a transaction with the additions made meanwhile (see `Combiner`); the id
            // is taken in commit order, so ids stay consecutive. The database is taken first:
            // the commit's only errors are then sled's own.
            let live = self.live()?;
            let job = self.adds.submit(
                move || Job::new(self.next_id(), new, now),
                |jobs| {
                    self.insert_new(&live.trees, jobs, None, None).map(drop).map_err(|e| match e {
                        StoreError::Sled(e) => e,
                        // Storing new records aborts on nothing of its own.
                        other => sled::Error::ReportableBug(other.to_string()),
                    })
                },
            )?;
            self.durable()?;
            return Ok(Added { job, existing: false });
        }
        let _one_unique_add = sync::lock(&self.unique_lock);
        self.add_alone(new, now, None)
    }

    fn add_batch(&self, news: Vec<NewJob>, now: Micros) -> StoreResult<Vec<Job>> {
        self.add_batch_with(news, now, None)
    }

    fn add_keyed(&self, new: NewJob, now: Micros, once: &Once) -> StoreResult<Keyed<Added>> {
        let _one_keyed_add = sync::lock(&self.unique_lock);
        if let Some(before) = self.remembered(&once.key, now)? {
            return Ok(Keyed::Before(before));
        }
        self.add_alone(new, now, Some(once)).map(Keyed::New)
    }

    fn add_batch_keyed(&self, news: Vec<NewJob>, now: Micros, once: &Once) -> StoreResult<Keyed<Vec<Job>>> {
        let _one_keyed_add = sync::lock(&self.unique_lock);
        if let Some(before) = self.remembered(&once.key, now)? {
            return Ok(Keyed::Before(before));
        }
        self.add_batch_with(news, now, Some(once)).map(Keyed::New)
    }

    fn remembered(&self, key: &str, now: Micros) -> StoreResult<Option<Remembered>> {
        self.remembered_key(key, now)
    }

    fn forget_keys(&self, now: Micros, limit: usize) -> StoreResult<usize> {
        self.forget_expired_keys(now, limit)
    }

    fn start(&self, id: JobId, now: Micros) -> StoreResult<Job> {
        let (from, job) = self.live()?.trees.transact(|tx| {
            let mut job = tx.load(id)?;
            let from = job.status;
            let waiting = job.clone();
            if let Err(refused) = job.start(now) {
                return abort(refused);
            }
            tx.dequeue(&waiting)?;
            tx.save(&job)?;
            tx.place(&job, now)?;
            Ok((from, job))
        })?;
        self.counts.count(&job, Some(from), Some(job.status));
        self.durable()?;
        Ok(job)
    }

    fn cancel(&self, id: JobId, now: Micros) -> StoreResult<Cancelled> {
        let (from, cancelled) = self.live()?.trees.transact(|tx| {
            let mut job = tx.load(id)?;
            let from = job.status;
            match job.cancel(now) {
                Ok(CancelEffect::Now) => {
                    tx.dequeue(&job)?;
                    tx.settle(&job, now)?;
                    tx.save(&job)?;
                    tx.propagate(&[Moved::of(from, &job)], now)?;
                    Ok((from, Cancelled::Now(job)))
                }
                Ok(CancelEffect::Requested) => {
                    tx.save(&job)?;
                    Ok((from, Cancelled::Requested(job)))
                }
                Err(refused) => abort(refused),
            }
        })?;
        if let Cancelled::Now(job) = &cancelled {
            self.counts.count(job, Some(from), Some(Status::Cancelled));
        }
        self.durable()?;
        Ok(cancelled)
    }

    fn retry(&self, id: JobId, max_attempts: Option<u32>, now: Micros) -> StoreResult<Job> {
        let (from, job) = self.live()?.trees.transact(|tx| {
            let mut job = tx.load(id)?;
            let from = job.status;
            let finished_at = job.finished_at;
            if let Err(refused) = job.retry(max_attempts, now) {
                return abort(refused);
            }
            if let Some(at) = finished_at {
                tx.unfinish(&keys::time_key(at, id))?;
            }
            // Pending again, it holds its unique key again: unless another pending job has it
            // meanwhile, which a retry must not duplicate.
            if let Some(key) = unique_index_key(&job) {
                if let Some(holder) = tx.unique.get(&key)?.and_then(|v| keys::id_from(&v)) {
                    if holder != id && tx.find(holder)?.is_some_and(|h| h.is_pending()) {
                        let key = job.unique_key.clone().unwrap_or_default();
                        return abort(StoreError::KeyHeld { id, key, holder });
                    }
                }
                tx.unique.insert(key, &keys::id_key(id))?;
            }
            tx.save(&job)?;
            tx.enqueue(&job, now)?;
            tx.propagate(&[Moved::of(from, &job)], now)?;
            Ok((from, job))
        })?;
        self.counts.count(&job, Some(from), Some(Status::Queued));
        // Attempts restart at 0: an older journal record must not read as a lost claim.
        self.journal_attempts(&[(id, job.attempts)])?;
        self.durable()?;
        Ok(job)
    }

    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        match self.live()?.trees.jobs.get(keys::id_key(id))? {
            Some(bytes) => Ok(Some(self.with_parents(decode_job(id, &bytes)?)?)),
            None => Ok(None),
        }
    }

    fn parents(&self, id: JobId) -> StoreResult<Vec<Parent>> {
        match self.live()?.trees.dependents.get(keys::parents_key(id))? {
            Some(bytes) => codec::decode(&bytes)
                .map_err(|error| StoreError::Corrupt { what: format!("the parents of job {id}"), error }),
            None => Ok(Vec::new()),
        }
    }

    fn group(&self, id: JobId) -> StoreResult<Option<GroupState>> {
        let Some(bytes) = self.live()?.trees.groups.get(keys::id_key(id))? else { return Ok(None) };
        let group: Group = codec::decode(&bytes)
            .map_err(|error| StoreError::Corrupt { what: format!("group {id}"), error })?;
        let mut statuses = std::collections::HashMap::new();
        for &job in group.members.iter().chain(group.callbacks.iter().map(|(_, j)| j)) {
            if let Some(found) = self.get(job)? {
                statuses.insert(job, found.status);
            }
        }
        Ok(Some(dependents::group_state(group, |job| statuses.get(&job).copied())))
    }

    fn dependents(&self, id: JobId, after: Option<JobId>, limit: usize) -> StoreResult<Vec<JobId>> {
        Ok(match self.live()?.trees.dependents.get(keys::id_key(id))? {
            Some(list) => {
                // Edges are appended as dependents are added, so by id.
                let mut children: Vec<JobId> = keys::edges(&list)
                    .map(|(child, _)| child)
                    .filter(|c| after.is_none_or(|a| *c > a))
                    .collect();
                children.sort_unstable();
                children.truncate(limit);
                children
            }
            None => Vec::new(),
        })
    }

    fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Job>> {
        if filter.statuses.is_empty() && filter.queue.is_none() && filter.factory.is_none() {
            return self.list_all(&self.live()?.trees, filter);
        }
        let (queue, factory) = (filter.queue.as_deref(), filter.factory.as_deref());
        let mut out = Vec::new();
        let mut after = filter.after;
        while out.len() < filter.limit {
            // A few more than the page lacks: some may have moved on since they were listed.
            let want = (filter.limit - out.len()).max(16);
            let ids = self.counts.listed(&filter.statuses, queue, factory, after, filter.newest_first, want);
            for &id in &ids {
                // The listing is read outside the records' transactions: a job that changed
                // status (or went) since is skipped, as a later read would not list it.
                let Some(job) = self.get(id)? else { continue };
                let keep = (filter.statuses.is_empty() || filter.statuses.contains(&job.status))
                    && factory.is_none_or(|f| f == job.factory)
                    && queue.is_none_or(|q| q == job.queue);
                if keep && out.len() < filter.limit {
                    out.push(job);
                }
            }
            if ids.len() < want {
                break;
            }
            after = ids.last().copied();
        }
        Ok(out)
    }

    fn remove(&self, which: &Removal) -> StoreResult<BTreeMap<Status, u64>> {
        let finished_before = which.finished_before;
        // The `finished` index in time order: only finished jobs, and with retention only those
        // old enough, are read.
        let upper = keys::time_key(finished_before.unwrap_or(Micros::MAX), 0u64);
        let mut removed = BTreeMap::new();
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match which.id {
            // One job: its own entry, found from its record.
            Some(id) => match self.get(id)?.and_then(|job| job.finished_at) {
                Some(at) if keys::time_key(at, id) < upper => {
                    let key = keys::time_key(at, id);
                    Box::new(
                        self.live()?
                            .trees
                            .finished
                            .get(key)?
                            .map(|v| Ok((sled::IVec::from(&key[..]), v)))
                            .into_iter(),
                    )
                }
                _ => Box::new(std::iter::empty()),
            },
            None => Box::new(self.live()?.trees.finished.range(..upper)),
        };
        for entry in entries {
            let (index_key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&index_key) else { continue };
            // In a transaction that re-checks the job: a retry may have requeued it since the
            // scan, and deleting it then would leave its other index entries dangling.
            let deleted = self.live()?.trees.transact(|tx| {
                let Some(job) = tx.find(id)? else {
                    tx.unfinish(&index_key)?; // a stale entry
                    return Ok(None);
                };
                if !job.status.is_finished() || !which.covers(&job) {
                    return Ok(None);
                }
                // A job others still wait for stays: they read its outcome when they run.
                for (child, _) in tx.children_of(id)? {
                    if tx.find(child)?.is_some_and(|c| c.is_pending()) {
                        return Ok(None);
                    }
                }
                tx.jobs.remove(&keys::id_key(id))?;
                // Finished and gone, it changes no more: its dependents need no edge to it, and
                // its own list of parents goes with it.
                tx.dependents.remove(&keys::id_key(id))?;
                tx.dependents.remove(&keys::parents_key(id))?;
                // A group lasts as long as its first job.
                tx.groups.remove(&keys::id_key(id))?;
                tx.unfinish(&index_key)?;
                let high =
                    tx.meta.get(META_ID_HIGH_WATER)?.and_then(|v| keys::id_from(&v)).unwrap_or_default();
                if id > high {
                    tx.meta.insert(META_ID_HIGH_WATER, &keys::id_key(id))?;
                }
                Ok(Some(job))
            })?;
            if let Some(job) = deleted {
                *removed.entry(job.status).or_insert(0) += 1;
                self.counts.count(&job, Some(job.status), None);
            }
        }
        if !removed.is_empty() {
            self.durable()?;
        }
        Ok(removed)
    }

    fn backup(&self, out: &mut dyn std::io::Write) -> StoreResult<crate::store::types::BackupSummary> {
        self.backup_to(out)
    }

    fn counts(&self) -> StoreResult<Counts> {
        Ok(self.counts.snapshot())
    }

    fn limits(&self) -> StoreResult<Vec<LimitState>> {
        self.limit_states()
    }

    fn set_limit(&self, limit: Limit) -> StoreResult<LimitState> {
        // Under the claim lock: no claim reads the limits between this read and the write.
        let _no_claim = sync::lock(&self.claim_lock);
        let key = limit.scope.key();
        let state = self.live()?.trees.transact(|tx| {
            let next_start = match tx.limits.get(key.as_bytes())? {
                Some(old) => codec::decode::<LimitState>(&old).map(|s| s.next_start).unwrap_or(0),
                None => 0,
            };
            let state = LimitState { limit: limit.clone(), next_start };
            tx.limits.insert(key.as_bytes(), codec::encode(&state))?;
            Ok(state)
        })?;
        self.durable()?;
        Ok(state)
    }

    fn pauses(&self) -> StoreResult<Vec<QueuePause>> {
        self.paused_queues()
    }

    fn count_of_factory(
        &self,
        factory: &str,
        queue: Option<&str>,
        statuses: &[Status],
        cap: u64,
    ) -> StoreResult<u64> {
        self.live()?;
        Ok(self.counts.count_of_factory(factory, queue, statuses, cap))
    }

    fn add_history(&self, rows: &[HistoryRow], now: Micros) -> StoreResult<()> {
        self.add_history_rows(rows, now)
    }

    fn history(&self, from_minute: i64) -> StoreResult<Vec<HistoryRow>> {
        self.history_rows(from_minute)
    }

    fn pause(&self, pause: &QueuePause) -> StoreResult<QueuePause> {
        self.pause_queue(pause)
    }

    fn resume(&self, queue: &str) -> StoreResult<bool> {
        self.resume_queue(queue)
    }

    fn remove_limit(&self, scope: &Scope) -> StoreResult<bool> {
        let _no_claim = sync::lock(&self.claim_lock);
        let key = scope.key();
        let removed = self.live()?.trees.transact(|tx| Ok(tx.limits.remove(key.as_bytes())?.is_some()))?;
        self.durable()?;
        Ok(removed)
    }
}
