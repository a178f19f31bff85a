//! Group commit: writers that need their change on disk wait for a flush that began after
//! their write; whoever arrives while no flush runs leads the next one, covering every write
//! made so far. Batches grow by themselves under load (everyone who arrives during a flush
//! shares the next one) and shrink to one when idle, with no timer and no extra thread.

use std::sync::{Condvar, Mutex, PoisonError};

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
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.written += 1;
        let mine = state.written;
        while state.flushed < mine {
            if state.flushing {
                state = self.done.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.flushing = true;
            let covers = state.written;
            drop(state);
            let result = flush();
            state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
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
        let state = group.state.lock().unwrap();
        assert_eq!((state.written, state.flushed), (800, 800));
        assert!(flushes.load(Ordering::SeqCst) <= 800);
    }

    #[test]
    fn a_failed_flush_is_reported_and_not_counted() {
        let group = GroupCommit::new();
        assert_eq!(group.wait_durable(|| Err("disk full")), Err("disk full"));
        assert_eq!(group.state.lock().unwrap().flushed, 0);
        assert_eq!(group.wait_durable(|| Ok::<(), &str>(())), Ok(()));
    }
}
