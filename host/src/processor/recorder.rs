//! Outcomes on their way to the store: workers hand them here and go on to their next job; the
//! recording thread (`outcomes`) takes every outcome that arrived meanwhile and writes them in
//! one transaction. Under load the batches grow by themselves (everything that ended during the
//! last write goes into the next), so the store pays one transaction per batch, not per job;
//! idle, a batch is one outcome, written at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::attempt::Ran;
use crate::job::Job;
use crate::store::Claimed;
use crate::sync;

/// The most outcomes one transaction writes.
const MAX_BATCH: usize = 4096;
/// Outcomes waiting or being written at which workers claim no more jobs until the recorder
/// catches up (`Recorder::wait_to_claim`): one full batch. Without it, a store that takes outcomes more slowly than claims (PostgreSQL at
/// concurrency 8 under a deep backlog) let the workers run ahead by 17,000–19,000 jobs ended
/// and not recorded: claims for jobs beyond the drain's took the database's time from the
/// outcomes, and a host killed then ran all of them again.
pub(super) const MAX_UNRECORDED: usize = MAX_BATCH;
/// Under load (the last write held more than one outcome), the thread lets outcomes gather
/// for up to this long, or until `GATHER` wait: every sled transaction writes out its log
/// buffer, so fewer, larger ones leave the CPU to the jobs. Idle, an outcome is written at once.
const LINGER: Duration = Duration::from_micros(500);
const GATHER: usize = 64;

/// One ended attempt on its way to the store; `done` hears the job as stored afterwards
/// (`None`: the outcome was stale, or the job was given back).
pub(super) struct Record {
    pub claimed: Claimed,
    pub ran: Ran,
    pub done: Option<std::sync::mpsc::Sender<Option<Job>>>,
}

#[derive(Default)]
pub(super) struct Recorder {
    pending: Mutex<Pending>,
    /// The thread waits here for records; `flush` waits here for them to be written.
    changed: Condvar,
    started: AtomicBool,
}

#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    /// Records taken by the thread and not written yet.
    writing: usize,
}

impl Recorder {
    /// Queues `record` for the next write.
    pub fn submit(&self, record: Record) {
        sync::lock(&self.pending).records.push(record);
        self.changed.notify_all();
    }

    /// Returns once every record submitted so far is written (a shutdown, before its last
    /// flush), or after `within`.
    pub fn flush(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        let mut pending = sync::lock(&self.pending);
        while !pending.records.is_empty() || pending.writing > 0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                log::warn!(
                    "{} outcome(s) not recorded before the stop",
                    pending.records.len() + pending.writing
                );
                return;
            }
            pending = sync::wait_timeout(&self.changed, pending, deadline - now);
        }
    }

    /// Whether more outcomes wait to be written (with those being written) than workers may
    /// claim beside: `MAX_UNRECORDED`.
    pub fn behind(&self) -> bool {
        let pending = sync::lock(&self.pending);
        pending.records.len() + pending.writing >= MAX_UNRECORDED
    }

    /// Waits until fewer outcomes than `MAX_UNRECORDED` wait to be written (true), a stop, or
    /// `within` (false: the caller goes round its loop, which notices reloads and stops, and
    /// comes back).
    pub fn wait_to_claim(&self, stopping: &AtomicBool, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut pending = sync::lock(&self.pending);
        while pending.records.len() + pending.writing >= MAX_UNRECORDED {
            let now = std::time::Instant::now();
            if now >= deadline || stopping.load(Ordering::SeqCst) {
                return false;
            }
            // Short waits: a stop sets the flag without waking this condition variable.
            pending =
                sync::wait_timeout(&self.changed, pending, (deadline - now).min(Duration::from_millis(50)));
        }
        true
    }

    /// Marks the recording thread started; false if it was already.
    pub fn start_once(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    pub fn start_failed(&self) {
        self.started.store(false, Ordering::SeqCst);
    }

    /// The next batch to write: everything waiting (at most `MAX_BATCH`), after letting more
    /// gather while `busy` (the last batch held more than one); `None` after `idle_for` with
    /// nothing to write.
    pub fn take(&self, busy: bool, stopping: &AtomicBool, idle_for: Duration) -> Option<Vec<Record>> {
        let mut pending = sync::lock(&self.pending);
        if pending.records.is_empty() {
            pending = sync::wait_timeout(&self.changed, pending, idle_for);
            if pending.records.is_empty() {
                return None;
            }
        }
        if busy {
            let until = std::time::Instant::now() + LINGER;
            while pending.records.len() < GATHER && !stopping.load(Ordering::Relaxed) {
                let now = std::time::Instant::now();
                if now >= until {
                    break;
                }
                pending = sync::wait_timeout(&self.changed, pending, until - now);
            }
        }
        let take = pending.records.len().min(MAX_BATCH);
        pending.writing = take;
        Some(pending.records.drain(..take).collect())
    }

    /// The batch `take` gave is written.
    pub fn written(&self) {
        sync::lock(&self.pending).writing = 0;
        self.changed.notify_all();
    }
}
