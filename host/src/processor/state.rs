//! The worker pool's own state: its queues, the list of queues that may have work, the
//! workers, the attempts running here, the supervisor.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::attempt::Attempt;
use super::execute::Executor;
use super::queue::Queue;
use super::recorder::Recorder;
use super::running::RunningJobs;
use super::shared::Shared;
use crate::job::JobId;
use crate::sync;

pub(super) struct PoolState {
    pub shared: Arc<Shared>,
    pub queues: Mutex<BTreeMap<String, Arc<Queue>>>,
    /// Queues that may have jobs ready, oldest first: workers take them round-robin, so a
    /// busy queue never starves the others.
    pub ready: Mutex<Ready>,
    /// Idle workers wait here for a queue in `ready`.
    pub work: Condvar,
    pub running: RunningJobs,
    /// Each worker's state, for operators (`/v1/workers`).
    pub workers: Mutex<Vec<WorkerStatus>>,
    /// The host is stopping: workers end once their job is done.
    pub stopping: AtomicBool,
    /// Workers started and not yet ready (their worker process starting): `staff` counts them
    /// with the idle ones, so a burst starts workers in parallel, not one per wake.
    pub starting: AtomicUsize,
    /// The attempt supervisor (leases, timeouts) runs once started (`supervisor::ensure`).
    pub supervisor_started: AtomicBool,
    /// The executor of `process_next` (`run-once`), kept so that its worker process serves
    /// job after job.
    pub one_shot: Mutex<Option<Executor>>,
    /// Attempts ended per queue since the last summary line.
    pub tally: Mutex<BTreeMap<String, Tally>>,
    /// Jobs claimed per queue and not started yet, oldest first (a claim takes several under
    /// backlog); each is in `running`, its lease renewed.
    pub claimed: Mutex<HashMap<String, VecDeque<Attempt>>>,
    /// Writes outcomes, many per transaction.
    pub recorder: Recorder,
    /// Outcome batches written so far: a claim that came back empty and saw this move
    /// meanwhile may have missed a place freed by that write (`wake_starved` ran before the
    /// queue was marked), so it looks again at once.
    pub writes: AtomicU64,
    /// The scopes of the limits on how many run at once, and when they were read: an empty
    /// claim asks whether one may cover its queue, and reading them each time would add a
    /// statement per idle queue per poll on PostgreSQL.
    pub running_limits: Mutex<Option<(Instant, Vec<crate::limits::Scope>)>>,
}

/// Attempts ended on one queue, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
}

/// The list of queues that may have work, and how many workers wait for one.
#[derive(Default)]
pub(super) struct Ready {
    pub queues: VecDeque<Arc<Queue>>,
    pub idle: usize,
}

impl PoolState {
    /// Puts `queue` in the list of queues that may have work (once), and wakes an idle
    /// worker. True if no worker was idle (the caller may start one).
    pub fn list(&self, queue: &Arc<Queue>) -> bool {
        let mut ready = sync::lock(&self.ready);
        if !queue.listed.swap(true, Ordering::AcqRel) {
            ready.queues.push_back(queue.clone());
        }
        let none_idle = ready.idle == 0;
        drop(ready);
        self.work.notify_one();
        none_idle
    }

    /// The next queue that may have work, for a worker; waits up to `wait()` when there is
    /// none (`None` then, or when the pool stops). `wait` is asked only then, outside the
    /// lock: it may ask the store when the next waiting job is due, which on PostgreSQL is a
    /// round trip (asked before every job, it was the most frequent statement of a drain at
    /// concurrency 8: 13,598 calls, 4.7 s of the database's time, for 40,000 jobs).
    pub fn next_queue(&self, wait: impl FnOnce() -> Duration) -> Option<Arc<Queue>> {
        if let Some(queue) = self.wait_for_queue(Duration::ZERO) {
            return Some(queue);
        }
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        self.wait_for_queue(wait())
    }

    /// `next_queue` with the wait given.
    fn wait_for_queue(&self, wait: Duration) -> Option<Arc<Queue>> {
        let deadline = Instant::now() + wait;
        let mut ready = sync::lock(&self.ready);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(queue) = ready.queues.pop_front() {
                queue.listed.store(false, Ordering::Release);
                if queue.processing.load(Ordering::SeqCst) {
                    return Some(queue);
                }
                continue; // stopped: listed again when it starts
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            ready.idle += 1;
            ready = sync::wait_timeout(&self.work, ready, deadline - now);
            ready.idle -= 1;
        }
    }

    /// Lists every processing queue (the poll fallback, and a job that became due).
    pub fn list_all(&self) {
        let queues: Vec<Arc<Queue>> = sync::lock(&self.queues).values().cloned().collect();
        for queue in queues.iter().filter(|q| q.processing.load(Ordering::SeqCst)) {
            self.list(queue);
        }
    }

