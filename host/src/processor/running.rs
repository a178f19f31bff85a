//! The attempts claimed by this process, running or waiting for a worker (a claim takes
//! several at once under backlog): what a cancel, the supervisor and a shutdown need to reach
//! each of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::job::{AttemptToken, JobId};
use crate::sync;
use crate::workers::Control;

/// One claimed attempt.
pub(super) struct RunningJob {
    /// Running (on a worker); false while it waits for one: no deadline, no stop to enforce,
    /// only its lease to renew.
    pub started: bool,
    pub token: AttemptToken,
    pub queue: String,
    /// The cooperative flag the plugin polls (cancel, timeout, shutdown).
    pub cancel: Arc<AtomicBool>,
    /// Set by the supervisor when the deadline passed (the outcome is then a timeout).
    pub timed_out: Arc<AtomicBool>,
    /// Set when its worker process is killed for CPU time (see `Attempt::over_cpu`).
    pub over_cpu: Arc<AtomicBool>,
    /// The CPU time its worker process (and what it started) had used when the supervisor
    /// first saw the job run there.
    pub cpu_at_start: Option<std::time::Duration>,
    pub deadline: Option<Instant>,
    /// When the supervisor next renews the lease.
    pub renew_at: Instant,
    /// The worker process running it (`isolation = "process"`): how the supervisor forwards
    /// the cancellation flag and, past the grace, kills it.
    pub worker: Option<Arc<Control>>,
    /// When the supervisor first saw the flag set: the grace runs from here.
    pub asked_to_stop_at: Option<Instant>,
    /// Still running past its grace with no process to kill (`isolation = "none"`).
    pub stuck: bool,
    /// Sent ahead to `worker` and asked back (see `withdraw`): asked once.
    pub withdrawing: bool,
}

/// The worker process `running` waits in, sent ahead and not asked back yet: asked now.
fn ahead_of(running: &mut RunningJob) -> Option<Arc<Control>> {
    if running.started || running.withdrawing {
        return None;
    }
    let worker = running.worker.clone()?;
    running.withdrawing = true;
    Some(worker)
}

/// Every attempt running here, by job.
#[derive(Default)]
pub(super) struct RunningJobs(Mutex<HashMap<JobId, RunningJob>>);

impl RunningJobs {
    pub fn insert(&self, id: JobId, job: RunningJob) {
        sync::lock(&self.0).insert(id, job);
    }

    pub fn remove(&self, id: JobId) {
        sync::lock(&self.0).remove(&id);
    }

    /// A claimed attempt starts on a worker: from now on its deadline counts.
    pub fn start(&self, id: JobId, deadline: Option<Instant>) {
        if let Some(running) = sync::lock(&self.0).get_mut(&id) {
            running.started = true;
            running.deadline = deadline;
        }
    }

    /// A job that started on a worker, as far as the host knew, did not (it was withdrawn in
    /// the moment it would have): it waits for a worker again.
    pub fn unstart(&self, id: JobId) {
        if let Some(running) = sync::lock(&self.0).get_mut(&id) {
            running.started = false;
            running.deadline = None;
            running.worker = None;
            running.withdrawing = false;
            running.asked_to_stop_at = None;
        }
    }

    /// Records the worker process that runs the job, or that it was sent ahead to.
    pub fn attach(&self, id: JobId, worker: Arc<Control>) {
        if let Some(running) = sync::lock(&self.0).get_mut(&id) {
            running.worker = Some(worker);
        }
    }

    /// Sets the job's cancellation flag, if it runs here (the supervisor forwards it to a
    /// worker process within a tick). A job sent ahead and not started is withdrawn, so that
    /// its cancel does not wait for the job before it.
    pub fn cancel(&self, id: JobId) {
        let ahead = {
            let mut jobs = sync::lock(&self.0);
            let Some(running) = jobs.get_mut(&id) else { return };
            running.cancel.store(true, Ordering::Relaxed);
            ahead_of(running)
        };
        if let Some(worker) = ahead {
            worker.withdraw(id.0);
        }
    }

    /// Asks back the jobs of `queue` (every queue: `None`) sent ahead to worker processes and
    /// not started, at most `limit`: a queue stops, the host stops or reloads its plugins, or
    /// a worker with a free place found nothing else to run. Each comes back to its slot as
    /// `Withdrawn` (or runs, if it had started).
    pub fn withdraw(&self, queue: Option<&str>, limit: usize) -> usize {
        let mut asked = Vec::new();
        for (id, running) in sync::lock(&self.0).iter_mut() {
            if asked.len() >= limit {
                break;
            }
            if queue.is_some_and(|q| q != running.queue) {
                continue;
            }
            if let Some(worker) = ahead_of(running) {
                asked.push((*id, worker));
            }
        }
        for (id, worker) in &asked {
            worker.withdraw(id.0);
        }
        asked.len()
    }

    /// Waits until every job asked back is back or known to have started (each worker
    /// process answers at once, whatever its running job does), at most `limit`: false if some
    /// were still unanswered then (a worker stopped by a signal).
    pub fn wait_withdrawn(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let pending = sync::lock(&self.0).values().any(|r| r.withdrawing && !r.started);
            if !pending {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Attempts running on a worker now (not those waiting for one).
    pub fn len(&self) -> usize {
        sync::lock(&self.0).values().filter(|r| r.started).count()
    }

    /// Each running job and its attempt's token.
    pub fn tokens(&self) -> Vec<(JobId, AttemptToken)> {
        sync::lock(&self.0).iter().map(|(id, r)| (*id, r.token)).collect()
    }

    /// Kills the worker processes of every job still running here; how many there were.
    pub fn kill_all(&self) -> usize {
        let running = sync::lock(&self.0);
        for worker in running.values().filter_map(|r| r.worker.as_ref()) {
            worker.kill();
        }
        running.len()
    }

    /// Jobs per queue still running past their grace with no process to kill.
    pub fn stuck_by_queue(&self) -> HashMap<String, usize> {
        let mut stuck = HashMap::new();
        for running in sync::lock(&self.0).values().filter(|r| r.stuck) {
            *stuck.entry(running.queue.clone()).or_insert(0) += 1;
        }
        stuck
    }

    /// Calls `f` on every running attempt, under the lock (keep it short).
    pub fn for_each(&self, mut f: impl FnMut(JobId, &mut RunningJob)) {
        for (id, running) in sync::lock(&self.0).iter_mut() {
            f(*id, running);
        }
    }
}
