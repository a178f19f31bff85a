//! Every flush of the store, and the thread that flushes it when nobody else has for an
//! interval.
//!
//! sled's own flusher thread (`flush_every_ms`) is off. Between flushes it also runs sled's
//! segment cleaner, and after a burst (measured: 40,000 jobs added and drained through the
//! HTTP API) that cleaner keeps relocating the same segments for as long as the process
//! lives: 5 MB/s written and several percent of a CPU on a host with nothing to do, while the
//! file does not shrink. Without the cleaner, a segment is still reused once every page in it
//! has been replaced or freed, which a queue's churn does.
//!
//! So the store flushes through [`Flushes`] alone: writers that need their change on disk
//! (group commit), claimers that must not run ahead of the disk (`pace`), and [`Flusher`],
//! which keeps the promise that lazy changes (outcomes, progress, journaled claims) reach the
//! disk within the interval, and does nothing while writers flush more often than that.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::durability::GroupCommit;
use super::health::Health;
use super::state_file::{Progress, StateFile};
use super::tx::Trees;
use crate::sync;

pub struct Flushes {
    db: sled::Db,
    /// Told when a flush fails: sled fails every later write the same way (see `health`).
    health: Arc<Health>,
    group: GroupCommit,
    /// When the last flush began.
    last: Mutex<Instant>,
    interval: Duration,
    /// The state file, once the store has been checked against it (see `state_file`).
    state: Mutex<Option<StateKeeper>>,
}

impl Flushes {
    pub fn new(db: sled::Db, interval: Duration, health: Arc<Health>) -> Self {
        Flushes {
            db,
            health,
            group: GroupCommit::new(),
            last: Mutex::new(Instant::now()),
            interval,
            state: Mutex::new(None),
        }
    }

    /// From now on, the state file follows the store (see [`Flushes::checkpoint_state`]).
    pub fn keep_state(&self, keeper: StateKeeper) {
        *sync::lock(&self.state) = Some(keeper);
    }

    /// Writes the store's progress to the state file if it moved, once a flush covers it.
    pub fn checkpoint_state(&self) {
        // A plain struct replaced whole: poisoning cannot tear it.
        if let Some(keeper) = sync::lock(&self.state).as_mut() {
            keeper.checkpoint(|| self.durable());
        }
    }

    /// Returns once every change applied so far is on disk, sharing the flush with concurrent
    /// callers.
    pub fn durable(&self) -> sled::Result<()> {
        self.group.wait_durable(|| {
            // Once a write failed, sled fails every flush that has something to write, and a
            // flush can even wait forever for a write that will never come (see `kick`): fail
            // at once instead.
            if let Some(e) = self.health.error() {
                return Err(e);
            }
            // An instant: poisoning cannot tear it.
            *sync::lock(&self.last) = Instant::now();
            self.db.flush().map(|_| ()).inspect_err(|e| self.health.fail(e))
        })
    }

    /// Wakes flushes stuck in sled after a failed write. sled 0.34 records some write errors
    /// without waking the flushes waiting for that write (measured: the flush thread waited
    /// forever after a disk filled up, and with it every writer and the shutdown); a new
    /// flush sees the error and wakes every waiter on its way out.
    pub fn kick(&self) {
        let _ = self.db.flush();
    }

    pub fn kick_if_failed(&self) {
        if self.health.error().is_some() {
            self.kick();
        }
    }

    /// How long until a flush is due (zero when it is).
    fn due_in(&self) -> Duration {
        let since = sync::lock(&self.last).elapsed();
        self.interval.saturating_sub(since)
    }

