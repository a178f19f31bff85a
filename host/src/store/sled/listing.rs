//! Reading the `listing` index: the ids under several (name, status) prefixes merged into one
//! id order, ascending or descending, from a cursor. A page of a filtered list is then a few
//! range reads however many jobs the store holds.
//!
//! **Invariant:** ids come out strictly in the requested order, each once (a job has one
//! entry per prefix kind, and the prefixes merged here are of one kind).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::keys;
use crate::job::JobId;
use crate::store::error::StoreResult;

type Entries = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

pub(super) struct Merge {
    ranges: Vec<Entries>,
    /// The next id of each range, keyed so that the heap's top is the next to hand out.
    heads: BinaryHeap<(Key, usize)>,
    started: bool,
    newest_first: bool,
}

/// Ascending lists pop the lowest id first, descending the highest.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Up(Reverse<u64>),
    Down(u64),
}

impl Merge {
    /// The ids under `prefixes` past `after` (below it when `newest_first`, else above).
    pub fn new(tree: &sled::Tree, prefixes: Vec<Vec<u8>>, after: Option<JobId>, newest_first: bool) -> Self {
        let ranges = prefixes
            .into_iter()
            .map(|prefix| {
                let at = |id: u64| [prefix.as_slice(), &keys::id_key(id)].concat();
                let entries: Entries = match (after, newest_first) {
                    (None, false) => Box::new(tree.range(at(0)..=at(u64::MAX))),
                    (None, true) => Box::new(tree.range(at(0)..=at(u64::MAX)).rev()),
                    (Some(a), true) => Box::new(tree.range(at(0)..at(a.0)).rev()),
                    (Some(a), false) if a.0 == u64::MAX => Box::new(std::iter::empty()),
                    (Some(a), false) => Box::new(tree.range(at(a.0 + 1)..=at(u64::MAX))),
                };
                entries
            })
            .collect();
        Merge { ranges, heads: BinaryHeap::new(), started: false, newest_first }
    }

    /// Reads range `i`'s next id into the heap.
    fn advance(&mut self, i: usize) -> StoreResult<()> {
        if let Some(entry) = self.ranges[i].next() {
            let (key, _) = entry?;
            let id = key.len().checked_sub(8).and_then(|at| keys::id_from(&key[at..])).unwrap_or_default().0;
            let key = if self.newest_first { Key::Down(id) } else { Key::Up(Reverse(id)) };
            self.heads.push((key, i));
        }
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = StoreResult<JobId>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.ranges.len() {
                if let Err(e) = self.advance(i) {
                    return Some(Err(e));
                }
            }
        }
        let (key, i) = self.heads.pop()?;
        if let Err(e) = self.advance(i) {
            return Some(Err(e));
        }
        Some(Ok(JobId(match key {
            Key::Up(Reverse(id)) | Key::Down(id) => id,
        })))
    }
}
