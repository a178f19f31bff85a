//! Jobs whose host or worker went away: expired leases, and at open every job a dead host
//! left running, including claims it made that only the claims journal knew of.

use super::keys;
use super::store::SledStore;
use crate::clock::Micros;
use crate::job::{Job, JobId, Status, WORKER_LOST_HOST_STOPPED};
use crate::store::dependents::Moved;
use crate::store::error::StoreResult;
use crate::store::traits::JobStore;
use crate::sync;

impl SledStore {
    /// Counts the attempts the previous process journaled but never flushed: their jobs are
    /// back in `queued` with one attempt fewer (the claim was lost with the process) and
    /// were running when it died. They get the error of a job whose host stopped, and end
    /// in `error` if that was their last attempt.
    pub(super) fn recover_journaled(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        let journaled = std::mem::take(&mut *sync::lock(&self.journaled));
        let mut recovered = Vec::new();
        for (id, attempts) in journaled {
            // Most records describe attempts the store already has: read before writing, so
            // a journal of thousands of records costs reads, not transactions, at start-up.
            let lost =
                |job: &Job| job.status == Status::Queued && job.attempts.checked_add(1) == Some(attempts);
            if !self.get(id)?.is_some_and(|job| lost(&job)) {
                continue;
            }
            let counted = self.live()?.trees.transact(|tx| {
                let Some(mut job) = tx.find(id)? else { return Ok(None) };
                if !lost(&job) {
                    return Ok(None); // moved on since the read
                }
                job.count_lost_claim(attempts, WORKER_LOST_HOST_STOPPED, now);
                if job.status.is_finished() {
                    tx.dequeue(&job)?;
                    tx.settle(&job, now)?;
                }
                tx.save(&job)?;
                tx.propagate(&[Moved::of(Status::Queued, &job)], now)?;
                Ok(Some(job))
            })?;
            if let Some(job) = counted {
                self.counts.count(&job, Some(Status::Queued), Some(job.status));
                recovered.push(id);
            }
        }
        Ok(recovered)
    }

    /// Requeues or fails every job whose lease expires at or before `upto`.
    pub(super) fn requeue_leases(&self, upto: Micros, now: Micros, reason: &str) -> StoreResult<Vec<JobId>> {
        let mut recovered = Vec::new();
        for entry in self.live()?.trees.leases.range(..=keys::time_upper_bound(upto)) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            let lost = self.live()?.trees.transact(|tx| {
                if tx.leases.remove(&key)?.is_none() {
                    return Ok(None);
                }
                let mut job = tx.load(id)?;
                if job.status != Status::Processing {
                    return Ok(None);
                }
                job.lose_worker(reason, now);
                tx.settle(&job, now)?;
                tx.save(&job)?;
                tx.propagate(&[Moved::of(Status::Processing, &job)], now)?;
                Ok(Some(job))
            })?;
            if let Some(job) = lost {
                self.counts.count(&job, Some(Status::Processing), Some(job.status));
                recovered.push(id);
            }
        }
        if !recovered.is_empty() {
            self.durable()?;
        }
        Ok(recovered)
    }
}
