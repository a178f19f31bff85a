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
//!
//! The ids present once (nearly all of them) are kept compressed (a roaring bitmap: ids are
//! handed out in order, so a status's ids are mostly runs); a `BTreeMap` entry per id cost
//! ~50 MB at 1,000,000 jobs. The rare ids whose presence is not 1 (a transition's two halves
//! counted out of order) sit beside them in a small map.

use std::collections::{BTreeMap, HashMap};
use std::iter::Peekable;

use roaring::RoaringTreemap;

use crate::job::{JobId, Status};

/// Which name a listing is kept by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListedBy {
    Queue,
    Factory,
}

/// Per status, the ids and their signed presence.
type ByStatus = [Ids; Status::ALL.len()];

/// One (name, status)'s ids and their signed presence: 1 in `once`; any other non-zero value
/// in `other`; absent, 0. An id is never in both.
#[derive(Default)]
struct Ids {
    once: RoaringTreemap,
    other: BTreeMap<u64, i32>,
}

impl Ids {
    fn bump(&mut self, id: u64, by: i32) {
        let now = if self.once.remove(id) { 1 } else { self.other.remove(&id).unwrap_or(0) };
        match now + by {
            0 => {}
            1 => {
                self.once.insert(id);
            }
            n => {
                self.other.insert(id, n);
            }
        }
    }

    /// The listed ids (presence above 0) past `after`, ascending.
    fn ascending(&self, after: Option<u64>) -> impl Iterator<Item = u64> + '_ {
        let mut once = self.once.iter();
        if let Some(after) = after {
            once.advance_to(after.saturating_add(1));
        }
        let other: Vec<u64> = self.other.iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id).collect();
        let past = move |id: &u64| after.is_none_or(|after| *id > after);
        Merge {
            a: once.filter(past).peekable(),
            b: other.into_iter().filter(past).peekable(),
            descending: false,
        }
    }

    /// The listed ids below `before`, descending.
    fn descending(&self, before: Option<u64>) -> impl Iterator<Item = u64> + '_ {
        let mut once = self.once.iter();
        if let Some(before) = before {
            once.advance_back_to(before.saturating_sub(1));
        }
        let other: Vec<u64> = self.other.iter().rev().filter(|(_, n)| **n > 0).map(|(id, _)| *id).collect();
        let below = move |id: &u64| before.is_none_or(|before| *id < before);
        Merge {
            a: once.rev().filter(below).peekable(),
            b: other.into_iter().filter(below).peekable(),
            descending: true,
        }
    }
}

/// Two id sequences, both ascending (or both descending), as one in the same order.
struct Merge<A: Iterator<Item = u64>, B: Iterator<Item = u64>> {
    a: Peekable<A>,
    b: Peekable<B>,
    descending: bool,
}

impl<A: Iterator<Item = u64>, B: Iterator<Item = u64>> Iterator for Merge<A, B> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) => (a < b) != self.descending,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

#[derive(Default)]
pub(super) struct Listing {
    queues: HashMap<String, ByStatus>,
    factories: HashMap<String, ByStatus>,
}

fn slot(status: Status) -> usize {
    Status::ALL.iter().position(|s| *s == status).unwrap_or(0)
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
                statuses[slot(from)].bump(id.0, -1);
            }
            if let Some(to) = to {
                statuses[slot(to)].bump(id.0, 1);
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
            let of_factory = by_factory[slot(*status)].ascending(None);
            let left = usize::try_from(cap - n).unwrap_or(usize::MAX);
            n += match by_queue {
                None => of_factory.take(left).count() as u64,
                // Both in id order: a merge, no copy of either.
                Some(lists) => {
                    let mut of_queue = lists[slot(*status)].ascending(None).peekable();
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
        let mut ids: Vec<u64> = Vec::new();
        for name in names {
            let Some(lists) = table.get(name) else { continue };
            for status in statuses {
                let list = &lists[slot(*status)];
                let after = after.map(|a| a.0);
                // Each list gives at most `n`: the page's ids are among them.
                if newest_first {
                    ids.extend(list.descending(after).take(n));
                } else {
                    ids.extend(list.ascending(after).take(n));
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

    #[test]
    fn compressed_ids_list_what_a_signed_map_would_in_both_directions_from_any_cursor() {
        // Against the plain model (a signed count per id): random bumps, mostly +1 then -1 as
        // transitions make them, some out of order, over runs and scattered ids, some past
        // 2^32 (the bitmap's halves) and at the ends of the id range.
        let mut ids = Ids::default();
        let mut model: BTreeMap<u64, i32> = BTreeMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pool: Vec<u64> =
            (1..400).chain((1 << 32) - 5..(1 << 32) + 5).chain([0, 77_777, u64::MAX - 1, u64::MAX]).collect();
        for _ in 0..20_000 {
            let id = pool[(random() % pool.len() as u64) as usize];
            let by = if random() % 5 == 0 { -1 } else { 1 };
            let by = if model.get(&id).copied().unwrap_or(0) > 0 && random() % 2 == 0 { -1 } else { by };
            ids.bump(id, by);
            let n = model.entry(id).or_insert(0);
            *n += by;
            if *n == 0 {
                model.remove(&id);
            }
        }
        assert!(!ids.other.is_empty() && ids.once.len() > 100, "both kinds of presence were made");
        let listed: Vec<u64> = model.iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id).collect();
        for cursor in [None, Some(0), Some(1), Some(200), Some(1 << 32), Some(77_777), Some(u64::MAX)] {
            let up: Vec<u64> = listed.iter().copied().filter(|id| cursor.is_none_or(|c| *id > c)).collect();
            assert_eq!(ids.ascending(cursor).collect::<Vec<_>>(), up, "after {cursor:?}");
            let down: Vec<u64> =
                listed.iter().rev().copied().filter(|id| cursor.is_none_or(|c| *id < c)).collect();
            assert_eq!(ids.descending(cursor).collect::<Vec<_>>(), down, "before {cursor:?}");
        }
        // Back to nothing: every id bumped down to zero leaves both parts empty.
        for (id, n) in model {
            ids.bump(id, -n);
        }
        assert!(ids.once.is_empty() && ids.other.is_empty());
    }
}
