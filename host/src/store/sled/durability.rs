//! Group commit: writers that need their change on disk wait for a flush that began after
//! their write; whoever arrives while no flush runs leads the next one, covering every write
//! made so far. Batches grow by themselves under load (everyone who arrives during a flush
//! shares the next one) and shrink to one when idle, with no timer and no extra thread.
//!
//! [`Combiner`] does the same one step earlier, for transactions: a sled transaction costs
//! its concurrency lock, its atomicity marker and its flush whatever its size, so concurrent
//! additions are committed together, in one transaction led by whoever arrives while none is
//! committing.

use crate::sync;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Writes announced so far (each writer takes the next number).
    written: u64,
    /// All writes up to this number are on disk.
    flushed: u64,
    flushing: bool,
}

pub struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    pub fn new() -> Self {
        GroupCommit { state: Mutex::new(State::default()), done: Condvar::new() }
    }

    /// Call after a write has been applied; returns once it is durable. `flush` writes
    /// everything applied so far to disk.
    pub fn wait_durable<E>(&self, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        // The state is a few counters, consistent at every await point: a panic elsewhere
        // while holding the lock cannot leave it torn, so poisoning is ignored.
        let mut state = sync::lock(&self.state);
        state.written += 1;
        let mine = state.written;
        while state.flushed < mine {
            if state.flushing {
                state = sync::wait(&self.done, state);
                continue;
            }
            state.flushing = true;
            let covers = state.written;
            drop(state);
            let result = flush();
            state = sync::lock(&self.state);
            state.flushing = false;
            if result.is_ok() {
                state.flushed = state.flushed.max(covers);
            }
            self.done.notify_all();
            result?;
        }
        Ok(())
    }
}

/// Concurrent items committed together: each caller queues its item and waits until a
/// commit covering it has ended; whoever arrives while no commit runs leads the next one,
/// taking every item queued so far.
pub struct Combiner<T> {
    state: Mutex<Pending<T>>,
    done: Condvar,
}

struct Pending<T> {
    items: Vec<T>,
    /// Tickets issued so far; the queued items hold tickets `settled..issued` in order.
    issued: u64,
    /// Every ticket below this has been committed or has failed.
    settled: u64,
    committing: bool,
    /// The error of each ticket whose commit failed, until its caller takes it.
    failed: HashMap<u64, sled::Error>,
}

impl<T: Clone> Combiner<T> {
    pub fn new() -> Self {
        let pending =
            Pending { items: Vec::new(), issued: 0, settled: 0, committing: false, failed: HashMap::new() };
        Combiner { state: Mutex::new(pending), done: Condvar::new() }
    }

    /// Queues the item `make` builds (under the queue's lock, so what it numbers is numbered in
    /// commit order) and returns it once `commit` has committed it.
    pub fn submit(
        &self,
        make: impl FnOnce() -> T,
        commit: impl Fn(&[T]) -> Result<(), sled::Error>,
    ) -> Result<T, sled::Error> {
        // Counters and a queue, consistent at every await point: poisoning is ignored, as in
        // `GroupCommit`.
        let mut state = sync::lock(&self.state);
        let ticket = state.issued;
        state.issued += 1;
        let item = make();
        state.items.push(item.clone());
        while state.settled <= ticket {
            if state.committing {
                state = sync::wait(&self.done, state);
                continue;
            }
            state.committing = true;
            let batch = std::mem::take(&mut state.items);
            let first = state.settled;
            drop(state);
            let result = commit(&batch);
            state = sync::lock(&self.state);
            state.committing = false;
            let end = first + batch.len() as u64;
            if let Err(e) = result {
                state.failed.extend((first..end).map(|t| (t, e.clone())));
            }
            state.settled = end;
            self.done.notify_all();
        }
        match state.failed.remove(&ticket) {
            Some(e) => Err(e),
            None => Ok(item),
        }
    }
}

impl<T: Clone> Default for Combiner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_share_flushes_and_all_return_durable() {
        let group = Arc::new(GroupCommit::new());
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, flushes) = (group.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        group
                            .wait_durable(|| {
                                flushes.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok::<(), ()>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = sync::lock(&group.state);
        assert_eq!((state.written, state.flushed), (800, 800));
        assert!(flushes.load(Ordering::SeqCst) <= 800);
    }

    #[test]
    fn concurrent_items_are_committed_together_in_order_and_failures_reach_their_callers() {
        let combiner = Arc::new(Combiner::<u64>::new());
        let next = Arc::new(AtomicU64::new(0));
        let committed = Arc::new(Mutex::new(Vec::<Vec<u64>>::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (combiner, next, committed) = (combiner.clone(), next.clone(), committed.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..50 {
                        let item = combiner.submit(
                            || next.fetch_add(1, Ordering::SeqCst),
                            |batch| {
                                std::thread::sleep(std::time::Duration::from_micros(300));
                                sync::lock(&committed).push(batch.to_vec());
                                // Item 77's whole batch fails.
                                if batch.contains(&77) {
                                    Err(sled::Error::Unsupported("no".into()))
                                } else {
                                    Ok(())
                                }
                            },
                        );
                        mine.push(item);
                    }
                    mine
                })
            })
            .collect();
        let results: Vec<Result<u64, sled::Error>> =
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let batches = sync::lock(&committed).clone();
        let flat: Vec<u64> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, (0..400).collect::<Vec<_>>(), "every item once, in order");
        assert!(batches.len() < 400, "some batches held more than one item");
        let failed_batch = batches.iter().find(|b| b.contains(&77)).unwrap();
        for item in results.iter().flatten() {
            assert!(!failed_batch.contains(item));
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), failed_batch.len());
        assert!(sync::lock(&combiner.state).failed.is_empty());
    }

    #[test]
    fn a_failed_flush_is_reported_and_not_counted() {
        let group = GroupCommit::new();
        assert_eq!(group.wait_durable(|| Err("disk full")), Err("disk full"));
        assert_eq!(sync::lock(&group.state).flushed, 0);
        assert_eq!(group.wait_durable(|| Ok::<(), &str>(())), Ok(()));
    }
}
