//! One named queue's runtime state: its workers' count, wake-ups, start/stop and the claims
//! in flight. The workers themselves are `worker`'s.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::store::ClaimFilter;
use crate::sync;

/// Runtime state of one queue.
pub(crate) struct Queue {
    pub name: String,
    pub concurrency: usize,
    /// Jobs of this queue running now.
    pub busy: AtomicUsize,
    /// Woken when a job is added to this queue.
    pub wake: Notify,
    /// Whether the workers run (start/stop at run time).
    pub processing: AtomicBool,
    /// Tells the workers to stop claiming; running jobs finish on their own.
    pub stop: watch::Sender<bool>,
    /// The task running the workers (a shutdown waits for it).
    pub task: Mutex<Option<JoinHandle<()>>>,
    /// Read-held by every claim in flight; `stop_queue` write-locks it to wait them out.
    pub claiming: RwLock<()>,
    /// Worker processes started again after one ended (a crash, a kill, a reload).
    pub restarts: AtomicU64,
    /// A worker slot waits before starting a process (after crashes in a row).
    pub backing_off: AtomicBool,
}

impl Queue {
    pub fn new(name: &str, concurrency: usize) -> Self {
        Queue {
            name: name.to_owned(),
            concurrency: concurrency.max(1),
            busy: AtomicUsize::new(0),
            wake: Notify::new(),
            processing: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            claiming: RwLock::new(()),
            restarts: AtomicU64::new(0),
            backing_off: AtomicBool::new(false),
        }
    }

    /// Held while a claim is in flight, so that `stop_queue` waits it out; `None` once the
    /// queue is stopping: it claims nothing more.
    pub fn open_for_claims(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let claiming = sync::read(&self.claiming);
        (!*self.stop.borrow()).then_some(claiming)
    }

    pub fn claim_filter(&self) -> ClaimFilter<'_> {
        ClaimFilter { queue: Some(&self.name), factory: None }
    }

    /// Jobs of this queue running now.
    pub fn running(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }
}
