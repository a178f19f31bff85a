//! Bulk operations as data: what one does, how far it got, and this host's list of them
//! (`operations` runs them; `Host` holds the list, so this module sits below both).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock::Micros;
use crate::job::Status;
use crate::sync;

/// Operations kept for `GET /v1/operations` (finished ones beyond it are forgotten first).
pub(super) const KEPT: usize = 50;

/// Operations running at once on a host: each reads and writes the store as fast as it can,
/// so more would only slow the jobs' own work (and a client looping on POST would start a
/// thread per request).
pub(super) const MAX_RUNNING: usize = 4;

/// Jobs read, then changed, at a time; progress moves by a page.
pub(super) const PAGE: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Each matching `error` or `cancelled` job back to `queued` with fresh attempts.
    Retry,
    /// Each matching finished job deleted.
    Remove,
    /// Each matching pending job cancelled (a running one asked to stop, as `cancel` does).
    Cancel,
}

/// The most jobs an operation may name one by one (`Selection::ids`).
pub const MAX_SELECTED: usize = 1_000;

/// Which jobs an operation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub statuses: Vec<Status>,
    pub queue: Option<String>,
    pub factory: Option<String>,
    /// These jobs only (those of them the filter matches), in this order; empty: every job
    /// the filter matches.
    pub ids: Vec<crate::job::JobId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Running,
    Completed,
    Cancelled,
    Failed,
}

/// One operation as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStatus {
    pub id: u64,
    pub action: Action,
    pub selection: Selection,
    pub phase: Phase,
    /// Matching jobs when it started, from the store's counts (none by factory: not counted).
    pub total: Option<u64>,
    /// Jobs changed so far.
    pub done: u64,
    /// Jobs passed over: changed by someone else meanwhile, or (remove) still needed by a job
    /// that depends on them, or (retry) holding a unique key another job now has.
    pub skipped: u64,
    pub error: Option<String>,
    pub started_at: Micros,
    pub finished_at: Option<Micros>,
}

/// An operation while it runs: its counters move without a lock.
pub(super) struct Operation {
    pub(super) id: u64,
    pub(super) action: Action,
    pub(super) selection: Selection,
    pub(super) total: Option<u64>,
    pub(super) started_at: Micros,
    pub(super) done: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) cancel: AtomicBool,
    pub(super) end: Mutex<Option<(Phase, Option<String>, Micros)>>,
}

impl Operation {
    pub(super) fn status(&self) -> OperationStatus {
        let end = sync::lock(&self.end).clone();
        OperationStatus {
            id: self.id,
            action: self.action,
            selection: self.selection.clone(),
            phase: end.as_ref().map_or(Phase::Running, |e| e.0),
            total: self.total,
            done: self.done.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            error: end.as_ref().and_then(|e| e.1.clone()),
            started_at: self.started_at,
            finished_at: end.map(|e| e.2),
        }
    }
}

/// This host's operations, newest last.
#[derive(Default)]
pub(super) struct Operations {
    pub(super) list: Mutex<VecDeque<Arc<Operation>>>,
    pub(super) last_id: AtomicU64,
}