    /// Outcomes were written: a job that ended may have freed a flow-control place (its
    /// queue's, its factory's, its key's) that a claim found taken while the outcome waited
    /// for the recorder. Every queue whose last claim came back empty looks again now rather
    /// than at the next poll.
    pub fn wake_starved(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let queues: Vec<Arc<Queue>> = sync::lock(&self.queues)
            .values()
            .filter(|q| q.take_starved() && q.processing.load(Ordering::SeqCst))
            .cloned()
            .collect();
        for queue in &queues {
            self.list(queue);
        }
    }

    /// The oldest job claimed for `queue` and not started yet.
    pub fn take_claimed(&self, queue: &str) -> Option<Attempt> {
        sync::lock(&self.claimed).get_mut(queue)?.pop_front()
    }

    /// Takes job `id` from the jobs claimed and not started, wherever it waits.
    pub fn take_claimed_job(&self, id: JobId) -> Option<Attempt> {
        let mut claimed = sync::lock(&self.claimed);
        claimed.values_mut().find_map(|q| {
            let at = q.iter().position(|a| a.claimed.job.id == id)?;
            q.remove(at)
        })
    }

    /// Reserves up to `wanted` jobs for a claim to keep for `queue`, within `cap` together
    /// with the jobs kept for it and the reservations of its other claims in flight; how many.
    pub fn reserve_extra(&self, queue: &Queue, wanted: usize, cap: usize) -> usize {
        let claimed = sync::lock(&self.claimed);
        let kept = claimed.get(&queue.name).map_or(0, VecDeque::len);
        queue.reserve(wanted, cap.saturating_sub(kept))
    }

    /// Reserves jobs for a claim that tops up those kept for `queue` before they run out: once
    /// the jobs kept and reserved are down to one `batch`, one more batch (within `window`
    /// in all); else none.
    pub fn reserve_top_up(&self, queue: &Queue, batch: usize, window: usize) -> usize {
        let claimed = sync::lock(&self.claimed);
        let kept = claimed.get(&queue.name).map_or(0, VecDeque::len);
        if kept + queue.reserved() > batch {
            return 0;
        }
        queue.reserve(batch, window.saturating_sub(kept))
    }

    /// Keeps jobs claimed for `queue` for its next free places, after those kept already, and
    /// ends the claim's reservation of `reserved`: both at once, so that the count of jobs
    /// kept or reserved never drops in between.
    pub fn keep_reserved(&self, queue: &Queue, attempts: impl IntoIterator<Item = Attempt>, reserved: usize) {
        let mut claimed = sync::lock(&self.claimed);
        let mut attempts = attempts.into_iter().peekable();
        if attempts.peek().is_some() {
            claimed.entry(queue.name.clone()).or_default().extend(attempts);
        }
        queue.unreserve(reserved);
    }

    /// How many jobs claimed for `queue` wait for a worker.
    pub fn claimed_count(&self, queue: &str) -> usize {
        sync::lock(&self.claimed).get(queue).map_or(0, VecDeque::len)
    }

    /// Whether jobs claimed for `queue` wait for a worker.
    pub fn has_claimed(&self, queue: &str) -> bool {
        self.claimed_count(queue) > 0
    }

    /// Takes every job claimed for `queue` (all queues: `None`) and not started: a stopping
    /// queue or host gives them back.
    pub fn drain_claimed(&self, queue: Option<&str>) -> Vec<Attempt> {
        let mut claimed = sync::lock(&self.claimed);
        match queue {
            Some(name) => claimed.remove(name).map(Vec::from).unwrap_or_default(),
            None => claimed.drain().flat_map(|(_, q)| q).collect(),
        }
    }

    /// Counts an ended attempt of `queue` for the summary line.
    pub fn tally(&self, queue: &str, status: crate::job::Status) {
        use crate::job::Status;
        let mut tally = sync::lock(&self.tally);
        let t = match tally.get_mut(queue) {
            Some(t) => t,
            None => tally.entry(queue.to_owned()).or_default(),
        };
        match status {
            Status::Completed => t.completed += 1,
            Status::Queued => t.retried += 1,
            Status::Cancelled => t.cancelled += 1,
            _ => t.failed += 1,
        }
    }

    pub fn set_worker(&self, worker: usize, f: impl FnOnce(&mut WorkerStatus)) {
        if let Some(status) = sync::lock(&self.workers).get_mut(worker) {
            f(status);
        }
    }
}

/// One worker, as operators see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStatus {
    pub id: usize,
    /// Its worker process (`isolation = "process"`), once started.
    pub pid: Option<u32>,
    pub state: WorkerState,
    /// The job it runs, and its queue.
    pub job: Option<JobId>,
    pub queue: Option<String>,
    /// Worker processes it started after one ended (a death, a kill, a reload).
    pub restarts: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Starting its worker process.
    Starting,
    #[default]
    Idle,
    Running,
    /// Waiting before it starts a worker process again, after deaths in a row.
    BackingOff,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Idle => "idle",
            WorkerState::Running => "running",
            WorkerState::BackingOff => "backing_off",
        }
    }
}
