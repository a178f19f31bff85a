//! The rules that move a job waiting for others: a new dependent admitted against where its
//! parents stand, and a parent's change moving its counters and, with them, its status.

use super::edges::{Deps, OnFailure, Parent};
use super::record::{Job, Status};
use crate::clock::Micros;
use crate::ids::JobId;

/// Where a parent stands, as its dependents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Not finished (waiting, scheduled, held, queued, processing).
    Pending,
    Completed,
    /// `error` or `cancelled`.
    Failed,
}

impl Standing {
    pub fn of(status: Status) -> Standing {
        match status {
            Status::Completed => Standing::Completed,
            Status::Error | Status::Cancelled => Standing::Failed,
            _ => Standing::Pending,
        }
    }
}

/// Which counter a parent in `standing` is in, over an edge with `on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Left,
    Failed,
    Settled,
}

fn counter(standing: Standing, on_failure: OnFailure) -> Counter {
    match (standing, on_failure) {
        (Standing::Pending, _) => Counter::Left,
        (Standing::Completed, _) | (Standing::Failed, OnFailure::Run) => Counter::Settled,
        (Standing::Failed, OnFailure::Cancel) => Counter::Failed,
    }
}

impl Deps {
    fn add(&mut self, c: Counter, by: i64) {
        let slot = match c {
            Counter::Left => &mut self.left,
            Counter::Failed => &mut self.failed,
            Counter::Settled => return,
        };
        *slot = (*slot as i64 + by).clamp(0, u32::MAX as i64) as u32;
    }
}

/// The error recorded on a dependent cancelled because `parent` ended in `status`.
pub fn dependency_failed(parent: JobId, status: Status) -> String {
    format!("cancelled: it depends on job {parent}, which ended {status}")
}

impl Job {
    /// The parents this job waits for, where the store filled them in (see `Job::parents`).
    pub fn parents(&self) -> &[Parent] {
        &self.parents
    }

    /// A new dependent learns each parent's status (`statuses`, by id), then takes the status that implies: `waiting`, or released at once, or
    /// `cancelled` for a parent that already failed. Only for a job just made `waiting`.
    pub fn admit_parents(&mut self, statuses: &[(JobId, Status)], now: Micros) {
        let Some(deps) = self.deps.as_mut() else { return };
        deps.left = 0;
        deps.failed = 0;
        let mut first_failed = None;
        for parent in self.parents.clone() {
            let status = statuses.iter().find(|(id, _)| *id == parent.id).map_or(Status::Queued, |(_, s)| *s);
            let c = counter(Standing::of(status), parent.on_failure);
            if c == Counter::Failed && first_failed.is_none() {
                first_failed = Some((parent.id, status));
            }
            deps.add(c, 1);
        }
        self.reconsider(first_failed, now);
    }

    /// Parent `parent.id` (over an edge saying `parent.on_failure`) moved from `before` to
    /// `after` (its new status `status`): the counters follow, and so does this job's status
    /// if it was waiting for it, or cancelled for it. True if this job's status changed (its
    /// own dependents must then hear of it).
    pub fn parent_moved(
        &mut self,
        parent: Parent,
        before: Standing,
        after: Standing,
        status: Status,
        now: Micros,
    ) -> bool {
        let Some(deps) = self.deps.as_mut() else { return false };
        let (from, to) = (counter(before, parent.on_failure), counter(after, parent.on_failure));
        let parent = parent.id;
        if from == to {
            return false;
        }
        deps.add(from, -1);
        deps.add(to, 1);
        let was = self.status;
        let failed_now = (to == Counter::Failed).then_some((parent, status));
        self.reconsider(failed_now, now);
        self.status != was
    }

    /// Moves a dependent as its counters say: a waiting job with a failed parent is
    /// `cancelled` (naming it), one with nothing left to wait for is released (`queued`, or
    /// `scheduled` until a later run time); a job cancelled for a parent whose failures were
    /// all retried waits again.
    fn reconsider(&mut self, failed: Option<(JobId, Status)>, now: Micros) {
        let Some(deps) = self.deps.as_ref() else { return };
        let (left, failed_count, blocked) = (deps.left, deps.failed, deps.blocked_by);
        match self.status {
            Status::Waiting if failed_count > 0 => {
                let (parent, status) = failed.unwrap_or((JobId(0), Status::Error));
                self.push_error(now, &dependency_failed(parent, status));
                if let Some(d) = self.deps.as_mut() {
                    d.blocked_by = Some(parent);
                }
                self.finish(Status::Cancelled, now);
            }
            Status::Waiting if left == 0 => {
                if self.run_at > now {
                    self.become_(Status::Scheduled);
                } else {
                    self.run_at = now;
                    self.become_(Status::Queued);
                }
            }
            Status::Cancelled if blocked.is_some() && failed_count == 0 => {
                if let Some(d) = self.deps.as_mut() {
                    d.blocked_by = None;
                }
                self.finished_at = None;
                self.become_(Status::Waiting);
                self.reconsider(None, now);
            }
            _ => {}
        }
    }
}
