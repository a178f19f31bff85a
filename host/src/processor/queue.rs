//! One named queue's runtime state: its places (concurrency), whether it processes, the claims
//! in flight, and whether it sits in the pool's list of queues with work. The workers that run
//! its jobs are the pool's, shared by every queue (`worker`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

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
        }
    }

    /// How many jobs the next claim asks for.
    pub fn claim_size(&self) -> usize {
        self.claim_size.load(Ordering::Relaxed).max(1)
    }

    /// A claim asked for `asked` and got `got`: full means a backlog (ask for twice as many
    /// next time, up to `cap`); short means the queue is shallow (ask for what there was).
    pub fn claimed(&self, asked: usize, got: usize, cap: usize) {
        let next = if got >= asked { asked.saturating_mul(2) } else { got };
        self.claim_size.store(next.clamp(1, cap.max(1)), Ordering::Relaxed);
        self.backlog.store(got >= asked && got > 0, Ordering::Relaxed);
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
