//! What a job that waits for others records: its parents and what each one's failure means,
//! its counters (`Deps`), what a new job names as parents (`NewParent`), and its place in a
//! batch's group (`Membership`). The rules that move it are `waiting`'s.
//!
//! A dependent keeps two counters rather than reading its parents: how many of them it still
//! waits for (`left`) and how many failed it (`failed`: a parent that ended `error` or
//! `cancelled` over an edge that says `cancel`). A parent's change moves one unit from one
//! counter to another (or to neither: settled), so a fan-in of 10,000 parents costs each parent
//! one update of its child, never a read of its siblings. The counters are kept whatever the
//! dependent's status, so a parent retried after its dependent was cancelled for it revives the
//! dependent with counts that are still right.

use serde::{Deserialize, Serialize};

use crate::ids::JobId;

/// What a dependent does when a parent ends in `error` or `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The dependent ends `cancelled`, naming the parent (revived if the parent is retried).
    #[default]
    Cancel,
    /// The dependent runs anyway once the parent has finished, however it ended.
    Run,
}

/// One parent of a dependent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub id: JobId,
    pub on_failure: OnFailure,
}

/// What a new job depends on: a stored job, or another job of the same batch (by position,
/// resolved to its id when the batch's ids are taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upon {
    Job(JobId),
    Item(usize),
}

/// One parent of a job being added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewParent {
    pub upon: Upon,
    pub on_failure: OnFailure,
}

impl NewParent {
    /// The parent's id, with `batch` the ids of the batch's jobs in order (a position past
    /// them names no job: the store refuses it as unknown).
    pub fn resolve(self, batch: &[JobId]) -> Parent {
        let id = match self.upon {
            Upon::Job(id) => id,
            Upon::Item(i) => batch.get(i).copied().unwrap_or(JobId(u64::MAX)),
        };
        Parent { id, on_failure: self.on_failure }
    }
}

/// A job's place in a group: a member, or one of its callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The group's id: its first job's.
    pub group: JobId,
    pub callback: Option<Callback>,
}

/// A group's callback: a job that depends on every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    /// Runs once every member has finished, however each ended (`run` edges).
    OnComplete,
    /// Runs once every member has completed; cancelled if one fails for good (`cancel` edges).
    OnSuccess,
}

impl Callback {
    pub fn on_failure(self) -> OnFailure {
        match self {
            Callback::OnComplete => OnFailure::Run,
            Callback::OnSuccess => OnFailure::Cancel,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Callback::OnComplete => "on_complete",
            Callback::OnSuccess => "on_success",
        }
    }
}

/// What a batch's job says of the batch's group (see `Group`): the group's name, and whether
/// the job is a callback rather than a member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMembership {
    pub name: Option<String>,
    pub callback: Option<Callback>,
}

/// What a dependent's record keeps of its parents: counters only, so that a parent's change
/// rewrites a few bytes whatever the fan-in (the list of parents is kept apart by the store,
/// written once: see `Job::parents`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Deps {
    /// How many parents it has.
    pub total: u32,
    /// Parents it still waits for.
    pub left: u32,
    /// Parents whose failure cancels it (not retried since).
    pub failed: u32,
    /// While it is `cancelled` because a parent failed: that parent (a retry of the parents
    /// brings it back to `waiting`; a cancel by hand leaves this `None`).
    pub blocked_by: Option<JobId>,
}
