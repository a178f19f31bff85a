//! The attempts claimed by this process, running or waiting for a worker (a claim takes
//! several at once under backlog): what a cancel, the supervisor and a shutdown need to reach
//! each of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

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

    /// Records the worker process that runs the job.
    pub fn attach(&self, id: JobId, worker: Arc<Control>) {
        if let Some(running) = sync::lock(&self.0).get_mut(&id) {
            running.worker = Some(worker);
        }
    }

    /// Sets the job's cancellation flag, if it runs here (the supervisor forwards it to a
    /// worker process within a tick).
    pub fn cancel(&self, id: JobId) {
        if let Some(running) = sync::lock(&self.0).get(&id) {
            running.cancel.store(true, Ordering::Relaxed);
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
