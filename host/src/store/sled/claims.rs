//! The work capability on sled: promoting due jobs, claims (alone or with the previous
//! outcome), heartbeats, progress, outcomes and releases.
//!
//! Claims take the claim lock: one claimer at a time reads the first ready key and takes it in
//! a transaction, so claimers never race for the same key and retry. A claim is kept (see
//! `ClaimDurability`) after the lock is released, so concurrent claims share flushes.

use super::options::ClaimDurability;
use super::store::SledStore;
use super::tx::{ready_key, ready_value, Tx, TxResult};
use super::{codec, keys};
use crate::clock::SystemClock;
use crate::clock::{duration_micros, Micros};
use crate::job::{
    AttemptToken, Job, JobId, Lease, Progress, Status, WORKER_LOST_HOST_STOPPED, WORKER_LOST_LEASE_EXPIRED,
};
use crate::limits::{self, Gate, LimitState, Running};
use crate::store::dependents::Moved;
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::{JobStore, Report, WorkStore};
use crate::store::types::{ClaimFilter, Claimed, Finished, LeaseTerms};
use crate::sync;

/// Ready jobs a claim under limits takes as candidates at most (each is read in its
/// transaction), past those no limit admits.
const LIMITED_CANDIDATES: usize = 512;

/// Ready index entries a claim under limits reads at most: the jobs of keys at their limit
/// (and of closed factories) are passed over in the index alone, about a microsecond each, so
/// a backlog of 100,000 of one key ahead of others costs a claim tens of milliseconds, and a
/// deeper one hides what is behind it until it shrinks.
const LIMITED_SCAN: usize = 100_000;

/// The ready job a claim picked (under the claim lock), and the lease it will hold.
struct NextClaim {
    key: sled::IVec,
    id: JobId,
    now: Micros,
    lease: Lease,
}

impl NextClaim {
    fn new(key: sled::IVec, id: JobId, now: Micros, terms: LeaseTerms) -> Self {
        let lease = Lease {
            token: AttemptToken::random(),
            expires_at: now.saturating_add(duration_micros(terms.duration)),
        };
        NextClaim { key, id, now, lease }
    }

    /// Takes the job out of `ready` and starts its attempt (see `Job::claim`). `None` if it
    /// left `ready` meanwhile (a cancel).
    fn take(&self, tx: &Tx<'_>) -> TxResult<Option<Job>> {
        if tx.ready.remove(&self.key)?.is_none() {
            return Ok(None);
        }
        let mut job = tx.load(self.id)?;
        job.claim(self.lease, self.now);
        tx.save(&job)?;
        tx.leases
            .insert(&keys::time_key(self.lease.expires_at, self.id), &self.lease.token.0.to_be_bytes())?;
        Ok(Some(job))
    }
}

