//! Jobs per (queue, status), and which (see `listing`), kept in memory: `GET /v1/queues` and
//! `/metrics` read the counts on every call, the job list the ids, and counting or filtering
//! the records each time would scan the store.
//!
//! Exact, because one process owns an embedded store and every transition is counted after
//! its transaction commits. Signed, because transitions are counted in the order their callers
//! get here, not the order they committed: a worker can claim a new job, and count it leaving
//! `queued`, before its adder counts it arriving. Increments commute; a floor at zero lost
//! that decrement and left the queue showing a job forever.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::codec;
use super::keys::{self, META_FINISHED_INDEX};
use super::listing::{ListedBy, Listing};
use super::tx::{decode_job, Trees};
use crate::job::{Job, JobId, Status};
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::Counts as CountsView;
use crate::sync;

/// Entries in the status indexes, for [`Counts::disagreement`].
#[derive(Debug, Clone, Copy)]
pub(super) struct IndexSizes {
    ready_and_waiting: u64,
    leases: u64,
    finished: u64,
}

/// Rebuilds `counts` from the records and counts the status indexes' entries (each a scan of
/// its tree) beside it, on a thread of its own: opening a large store reads both. The
/// `finished` index is counted after the rebuild when the rebuild writes it (a store older
/// than the index).
pub(super) fn rebuild_and_size(counts: &Counts, trees: &Trees) -> StoreResult<IndexSizes> {
    let finished_first = trees.meta.get(META_FINISHED_INDEX)?.is_some();
    let (rebuilt, sized) = std::thread::scope(|scope| {
        // Quietly: a panic of sled's here is passed on below, to be reported in one line.
        let sizing = scope.spawn(|| {
            super::damage::quietly(|| {
                let ready_and_waiting = (trees.ready.len() + trees.waiting.len()) as u64;
                let finished = if finished_first { Some(trees.finished.len() as u64) } else { None };
                (ready_and_waiting, trees.leases.len() as u64, finished)
            })
        });
        (counts.rebuild(trees), sizing.join())
    });
    rebuilt?;
    // sled panics on some damaged files: passed on to `damage::contain`, as on this thread.
    let (ready_and_waiting, leases, finished) =
        sized.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let finished = finished.unwrap_or_else(|| trees.finished.len() as u64);
    Ok(IndexSizes { ready_and_waiting, leases, finished })
}

/// How often opening a large store says how far it got.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Counts(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    counts: BTreeMap<(String, Status), i64>,
    listing: Listing,
}

impl Counts {
    /// Records a transition: `job` left `from` (`None`: it is new) for `to` (`None`: it was
    /// deleted).
    pub fn count(&self, job: &Job, from: Option<Status>, to: Option<Status>) {
        let mut inner = sync::lock(&self.0);
        for (status, by) in [(from, -1), (to, 1)] {
            if let Some(status) = status {
                *inner.counts.entry((job.queue.clone(), status)).or_insert(0) += by;
            }
        }
        inner.listing.apply(job.id, &job.queue, &job.factory, from, to);
    }

    /// Up to `n` ids of `statuses` (all when empty) of `queue` and `factory` (each when
    /// given) past `after`, in id order (descending when `newest_first`). Ids of jobs that
    /// changed meanwhile may be among them: the caller re-checks each record.
    pub fn listed(
        &self,
        statuses: &[Status],
        queue: Option<&str>,
        factory: Option<&str>,
        after: Option<JobId>,
        newest_first: bool,
        n: usize,
    ) -> Vec<JobId> {
        let inner = sync::lock(&self.0);
        let statuses = if statuses.is_empty() { &Status::ALL[..] } else { statuses };
        let (by, names) = match (queue, factory) {
            (Some(queue), _) => (ListedBy::Queue, vec![queue.to_owned()]),
            (None, Some(factory)) => (ListedBy::Factory, vec![factory.to_owned()]),
            (None, None) => (ListedBy::Queue, inner.listing.queues()),
        };
        inner.listing.ids(by, &names, statuses, after, newest_first, n)
    }

