//! One named queue's runtime state: its places (concurrency), whether it processes, the claims
//! in flight, and whether it sits in the pool's list of queues with work. The workers that run
//! its jobs are the pool's, shared by every queue (`worker`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Instant;

use super::pace::ClaimPace;
use crate::store::ClaimFilter;
use crate::sync;

/// Runtime state of one queue.
pub(crate) struct Queue {
    pub name: String,
    pub concurrency: usize,
    /// Jobs of this queue running now: a worker takes a place before it claims.
    busy: AtomicUsize,
    /// Whether its jobs are claimed (start/stop at run time).
    pub processing: AtomicBool,
    /// Read-held by every claim in flight; `stop_queue` write-locks it to wait them out.
    pub claiming: RwLock<()>,
    /// In the pool's list of queues that may have work (each queue is in it once at most).
    pub listed: AtomicBool,
    /// Worker processes that died running this queue's jobs (each was replaced).
    pub worker_deaths: AtomicU64,
    /// How many jobs its next claim takes: 1 on a shallow queue, so that an idle job starts
    /// at once and no job waits behind others claimed before it; doubled while claims come
    /// back full (a backlog), up to the configured cap.
    claim_size: AtomicUsize,
    /// Its last claim came back full: more jobs may be ready than workers look at it.
    backlog: AtomicBool,
    /// Jobs that claims in flight will keep claimed for its next places, beyond each
    /// claimer's own: with those kept already, within the claim window (`worker.rs`; changed
    /// under the pool's lock of the jobs kept, `PoolState::reserve_extra`).
    reserved: AtomicUsize,
    /// Its last claim, with a place free, came back empty: a flow-control limit may hold its
    /// jobs until an outcome the recorder has not written yet frees a place, and nothing
    /// else would list it again before the poll interval (`PoolState::wake_starved`).
    starved: AtomicBool,
    /// How fast its claims take jobs: a fast queue's claims may take more than `claim_batch`.
    pace: ClaimPace,
}

impl Queue {
    pub fn new(name: &str, concurrency: usize) -> Self {
        Queue {
            name: name.to_owned(),
            concurrency: concurrency.max(1),
            busy: AtomicUsize::new(0),
            processing: AtomicBool::new(false),
            claiming: RwLock::new(()),
            listed: AtomicBool::new(false),
            worker_deaths: AtomicU64::new(0),
            claim_size: AtomicUsize::new(1),
            backlog: AtomicBool::new(false),
            starved: AtomicBool::new(false),
            reserved: AtomicUsize::new(0),
            pace: ClaimPace::new(Instant::now()),
        }
    }

    /// The most jobs one claim takes now: `claim_batch`, or more at a fast pace (`pace`).
    pub fn claim_cap(&self, claim_batch: usize) -> usize {
        self.pace.cap(claim_batch, Instant::now())
    }

    /// How many jobs the next claim asks for.
    pub fn claim_size(&self) -> usize {
        self.claim_size.load(Ordering::Relaxed).max(1)
    }

    /// A claim meant to take `wanted` (its claim size), asked for `asked` (fewer when other
    /// claims had reserved the rest) and got `got`: full means a backlog (ask for twice as
    /// many as meant next time, up to the claim cap with this claim counted in the pace: a
    /// claim cut short by the others' reservations must not shrink the size, or batches fall
    /// to a job or two while workers claim at once); short means the queue is shallow (ask
    /// for what there was).
    pub fn claimed(&self, wanted: usize, asked: usize, got: usize, claim_batch: usize) {
        self.pace.claimed(got, Instant::now());
        let cap = self.claim_cap(claim_batch);
        let next = if got >= asked { wanted.max(asked).saturating_mul(2) } else { got };
        self.claim_size.store(next.clamp(1, cap), Ordering::Relaxed);
        self.backlog.store(got >= asked && got > 0, Ordering::Relaxed);
    }

    /// Reserves up to `wanted` jobs, within `room` less those reserved already; how many.
    /// Called under the pool's lock of the jobs kept claimed.
    pub fn reserve(&self, wanted: usize, room: usize) -> usize {
        let granted = wanted.min(room.saturating_sub(self.reserved.load(Ordering::Acquire)));
        self.reserved.fetch_add(granted, Ordering::AcqRel);
        granted
    }

    /// Jobs reserved by claims in flight.
    pub fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Acquire)
    }

    pub fn unreserve(&self, n: usize) {
        self.reserved.fetch_sub(n, Ordering::AcqRel);
    }

    /// Its claim with a place free came back empty.
    pub fn starve(&self) {
        self.starved.store(true, Ordering::Release);
    }

    /// Whether its last claim came back empty, clearing the mark: the caller lists it again.
    pub fn take_starved(&self) -> bool {
        self.starved.swap(false, Ordering::AcqRel)
    }

    /// Whether its last claim came back full (more jobs may be ready).
    pub fn backlog(&self) -> bool {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Held while a claim is in flight, so that `stop_queue` waits it out; `None` once the
    /// queue is stopped: it claims nothing more.
    pub fn open_for_claims(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let claiming = sync::read(&self.claiming);
        self.processing.load(Ordering::SeqCst).then_some(claiming)
    }

    pub fn claim_filter(&self) -> ClaimFilter<'_> {
        ClaimFilter { queue: Some(&self.name), factory: None }
    }

    /// Takes a place for one more running job; false when all `concurrency` are taken.
    pub fn take_place(&self) -> bool {
        self.busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.concurrency).then_some(n + 1))
            .is_ok()
    }

    pub fn give_place(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    /// Jobs of this queue running now.
    pub fn running(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }
}
