//! Jobs per (queue, status), kept in memory: `GET /v1/queues` and `/metrics` read them on
//! every call, and counting the records each time would scan the store.
//!
//! Exact, because one process owns an embedded store and every transition is counted after
//! its transaction commits. Signed, because transitions are counted in the order their callers
//! get here, not the order they committed: a worker can claim a new job, and count it leaving
//! `queued`, before its adder counts it arriving. Increments commute; a floor at zero lost
//! that decrement and left the queue showing a job forever.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::keys::{self, META_FINISHED_INDEX, META_LISTING_INDEX};
use super::tx::{decode_job, listed_names, Trees};
use crate::job::Status;
use crate::store::error::StoreResult;
use crate::store::types::Counts as CountsView;
use crate::sync;

#[derive(Default)]
pub(super) struct Counts(Mutex<BTreeMap<(String, Status), i64>>);

impl Counts {
    /// Records a transition: one job of `queue` left `from` (`None`: it is new) for `to`
    /// (`None`: it was deleted).
    pub fn count(&self, queue: &str, from: Option<Status>, to: Option<Status>) {
        let mut counts = sync::lock(&self.0);
        if let Some(from) = from {
            *counts.entry((queue.to_owned(), from)).or_insert(0) -= 1;
        }
        if let Some(to) = to {
            *counts.entry((queue.to_owned(), to)).or_insert(0) += 1;
        }
    }

    /// Every queue that has (or had since open) jobs in one of `statuses`: where a status-only
    /// listing looks in the `listing` index.
    pub fn queues_with(&self, statuses: &[Status]) -> Vec<String> {
        let counts = sync::lock(&self.0);
        let mut queues: Vec<String> =
            counts.keys().filter(|(_, s)| statuses.contains(s)).map(|(q, _)| q.clone()).collect();
        queues.dedup();
        queues
    }

    /// Jobs per queue and status.
    pub fn snapshot(&self) -> CountsView {
        let counts = sync::lock(&self.0);
        let mut out = CountsView::new();
        // Below zero only between a transition's two halves (see the module header): none yet.
        for ((queue, status), n) in counts.iter().filter(|(_, n)| **n > 0) {
            out.entry(queue.clone()).or_default().insert(*status, n.unsigned_abs());
        }
        out
    }

    /// Counts every record at open; builds the `finished` index if the store predates it.
    pub fn rebuild(&self, trees: &Trees) -> StoreResult<()> {
        let build_index = trees.meta.get(META_FINISHED_INDEX)?.is_none();
        let build_listing = trees.meta.get(META_LISTING_INDEX)?.is_none();
        if build_listing {
            // Restored from a backup (which leaves it out) or older than it: built afresh.
            trees.listing.clear()?;
        }
        let mut counts = BTreeMap::new();
        for entry in trees.jobs.iter() {
            let (key, value) = entry?;
            let id = keys::id_from(&key).unwrap_or_default();
            match decode_job(id, &value) {
                Ok(job) => {
                    if build_index && job.status.is_finished() {
                        trees.finished.insert(keys::time_key(job.finished_at.unwrap_or(0), id), &[])?;
                    }
                    if build_listing {
                        for (by, name) in listed_names(&job) {
                            trees.listing.insert(keys::listing_key(by, name, job.status, id), &[])?;
                        }
                    }
                    *counts.entry((job.queue, job.status)).or_insert(0) += 1
                }
                // One unreadable record must not make the whole store unusable; it is
                // reported whenever it is read.
                Err(e) => log::error!("{e}"),
            }
        }
        if build_index {
            trees.meta.insert(META_FINISHED_INDEX, &[1])?;
        }
        if build_listing {
            trees.meta.insert(META_LISTING_INDEX, &[1])?;
        }
        *sync::lock(&self.0) = counts;
        Ok(())
    }

    /// Whether the indexes hold as many entries as the records call for (counted at
    /// `rebuild`): a damaged file can leave them apart, which a crash never does (every change
    /// is one transaction). What disagrees, in words.
    pub fn disagreement(&self, trees: &Trees) -> StoreResult<Option<String>> {
        let mut by_status: BTreeMap<Status, u64> = BTreeMap::new();
        for ((_, status), n) in sync::lock(&self.0).iter() {
            *by_status.entry(*status).or_insert(0) += n.unsigned_abs();
        }
        let n = |statuses: &[Status]| {
            statuses.iter().map(|s| by_status.get(s).copied().unwrap_or(0)).sum::<u64>()
        };
        let checks = [
            (
                "`ready` and `waiting`",
                (trees.ready.len() + trees.waiting.len()) as u64,
                n(&[Status::Queued, Status::Scheduled]),
                "queued and scheduled jobs",
            ),
            ("`leases`", trees.leases.len() as u64, n(&[Status::Processing]), "running jobs"),
            ("`finished`", trees.finished.len() as u64, n(&Status::FINISHED), "finished jobs"),
            ("`listing`", trees.listing.len() as u64, 2 * n(&Status::ALL), "(two for each job)"),
        ];
        Ok(checks
            .into_iter()
            .find(|(_, found, wanted, _)| found != wanted)
            .map(|(index, found, wanted, what)| format!("{index} hold {found} entries for {wanted} {what}")))
    }
}