impl SledStore {
    /// Every limit, with its rate's state.
    pub(super) fn limit_states(&self) -> StoreResult<Vec<LimitState>> {
        let trees = &self.live()?.trees;
        if trees.limits.is_empty() {
            return Ok(Vec::new());
        }
        trees
            .limits
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                codec::decode(&value).map_err(|error| StoreError::Corrupt {
                    what: format!("limit {}", String::from_utf8_lossy(&key)),
                    error,
                })
            })
            .collect()
    }

    /// A claim under limits: the jobs running now counted (one process holds this store, and
    /// claims hold the claim lock), ready jobs read past the factories no limit lets start,
    /// each candidate admitted or passed over, the limits' paces written with the claims.
    fn claim_limited(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        terms: LeaseTerms,
        max: usize,
        limits: Vec<LimitState>,
    ) -> StoreResult<Vec<Claimed>> {
        let trees = &self.live()?.trees;
        let mut running = Vec::new();
        for entry in trees.leases.iter() {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            if let Some(job) = self.get(id)? {
                running.push(Running::of(&job));
            }
        }
        let gate = Gate::new(limits.clone(), &running);
        if filter.queue.is_some_and(|q| gate.queue_closed(q, now)) {
            return Ok(Vec::new());
        }
        let closed = gate.closed_factories(now);
        let wanted = match filter.queue.and_then(|q| gate.room(q, now)) {
            Some(0) => return Ok(Vec::new()),
            Some(room) => room.min(max),
            None => LIMITED_CANDIDATES.max(max),
        };
        let paused = paused_names(trees)?;
        if filter.queue.is_some_and(|q| paused.iter().any(|p| p == q)) {
            return Ok(Vec::new());
        }
        let candidates: Vec<(sled::IVec, JobId)> = {
            let iter = match filter.queue {
                Some(queue) => trees.ready.scan_prefix(keys::queue_prefix(queue)),
                None => trees.ready.iter(),
            };
            // Keys at their limit are passed over in the index (a key's places are counted as
            // candidates take them), so one key's backlog never hides the jobs behind it.
            let mut places = gate.clone();
            let mut found = Vec::new();
            for (scanned, entry) in iter.enumerate() {
                if scanned >= LIMITED_SCAN {
                    break;
                }
                let (key, value) = entry?;
                let (factory, limit_key) = keys::parse_ready_value(&value);
                let factory = String::from_utf8_lossy(factory);
                if filter.factory.is_some_and(|f| f != factory) || closed.iter().any(|c| *c == factory) {
                    continue;
                }
                if let Some((queue, id)) = keys::parse_ready_key(&key) {
                    if paused.iter().any(|p| p == queue) {
                        continue;
                    }
                    if let Some(limit_key) = limit_key {
                        if !places.take_key_place(queue, &factory, &String::from_utf8_lossy(limit_key)) {
                            continue;
                        }
                    }
                    found.push((key, id));
                    if found.len() >= wanted {
                        break;
                    }
                }
            }
            found
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let picks: Vec<NextClaim> =
            candidates.into_iter().map(|(key, id)| NextClaim::new(key, id, now, terms)).collect();
        let taken = trees.transact(|tx| {
            let mut gate = Gate::new(limits.clone(), &running);
            let mut taken = Vec::new();
            for pick in &picks {
                if taken.len() >= max {
                    break;
                }
                let Some(job) = tx.find(pick.id)? else { continue };
                if job.status != Status::Queued || !gate.admit(&job, now) {
                    continue;
                }
                if let Some(job) = pick.take(tx)? {
                    taken.push((job, pick.lease.token));
                }
            }
            for (before, after) in limits.iter().zip(&gate.limits) {
                if before != after {
                    tx.limits.insert(after.limit.scope.key().as_bytes(), codec::encode(after))?;
                }
            }
            Ok(taken)
        })?;
        Ok(taken.into_iter().map(|(job, token)| self.count_claimed(job, token)).collect())
    }

    /// Moves every waiting job due by `now` to `ready`; how many.
    fn promote_waiting(&self, now: Micros) -> StoreResult<usize> {
        let mut promoted_count = 0;
        for entry in self.live()?.trees.waiting.range(..=keys::time_upper_bound(now)) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            let promoted = self.live()?.trees.transact(|tx| {
                if tx.waiting.remove(&key)?.is_none() {
                    return Ok(None);
                }
                let mut job = tx.load(id)?;
                let from = job.status;
                if !job.promote() {
                    return Ok(None);
                }
                tx.save(&job)?;
                tx.ready.insert(ready_key(&job), ready_value(&job))?;
                Ok(Some((job, from)))
            })?;
            if let Some((job, from)) = promoted {
                self.counts.count(&job, Some(from), Some(Status::Queued));
                promoted_count += 1;
            }
        }
        Ok(promoted_count)
    }

    /// The first ready key matching `filter`, and how many index entries were inspected to
    /// find it: one without a factory filter at any queue depth (the claim's cost is one
    /// ordered-tree seek), more only when skipping other factories' jobs (`run-once --factory`).
    #[cfg(test)]
    pub(super) fn next_ready(
        &self,
        filter: &ClaimFilter<'_>,
    ) -> StoreResult<(Option<(sled::IVec, JobId)>, usize)> {
        let (mut found, inspected) = self.scan_ready(filter, 1)?;
        Ok((found.pop(), inspected))
    }

    /// The first `max` ready keys matching `filter`, in claim order.
    fn next_ready_n(&self, filter: &ClaimFilter<'_>, max: usize) -> StoreResult<Vec<(sled::IVec, JobId)>> {
        Ok(self.scan_ready(filter, max)?.0)
    }

    fn scan_ready(
        &self,
        filter: &ClaimFilter<'_>,
        max: usize,
    ) -> StoreResult<(Vec<(sled::IVec, JobId)>, usize)> {
        let live = self.live()?;
        let paused = paused_names(&live.trees)?;
        if filter.queue.is_some_and(|q| paused.iter().any(|p| p == q)) {
            return Ok((Vec::new(), 0));
        }
        let iter = match filter.queue {
            Some(queue) => live.trees.ready.scan_prefix(keys::queue_prefix(queue)),
            None => live.trees.ready.iter(),
        };
        let mut inspected = 0;
        let mut found = Vec::new();
        for entry in iter {
            let (key, value) = entry?;
            inspected += 1;
            let (factory, _) = keys::parse_ready_value(&value);
            if filter.factory.is_some_and(|f| f.as_bytes() != factory) {
                continue;
            }
            if let Some((queue, id)) = keys::parse_ready_key(&key) {
                if paused.iter().any(|p| p == queue) {
                    continue;
                }
                found.push((key, id));
                if found.len() >= max {
                    break;
                }
            }
        }
        Ok((found, inspected))
    }

    /// Keeps committed claims by the configured `store.claims` policy: one journal write, or
    /// one flush, for all of them.
    fn keep_claims(&self, claimed: &[Claimed]) -> StoreResult<()> {
        if claimed.is_empty() {
            return Ok(());
        }
        match self.claims {
            ClaimDurability::Flush => self.durable(),
            ClaimDurability::Journal => {
                let records: Vec<(JobId, u32)> = claimed.iter().map(|c| (c.job.id, c.job.attempts)).collect();
                self.journal_attempts(&records)?;
                self.pace()
            }
        }
    }

    /// Counts a committed outcome (`None`: stale, nothing changed).
    fn count_finished(&self, done: Option<Job>) -> Finished {
        match done {
            Some(job) => {
                self.counts.count(&job, Some(Status::Processing), Some(job.status));
                Finished::Applied(job)
            }
            None => Finished::Stale,
        }
    }

    /// Counts a committed claim.
    fn count_claimed(&self, job: Job, token: AttemptToken) -> Claimed {
        self.counts.count(&job, Some(Status::Queued), Some(Status::Processing));
        Claimed { job, token }
    }
}

