//! Groups: a batch's members and callbacks (made by the store with the batch), read with where
//! their jobs are, and cancelled: every pending member at once.

use super::error::HostError;
use super::host::Host;
use crate::job::JobId;
use crate::store::GroupState;

impl Host {
    /// Group `id` (its first job's id) and where its jobs are.
    pub fn group(&self, id: JobId) -> Result<GroupState, HostError> {
        self.inner.shared.store.group(id)?.ok_or(HostError::GroupNotFound(id))
    }

    /// Cancels every member still pending (a running one when it returns); how many were. Its
    /// callbacks then do what they do when members end `cancelled`: `on_complete` runs,
    /// `on_success` is cancelled.
    pub fn cancel_group(&self, id: JobId) -> Result<(u64, GroupState), HostError> {
        let group = self.group(id)?;
        let mut cancelled = 0;
        for &member in &group.group.members {
            match self.cancel(member) {
                Ok(_) => cancelled += 1,
                // Finished already, or removed: nothing to cancel.
                Err(HostError::Refused(_) | HostError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((cancelled, self.group(id)?))
    }

    /// The jobs that wait for job `id` (or did), by id, those after `after`, at most `limit`.
    pub fn dependents(&self, id: JobId, after: Option<JobId>, limit: usize) -> Result<Vec<JobId>, HostError> {
        Ok(self.inner.shared.store.dependents(id, after, limit)?)
    }
}