    /// Jobs of `factory` (and `queue`) in `statuses` (any when empty), up to `cap`.
    pub fn count_of_factory(&self, factory: &str, queue: Option<&str>, statuses: &[Status], cap: u64) -> u64 {
        let statuses = if statuses.is_empty() { &Status::ALL[..] } else { statuses };
        sync::lock(&self.0).listing.count(factory, queue, statuses, cap)
    }

    /// Jobs per queue and status.
    pub fn snapshot(&self) -> CountsView {
        let inner = sync::lock(&self.0);
        let mut out = CountsView::new();
        // Below zero only between a transition's two halves (see the module header): none yet.
        for ((queue, status), n) in inner.counts.iter().filter(|(_, n)| **n > 0) {
            out.entry(queue.clone()).or_default().insert(*status, n.unsigned_abs());
        }
        out
    }

    /// Counts every record at open; builds the `finished` index if the store predates it.
    pub fn rebuild(&self, trees: &Trees) -> StoreResult<()> {
        let build_index = trees.meta.get(META_FINISHED_INDEX)?.is_none();
        // Per queue, then status: looked up by `&str`, so a queue's name is allocated once.
        let mut by_queue: BTreeMap<String, BTreeMap<Status, i64>> = BTreeMap::new();
        let mut listing = Listing::default();
        let started = std::time::Instant::now();
        let mut told = started;
        for (n, entry) in trees.jobs.iter().enumerate() {
            let (key, value) = entry?;
            let id = keys::id_from(&key).unwrap_or_default();
            // Only the head of each record: opening a large store reads every job.
            let head = match codec::decode_job_head(&value) {
                Ok(head) => head,
                // One unreadable record must not make the whole store unusable; it is
                // reported whenever it is read.
                Err(error) => {
                    log::error!("{}", StoreError::Corrupt { what: format!("job {id}"), error });
                    continue;
                }
            };
            if build_index && head.status.is_finished() {
                let finished_at = decode_job(id, &value).ok().and_then(|job| job.finished_at);
                trees.finished.insert(keys::time_key(finished_at.unwrap_or(0), id), &[])?;
            }
            listing.apply(id, head.queue, head.factory, None, Some(head.status));
            let statuses = match by_queue.get_mut(head.queue) {
                Some(statuses) => statuses,
                None => by_queue.entry(head.queue.to_owned()).or_default(),
            };
            *statuses.entry(head.status).or_insert(0) += 1;
            if told.elapsed() >= PROGRESS_EVERY {
                told = std::time::Instant::now();
                log::info!(
                    "opening the store: {} jobs read in {:.1} s",
                    n + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if build_index {
            trees.meta.insert(META_FINISHED_INDEX, &[1])?;
        }
        let counts = by_queue
            .into_iter()
            .flat_map(|(queue, statuses)| {
                statuses.into_iter().map(move |(status, n)| ((queue.clone(), status), n))
            })
            .collect();
        *sync::lock(&self.0) = Inner { counts, listing };
        Ok(())
    }

    /// Whether the indexes hold as many entries as the records call for (counted at
    /// `rebuild`; `sizes` from [`index_sizes`]): a damaged file can leave them apart, which a
    /// crash never does (every change is one transaction). What disagrees, in words.
    pub fn disagreement(&self, sizes: IndexSizes) -> Option<String> {
        let mut by_status: BTreeMap<Status, u64> = BTreeMap::new();
        for ((_, status), n) in sync::lock(&self.0).counts.iter() {
            *by_status.entry(*status).or_insert(0) += n.unsigned_abs();
        }
        let n = |statuses: &[Status]| {
            statuses.iter().map(|s| by_status.get(s).copied().unwrap_or(0)).sum::<u64>()
        };
        let checks = [
            (
                "`ready` and `waiting`",
                sizes.ready_and_waiting,
                n(&[Status::Queued, Status::Scheduled]),
                "queued and scheduled jobs",
            ),
            ("`leases`", sizes.leases, n(&[Status::Processing]), "running jobs"),
            ("`finished`", sizes.finished, n(&Status::FINISHED), "finished jobs"),
        ];
        checks
            .into_iter()
            .find(|(_, found, wanted, _)| found != wanted)
            .map(|(index, found, wanted, what)| format!("{index} hold {found} entries for {wanted} {what}"))
    }
}
