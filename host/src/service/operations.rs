//! Bulk operations: retrying, removing or cancelling every job a filter matches (or the jobs
//! an operator selected, which the filter must match too), run in the background a page at a
//! time so an operator sees progress and can cancel (Sidekiq's and Oban's "retry
//! all" at 100,000 jobs is minutes of work, not one request).
//!
//! **Invariant:** an operation changes only jobs that match its filter when it reaches them
//! (each job is re-checked by the store as it is changed), counts each job once, and stops
//! between two pages once cancelled. Operations are this host's, kept in memory: a restart
//! ends them where they were (what they changed stays changed; running one again finishes
//! the rest).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::bulk::{
    Action, Operation, OperationStatus, Phase, Selection, KEPT, MAX_RUNNING, MAX_SELECTED, PAGE,
};
use super::error::HostError;
use super::host::Host;
use crate::job::{JobId, Status};
use crate::store::{ListFilter, Removal};
use crate::sync;

/// What a cancel can take.
const PENDING: [Status; 5] =
    [Status::Waiting, Status::Queued, Status::Scheduled, Status::Held, Status::Processing];

impl Host {
    /// Starts retrying or removing every job `selection` matches, in the background; returns
    /// at once with its id. Refuses statuses the action cannot take.
    pub fn start_operation(
        &self,
        action: Action,
        selection: Selection,
    ) -> Result<OperationStatus, HostError> {
        let allowed: &[Status] = match action {
            Action::Retry => &[Status::Error, Status::Cancelled],
            Action::Remove => &Status::FINISHED,
            Action::Cancel => &PENDING,
        };
        if let Some(other) = selection.statuses.iter().find(|s| !allowed.contains(s)) {
            let verb = match action {
                Action::Retry => "retried",
                Action::Remove => "removed",
                Action::Cancel => "cancelled",
            };
            let names: Vec<String> = allowed.iter().map(Status::to_string).collect();
            return Err(HostError::invalid(
                "status",
                format!("only {} jobs can be {verb}, not `{other}`", names.join(", ")),
            ));
        }
        let mut selection = selection;
        if selection.statuses.is_empty() {
            selection.statuses = allowed.to_vec();
        }
        if selection.ids.len() > MAX_SELECTED {
            return Err(HostError::invalid(
                "ids",
                format!(
                    "at most {MAX_SELECTED} jobs one by one, not {}: select by filter",
                    selection.ids.len()
                ),
            ));
        }
        let total = match &selection.factory {
            _ if !selection.ids.is_empty() => Some(selection.ids.len() as u64),
            Some(_) => None,
            None => {
                let counts = self.inner.shared.store.counts()?;
                let n = counts
                    .iter()
                    .filter(|(queue, _)| selection.queue.as_ref().is_none_or(|q| q == *queue))
                    .flat_map(|(_, by_status)| by_status.iter())
                    .filter(|(status, _)| selection.statuses.contains(status))
                    .map(|(_, n)| *n)
                    .sum();
                Some(n)
            }
        };
        let operations = &self.inner.operations;
        // Counted and added under one lock: parallel requests cannot pass the cap together.
        let mut list = sync::lock(&operations.list);
        let running = list.iter().filter(|o| sync::lock(&o.end).is_none()).count();
        if running >= MAX_RUNNING {
            return Err(HostError::OperationsBusy(running));
        }
        let operation = Arc::new(Operation {
            id: operations.last_id.fetch_add(1, Ordering::Relaxed) + 1,
            action,
            selection,
            total,
            started_at: self.now(),
            done: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
            end: Mutex::new(None),
        });
        list.push_back(operation.clone());
        while list.len() > KEPT {
            // The oldest finished one goes; running ones stay however many there are.
            match list.iter().position(|o| sync::lock(&o.end).is_some()) {
                Some(i) => drop(list.remove(i)),
                None => break,
            }
        }
        drop(list);
        let host = self.clone();
        let running = operation.clone();
        std::thread::Builder::new()
            .name(format!("operation-{}", operation.id))
            .spawn(move || host.run_operation(&running))
            .map_err(|e| {
                // Listed as failed, not as running for ever.
                *sync::lock(&operation.end) =
                    Some((Phase::Failed, Some(format!("no thread: {e}")), self.now()));
                HostError::Store(crate::store::StoreError::Io {
                    what: "cannot start an operation's thread".into(),
                    error: e,
                })
            })?;
        Ok(operation.status())
    }

