//! The ids of each (queue, status) and (factory, status), in memory, in id order: a filtered
//! page of the job list reads a few ranges of these and then only the records it shows, at
//! any depth. Built from the records at open (with the counts, in the same pass) and kept by
//! the same calls that keep the counts, after each transaction commits; so a status change
//! costs the hot path two map updates under a lock it takes anyway, not four more writes in
//! every transaction.
//!
//! **Invariant:** an id is listed under a name and status once the change that put it there
//! has been counted, and unlisted once the change that took it out has. Entries are signed
//! for the reason the counts are (see `counts`); a reader re-checks each record, so an entry
//! between a transition's two halves costs a skipped record, never a wrong row.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use crate::job::{JobId, Status};

/// Which name a listing is kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListedBy {
    Queue,
    Factory,
}

/// Per status, the ids and their signed presence.
type ByStatus = [BTreeMap<u64, i32>; Status::ALL.len()];

#[derive(Default)]
pub(super) struct Listing {
    queues: HashMap<String, ByStatus>,
    factories: HashMap<String, ByStatus>,
}

fn slot(status: Status) -> usize {
    Status::ALL.iter().position(|s| *s == status).unwrap_or(0)
}

fn bump(map: &mut BTreeMap<u64, i32>, id: u64, by: i32) {
    let n = map.entry(id).or_insert(0);
    *n += by;
    if *n == 0 {
        map.remove(&id);
    }
}

impl Listing {
    fn names(&mut self, by: ListedBy) -> &mut HashMap<String, ByStatus> {
        match by {
            ListedBy::Queue => &mut self.queues,
            ListedBy::Factory => &mut self.factories,
        }
    }

    /// Job `id` of `queue` and `factory` left `from` (`None`: it is new) for `to` (`None`:
    /// it was deleted).
    pub fn apply(&mut self, id: JobId, queue: &str, factory: &str, from: Option<Status>, to: Option<Status>) {
        for (by, name) in [(ListedBy::Queue, queue), (ListedBy::Factory, factory)] {
            let names = self.names(by);
            // Looked up by `&str` first: a new name is the only allocation.
            let statuses = match names.get_mut(name) {
                Some(statuses) => statuses,
                None => names.entry(name.to_owned()).or_default(),
            };
            if let Some(from) = from {
                bump(&mut statuses[slot(from)], id.0, -1);
            }
            if let Some(to) = to {
                bump(&mut statuses[slot(to)], id.0, 1);
            }
        }
    }

    /// Every queue name listed so far.
    pub fn queues(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// The ids listed for `factory` in `statuses` (and, with `queue`, listed for it too),
    /// counted up to `cap`. Both lists are in id order: with a queue, a merge of the two.
    pub fn count(&self, factory: &str, queue: Option<&str>, statuses: &[Status], cap: u64) -> u64 {
        let Some(by_factory) = self.factories.get(factory) else { return 0 };
        let by_queue = match queue {
            Some(queue) => match self.queues.get(queue) {
                Some(lists) => Some(lists),
                None => return 0,
            },
            None => None,
        };
        let mut n = 0u64;
        for status in statuses {
            let of_factory = by_factory[slot(*status)].iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id);
            let left = usize::try_from(cap - n).unwrap_or(usize::MAX);
            n += match by_queue {
                None => of_factory.take(left).count() as u64,
                // Both in id order: a merge, no copy of either.
                Some(lists) => {
                    let mut of_queue =
                        lists[slot(*status)].iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id).peekable();
                    of_factory
                        .filter(|id| {
                            while of_queue.next_if(|q| q < id).is_some() {}
                            of_queue.peek() == Some(id)
                        })
                        .take(left)
                        .count() as u64
                }
            };
            if n >= cap {
                return cap;
            }
        }
        n
    }

    /// Up to `n` ids past `after` (below it when `newest_first`), in that order, from the
    /// union of `name`'s lists (by `by`) of `statuses`.
    pub fn ids(
        &self,
        by: ListedBy,
        names: &[String],
        statuses: &[Status],
        after: Option<JobId>,
        newest_first: bool,
        n: usize,
    ) -> Vec<JobId> {
        let table = match by {
            ListedBy::Queue => &self.queues,
            ListedBy::Factory => &self.factories,
        };
        let range = match (after, newest_first) {
            (None, _) => (Bound::Unbounded, Bound::Unbounded),
            (Some(a), false) => (Bound::Excluded(a.0), Bound::Unbounded),
            (Some(a), true) => (Bound::Unbounded, Bound::Excluded(a.0)),
        };
        let mut ids: Vec<u64> = Vec::new();
        for name in names {
            let Some(lists) = table.get(name) else { continue };
            for status in statuses {
                let list = lists[slot(*status)].range(range).filter(|(_, n)| **n > 0).map(|(id, _)| *id);
                // Each list gives at most `n`: the page's ids are among them.
                if newest_first {
                    ids.extend(list.rev().take(n));
                } else {
                    ids.extend(list.take(n));
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if newest_first {
            ids.reverse();
        }
        ids.truncate(n);
        ids.into_iter().map(JobId).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_merge_in_order_from_a_cursor_and_follow_transitions_in_any_order() {
        let mut l = Listing::default();
        for id in 1..=6 {
            let queue = if id % 2 == 0 { "even" } else { "odd" };
            l.apply(JobId(id), queue, "echo", None, Some(Status::Queued));
        }
        // A claim counted before its add: listed once both halves are in, never twice.
        l.apply(JobId(7), "odd", "echo", Some(Status::Queued), Some(Status::Processing));
        l.apply(JobId(7), "odd", "echo", None, Some(Status::Queued));
        let all = |l: &Listing, st: &[Status], after, newest| {
            l.ids(ListedBy::Queue, &["even".into(), "odd".into()], st, after, newest, 100)
        };
        assert_eq!(all(&l, &[Status::Queued], None, false), (1..=6).map(JobId).collect::<Vec<_>>());
        assert_eq!(all(&l, &[Status::Processing], None, false), [JobId(7)]);
        assert_eq!(
            all(&l, &[Status::Queued, Status::Processing], Some(JobId(5)), true),
            [4, 3, 2, 1].map(JobId)
        );
        let page = l.ids(ListedBy::Factory, &["echo".into()], &Status::ALL, Some(JobId(2)), false, 3);
        assert_eq!(page, [3, 4, 5].map(JobId));
        l.apply(JobId(3), "odd", "echo", Some(Status::Queued), None);
        assert_eq!(all(&l, &[Status::Queued], Some(JobId(1)), false), [2, 4, 5, 6].map(JobId));
        assert_eq!(l.queues().len(), 2);
        // Counted by factory, and by factory within a queue (a merge of the two lists).
        assert_eq!(l.count("echo", None, &[Status::Queued], 100), 5);
        assert_eq!(l.count("echo", Some("even"), &[Status::Queued], 100), 3);
        assert_eq!(l.count("echo", Some("odd"), &[Status::Queued, Status::Processing], 100), 3);
        assert_eq!(l.count("echo", None, &Status::ALL, 2), 2, "up to the cap");
        assert_eq!(l.count("other", None, &Status::ALL, 100), 0);
        assert_eq!(l.count("echo", Some("none"), &Status::ALL, 100), 0);
    }
}
