//! Job status changes as they happen, for waiters (long polls, `add --wait`, the benchmark).
//!
//! **Invariant:** an event is published only after the store recorded the change it reports,
//! so a waiter that re-reads the job on an event sees at least that status.

use tokio::sync::broadcast;

use crate::job::{Job, JobId, Status};

/// A job reached a new status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub id: JobId,
    pub status: Status,
}

/// The host's event stream. Lagging receivers miss events and should re-read the store.
pub struct Events(broadcast::Sender<JobEvent>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(4096).0)
    }
}

impl Events {
    pub fn publish(&self, job: &Job) {
        // No receivers is normal.
        let _ = self.0.send(JobEvent { id: job.id, status: job.status });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.0.subscribe()
    }
}