    /// Every operation this host remembers, oldest first.
    pub fn operations(&self) -> Vec<OperationStatus> {
        sync::lock(&self.inner.operations.list).iter().map(|o| o.status()).collect()
    }

    pub fn operation(&self, id: u64) -> Option<OperationStatus> {
        self.find_operation(id).map(|o| o.status())
    }

    /// Asks operation `id` to stop after the page it is on; its status as it stands.
    pub fn cancel_operation(&self, id: u64) -> Option<OperationStatus> {
        let operation = self.find_operation(id)?;
        operation.cancel.store(true, Ordering::Relaxed);
        Some(operation.status())
    }

    fn find_operation(&self, id: u64) -> Option<Arc<Operation>> {
        sync::lock(&self.inner.operations.list).iter().find(|o| o.id == id).cloned()
    }

    fn run_operation(&self, operation: &Operation) {
        let ended = self.operation_pages(operation);
        let (phase, error) = match ended {
            Ok(true) => (Phase::Cancelled, None),
            Ok(false) => (Phase::Completed, None),
            Err(e) => {
                log::error!("operation {} stopped: {e}", operation.id);
                (Phase::Failed, Some(e.to_string()))
            }
        };
        let status = operation.status();
        log::info!(
            "operation {} ({:?}) {phase:?}: {} changed, {} passed over",
            operation.id,
            operation.action,
            status.done,
            status.skipped
        );
        *sync::lock(&operation.end) = Some((phase, error, self.now()));
    }

    /// Pages through the selection, changing each job; true when cancelled.
    fn operation_pages(&self, operation: &Operation) -> Result<bool, HostError> {
        let selection = &operation.selection;
        if !selection.ids.is_empty() {
            return self.operation_on_ids(operation);
        }
        let mut filter = ListFilter {
            statuses: selection.statuses.clone(),
            queue: selection.queue.clone(),
            factory: selection.factory.clone(),
            limit: PAGE,
            ..ListFilter::default()
        };
        loop {
            if operation.cancel.load(Ordering::Relaxed) {
                return Ok(true);
            }
            let page = self.list(&filter)?;
            let Some(last) = page.last() else { return Ok(false) };
            filter.after = Some(last.id);
            for job in &page {
                self.change_one(operation, job.id)?;
            }
        }
    }

    /// The selected jobs, a page at a time; each changed only if the filter matches it when
    /// reached (a selection is of what the operator saw, which may have changed since).
    fn operation_on_ids(&self, operation: &Operation) -> Result<bool, HostError> {
        let selection = &operation.selection;
        for page in selection.ids.chunks(PAGE) {
            if operation.cancel.load(Ordering::Relaxed) {
                return Ok(true);
            }
            for &id in page {
                let matches = self.get(id)?.is_some_and(|job| {
                    selection.statuses.contains(&job.status)
                        && selection.queue.as_ref().is_none_or(|q| *q == job.queue)
                        && selection.factory.as_ref().is_none_or(|f| *f == job.factory)
                });
                if matches {
                    self.change_one(operation, id)?;
                } else {
                    operation.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(false)
    }

    fn change_one(&self, operation: &Operation, id: JobId) -> Result<(), HostError> {
        let changed = match operation.action {
            Action::Retry => self.retry_one(id)?,
            Action::Remove => self.remove_one(id, &operation.selection)?,
            Action::Cancel => self.cancel_one(id)?,
        };
        let counter = if changed { &operation.done } else { &operation.skipped };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Cancels one job of an operation (a running one is asked to stop); false if it is no
    /// longer pending.
    fn cancel_one(&self, id: JobId) -> Result<bool, HostError> {
        match self.cancel(id) {
            Ok(_) => Ok(true),
            Err(HostError::NotFound(_) | HostError::Refused(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Retries one job of an operation; false if it is no longer one to retry.
    fn retry_one(&self, id: JobId) -> Result<bool, HostError> {
        match self.retry(id) {
            Ok(_) => Ok(true),
            Err(HostError::NotFound(_) | HostError::Refused(_) | HostError::KeyHeld(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes one job of an operation if it still matches and nothing waits for it.
    fn remove_one(&self, id: JobId, selection: &Selection) -> Result<bool, HostError> {
        let which = Removal {
            id: Some(id),
            statuses: selection.statuses.clone(),
            queue: selection.queue.clone(),
            factory: selection.factory.clone(),
            ..Removal::default()
        };
        Ok(self.inner.shared.store.remove(&which)?.values().sum::<u64>() > 0)
    }
}
