//! Queues paused by operators. A pause is kept in the store (see `QueuePause`): it outlives a
//! restart, and every host sharing the store stops claiming from the queue within a second.
//!
//! **Invariant:** a queue the store holds paused is stopped on this host from start-up on and
//! within [`WATCH_PERIOD`] of the pause on another host; a queue this host stopped *because*
//! of a pause (and only such a queue) starts again when the pause goes, so a host started
//! with `--paused`, or one that runs no workers, is never started by a resume elsewhere.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::error::HostError;
use super::host::Host;
use crate::store::QueuePause;
use crate::sync;

/// How often each host reads the store's pauses (a pause through another host reaches this
/// one within it).
pub const WATCH_PERIOD: Duration = Duration::from_secs(1);

impl Host {
    /// Pauses `queue` on every host sharing the store, until [`resume_queue`](Self::resume_queue),
    /// restarts included: this host stops claiming at once (running jobs finish), the others
    /// within a second. A queue paused already keeps who paused it and when.
    pub fn pause_queue(&self, queue: &str) -> Result<QueuePause, HostError> {
        let pause = QueuePause { queue: queue.to_owned(), by: self.name().to_owned(), at: self.now() };
        let stored = self.inner.shared.store.pause(&pause)?;
        sync::lock(&self.inner.held_by_pause).insert(queue.to_owned());
        self.inner.pool.stop_queue(queue);
        Ok(stored)
    }

    /// Ends `queue`'s pause and starts it on this host (the others start it within a second,
    /// as each stopped it for the pause). False if it was not paused; it starts here anyway.
    pub fn resume_queue(&self, queue: &str) -> Result<bool, HostError> {
        let was = self.inner.shared.store.resume(queue)?;
        sync::lock(&self.inner.held_by_pause).remove(queue);
        self.inner.pool.start_queue(queue);
        Ok(was)
    }

    /// The store's pauses, by queue.
    pub fn pauses(&self) -> Result<Vec<QueuePause>, HostError> {
        Ok(self.inner.shared.store.pauses()?)
    }

    /// Stops the queues the store holds paused and starts the ones this host stopped for a
    /// pause that has gone. Blocks while a stopped queue's claim is in flight.
    pub(super) fn follow_pauses(&self, pauses: &[QueuePause]) {
        let paused: BTreeSet<&str> = pauses.iter().map(|p| p.queue.as_str()).collect();
        let (to_stop, to_start) = {
            let mut held = sync::lock(&self.inner.held_by_pause);
            let to_stop: Vec<String> =
                paused.iter().filter(|q| !held.contains(**q)).map(|q| (*q).to_owned()).collect();
            let to_start: Vec<String> =
                held.iter().filter(|q| !paused.contains(q.as_str())).cloned().collect();
            held.retain(|q| paused.contains(q.as_str()));
            held.extend(to_stop.iter().cloned());
            (to_stop, to_start)
        };
        for queue in &to_stop {
            if let Some(pause) = pauses.iter().find(|p| &p.queue == queue) {
                log::info!(
                    "queue '{queue}' is paused (by {} at {}): not claiming from it",
                    pause.by,
                    crate::clock::rfc3339(pause.at)
                );
            }
            self.inner.pool.stop_queue(queue);
        }
        for queue in &to_start {
            if self.inner.shared.config.queue(queue).autostart {
                log::info!("queue '{queue}' was resumed on another host");
                self.inner.pool.start_queue(queue);
            }
        }
    }

    /// Every [`WATCH_PERIOD`], follows the pauses made through other hosts.
    pub(super) fn spawn_pause_watch(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(WATCH_PERIOD).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                let read = tokio::task::spawn_blocking(move || {
                    let pauses = host.pauses();
                    if let Ok(pauses) = &pauses {
                        host.follow_pauses(pauses);
                    }
                    pauses.map(|_| ())
                })
                .await;
                match read {
                    Ok(Ok(())) => failing = false,
                    // One line per outage, not one a second.
                    Ok(Err(e)) if !failing => {
                        failing = true;
                        log::warn!(
                            "cannot read the paused queues from the store (retrying each second): {e}"
                        );
                    }
                    Ok(Err(_)) => {}
                    Err(e) => log::error!("pause watch task failed: {e}"),
                }
            }
        });
    }
}