impl WorkStore for SledStore {
    fn promote_due(&self, now: Micros) -> StoreResult<usize> {
        self.promote_waiting(now)
    }

    fn next_due(&self) -> StoreResult<Option<Micros>> {
        let waiting = match self.live()?.trees.waiting.first()? {
            Some((key, _)) => keys::parse_time_key(&key).map(|(at, _)| at),
            None => None,
        };
        let limits = self.limit_states()?;
        if limits.is_empty() {
            return Ok(waiting);
        }
        let paced = limits::next_start_after(&limits, SystemClock.now_micros());
        Ok(waiting.into_iter().chain(paced).min())
    }

    fn claim_batch(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        lease: LeaseTerms,
        max: usize,
    ) -> StoreResult<Vec<Claimed>> {
        let claimed = {
            let _one_claimer = sync::lock(&self.claim_lock);
            self.promote_waiting(now)?;
            let limits = self.limit_states()?;
            if !limits.is_empty() {
                let claimed = self.claim_limited(filter, now, lease, max.max(1), limits)?;
                drop(_one_claimer);
                self.keep_claims(&claimed)?;
                return Ok(claimed);
            }
            let picks: Vec<NextClaim> = self
                .next_ready_n(filter, max.max(1))?
                .into_iter()
                .map(|(key, id)| NextClaim::new(key, id, now, lease))
                .collect();
            if picks.is_empty() {
                return Ok(Vec::new());
            }
            // A pick cancelled since the scan is skipped; the others are claimed together.
            let taken = self.live()?.trees.transact(|tx| {
                let mut taken = Vec::with_capacity(picks.len());
                for pick in &picks {
                    if let Some(job) = pick.take(tx)? {
                        taken.push((job, pick.lease.token));
                    }
                }
                Ok(taken)
            })?;
            taken.into_iter().map(|(job, token)| self.count_claimed(job, token)).collect::<Vec<_>>()
        };
        self.keep_claims(&claimed)?;
        Ok(claimed)
    }

