//! The attempts running in this process: what a cancel, the supervisor and a shutdown need to
//! reach each of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::job::{AttemptToken, JobId};
use crate::sync;

/// One running attempt.
pub(super) struct RunningJob {
    pub token: AttemptToken,
    /// The cooperative flag the plugin polls (cancel, timeout, shutdown).
    pub cancel: Arc<AtomicBool>,
    /// Set by the supervisor when the deadline passed (the outcome is then a timeout).
    pub timed_out: Arc<AtomicBool>,
    pub deadline: Option<Instant>,
    /// When the supervisor next renews the lease.
    pub renew_at: Instant,
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

    /// Sets the job's cancellation flag, if it runs here.
    pub fn cancel(&self, id: JobId) {
        if let Some(running) = sync::lock(&self.0).get(&id) {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        sync::lock(&self.0).len()
    }

    /// Each running job and its attempt's token.
    pub fn tokens(&self) -> Vec<(JobId, AttemptToken)> {
        sync::lock(&self.0).iter().map(|(id, r)| (*id, r.token)).collect()
    }

    /// Calls `f` on every running attempt, under the lock (keep it short).
    pub fn for_each(&self, mut f: impl FnMut(JobId, &mut RunningJob)) {
        for (id, running) in sync::lock(&self.0).iter_mut() {
            f(*id, running);
        }
    }
}