    /// Flushes if none began within the interval. sled writes behind: a drain faster than the
    /// disk piles up seconds of unwritten buffers (measured: 5 s behind after 20,000 jobs), so
    /// claimers call this to wait for a flush (shared with any other claimer) once an interval,
    /// which paces the drain to what the disk sustains.
    pub fn pace(&self) -> sled::Result<()> {
        if self.due_in().is_zero() {
            self.durable()?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn last(&self) -> Instant {
        *sync::lock(&self.last)
    }
}

/// How often the state file is brought up to date while the store changes.
const STATE_EVERY: Duration = Duration::from_secs(1);

/// Keeps the state file (see `state_file`) behind the store: what it writes down was read
/// before a flush that succeeded, so the file never claims more than the disk holds.
pub struct StateKeeper {
    file: StateFile,
    trees: Trees,
    written: Progress,
}

impl StateKeeper {
    /// `written`: what the file says now.
    pub fn new(file: StateFile, trees: Trees, written: Progress) -> StateKeeper {
        StateKeeper { file, trees, written }
    }

    fn checkpoint(&mut self, durable: impl FnOnce() -> sled::Result<()>) {
        // Never lowered: progress only grows, so a store that seems behind is one that lost
        // data, which the file must go on saying.
        let Ok(progress) = self.trees.progress().map(|p| p.max(self.written)) else { return };
        if progress == self.written || durable().is_err() {
            return;
        }
        match self.file.write(progress) {
            Ok(()) => self.written = progress,
            Err(e) => log::warn!("{e}"),
        }
    }
}

/// The thread that calls [`Flushes::pace`] whenever a flush falls due and brings the state
/// file up to date every second; stopped and joined on drop, after one last flush.
pub struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(flushes: Arc<Flushes>) -> std::io::Result<Flusher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new().name("jobhost-flush".to_owned()).spawn(move || {
            let (stopped, wake) = &*signal;
            let mut stopped_now = sync::lock(stopped);
            let mut state_due = Instant::now() + STATE_EVERY;
            while !*stopped_now {
                let wait = flushes.due_in();
                if Instant::now() >= state_due {
                    drop(stopped_now);
                    flushes.checkpoint_state();
                    state_due = Instant::now() + STATE_EVERY;
                    stopped_now = sync::lock(stopped);
                } else if wait.is_zero() {
                    drop(stopped_now);
                    // Nobody waits on this flush: a failure is recorded in the store's health
                    // (and logged there once), and the next writer's flush reports it.
                    let _ = flushes.pace();
                    stopped_now = sync::lock(stopped);
                } else {
                    stopped_now = sync::wait_timeout(wake, stopped_now, wait.min(STATE_EVERY));
                }
            }
            drop(stopped_now);
            flushes.checkpoint_state();
            // A store that cannot write has said so already (see `health`).
            if let Err(e) = flushes.durable() {
                if flushes.health.error().is_none() {
                    log::warn!("last store flush failed: {}", crate::store::error::sled_words(&e));
                }
            }
        })?;
        Ok(Flusher { stop, thread: Some(thread) })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *sync::lock(stopped) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // a bare database under the flusher, without a store
    fn db(dir: &tempfile::TempDir) -> sled::Db {
        sled::Config::new().path(dir.path()).flush_every_ms(None).open().unwrap()
    }

    #[test]
    fn pace_flushes_only_once_the_interval_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let flushes = Flushes::new(db(&dir), Duration::from_millis(50), Arc::default());
        let before = flushes.last();
        flushes.pace().unwrap();
        assert_eq!(flushes.last(), before, "not due yet");
        std::thread::sleep(Duration::from_millis(60));
        flushes.pace().unwrap();
        assert!(flushes.last() > before, "due: flushed");
    }

    #[test]
    fn the_flusher_puts_a_lazy_write_on_disk_within_the_interval_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir);
        let flushes = Arc::new(Flushes::new(db.clone(), Duration::from_millis(20), Arc::default()));
        let flusher = Flusher::start(flushes.clone()).unwrap();
        db.insert(b"k", b"v").unwrap();
        let written = Instant::now();
        // Generous: the thread needs only the interval, a loaded machine may need more.
        let deadline = written + Duration::from_secs(10);
        while flushes.last() <= written {
            assert!(Instant::now() < deadline, "no flush within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(flusher);
        assert_eq!(Arc::strong_count(&flushes), 1, "the thread is gone");
    }
}