    fn heartbeat(&self, id: JobId, token: AttemptToken, now: Micros, lease: LeaseTerms) -> StoreResult<bool> {
        let expires_at = now.saturating_add(duration_micros(lease.duration));
        self.live()?.trees.transact(|tx| {
            let mut job = tx.load(id)?;
            let Some(old) = job.lease_held_by(token) else { return Ok(false) };
            tx.leases.remove(&keys::time_key(old.expires_at, id))?;
            tx.leases.insert(&keys::time_key(expires_at, id), &token.0.to_be_bytes())?;
            job.lease = Some(Lease { token, expires_at });
            tx.save(&job)?;
            Ok(true)
        })
    }

    fn set_progress(&self, id: JobId, token: AttemptToken, progress: Progress) -> StoreResult<()> {
        self.live()?.trees.transact(|tx| {
            let mut job = tx.load(id)?;
            if job.lease_held_by(token).is_some() {
                job.progress = Some(progress.clone());
                tx.save(&job)?;
            }
            Ok(())
        })
    }

    fn finish_batch(&self, reports: &[Report], now: Micros) -> StoreResult<Vec<Finished>> {
        let all = self
            .live()?
            .trees
            .transact(|tx| reports.iter().map(|r| tx.apply_outcome(r, now)).collect::<TxResult<Vec<_>>>());
        let done = match all {
            Ok(done) => done,
            // One record aborts the whole transaction (say it became unreadable): apply the
            // others one by one, so they are not held up by it.
            Err(e) if reports.len() > 1 && !e.is_unavailable() => {
                let mut done = Vec::with_capacity(reports.len());
                for r in reports {
                    match self.live()?.trees.transact(|tx| tx.apply_outcome(r, now)) {
                        Ok(one) => done.push(one),
                        Err(e) => {
                            log::error!("job {}: its outcome cannot be recorded: {e}", r.id);
                            done.push(None);
                        }
                    }
                }
                done
            }
            Err(e) => return Err(e),
        };
        Ok(done.into_iter().map(|d| self.count_finished(d)).collect())
    }

    fn release_batch(&self, jobs: &[(JobId, AttemptToken)], now: Micros) -> StoreResult<usize> {
        let released = self.live()?.trees.transact(|tx| {
            let mut released = Vec::new();
            for &(id, token) in jobs {
                let Some(mut job) = tx.take_lease(id, token)? else { continue };
                job.release(now);
                tx.settle(&job, now)?;
                tx.save(&job)?;
                tx.propagate(&[Moved::of(Status::Processing, &job)], now)?;
                released.push(job);
            }
            Ok(released)
        })?;
        if released.is_empty() {
            return Ok(0);
        }
        for job in &released {
            self.counts.count(job, Some(Status::Processing), Some(job.status));
        }
        // The attempts were given back: the claims' journal records no longer stand.
        let records: Vec<(JobId, u32)> = released.iter().map(|j| (j.id, j.attempts)).collect();
        self.journal_attempts(&records)?;
        self.durable()?;
        Ok(released.len())
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

    fn flush(&self) -> StoreResult<()> {
        self.checkpoint()?;
        // The host may never drop the store (the process ends first): the state file is
        // brought up to date here, at the stop, not only by the flusher once a second.
        self.live()?.flushes.checkpoint_state();
        Ok(())
    }

    fn unwritable(&self) -> Option<String> {
        self.health.reason()
    }

    fn heal(&self) -> StoreResult<bool> {
        self.reopen_when_writable()
    }

    /// Nothing else writes this store, but a job's change can release its dependents: their
    /// queues are told here (see `tx::AfterMove`).
    fn on_notice(&self, tell: std::sync::Arc<dyn Fn(crate::store::types::Notice) + Send + Sync>) {
        let _ = self.notices.set(tell);
    }
}

/// The queues paused in the store (their `meta` keys; none is one seek): a claim passes their
/// jobs over, as the hosts' pool does, so that the store alone keeps a pause.
fn paused_names(trees: &super::tx::Trees) -> StoreResult<Vec<String>> {
    let mut names = Vec::new();
    for entry in trees.meta.scan_prefix(keys::META_PAUSE_PREFIX) {
        let (key, _) = entry?;
        names.push(String::from_utf8_lossy(&key[keys::META_PAUSE_PREFIX.len()..]).into_owned());
    }
    Ok(names)
}
