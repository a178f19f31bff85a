//! Throughput history in the store: every [`WRITE_PERIOD`] this host adds what it counted
//! (`crate::history::History`) to the store, and snapshots are read back from the store, so
//! the dashboard's chart and percentiles cover every host sharing it and survive restarts.
//!
//! **Invariant:** a count leaves the host's memory only into the store: rows a write did not
//! take go back for the next one (bounded, see `history::MAX_PENDING`), and a stop writes what
//! is left.

use std::sync::Arc;
use std::time::Duration;

use super::error::HostError;
use super::host::Host;
use crate::history::Snapshot;

/// How often this host adds its counts to the store (how far behind another host's chart is).
pub const WRITE_PERIOD: Duration = Duration::from_secs(5);

impl Host {
    /// The `window` seconds up to now in buckets of `step` seconds (whole minutes, `step`
    /// dividing `window`: the caller checks both), every host's counts from the store plus
    /// this host's not yet written.
    pub fn history(&self, window: i64, step: i64) -> Result<Snapshot, HostError> {
        let now = self.now();
        let from = now.div_euclid(60_000_000) - window / 60;
        let mut rows = self.inner.shared.store.history(from)?;
        rows.extend(self.inner.shared.history.pending());
        Ok(Snapshot::build(rows, now, window, step))
    }

    /// Adds what this host counted to the store; on failure the counts stay for the next try.
    pub(super) fn write_history(&self) -> Result<(), HostError> {
        let rows = self.inner.shared.history.take();
        if rows.is_empty() {
            return Ok(());
        }
        match self.inner.shared.store.add_history(&rows, self.now()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.inner.shared.history.put_back(rows);
                Err(e.into())
            }
        }
    }

    /// Every [`WRITE_PERIOD`], [`write_history`](Self::write_history).
    pub(super) fn spawn_history_writer(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(WRITE_PERIOD).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                match tokio::task::spawn_blocking(move || host.write_history()).await {
                    Ok(Ok(())) => failing = false,
                    // One line per outage; the counts wait in memory meanwhile.
                    Ok(Err(e)) if !failing => {
                        failing = true;
                        log::warn!("cannot add the throughput history to the store (kept, retrying): {e}");
                    }
                    Ok(Err(_)) => {}
                    Err(e) => log::error!("history writer task failed: {e}"),
                }
            }
        });
    }
}

/// How long a stop waits for the last history write at most.
const LAST_WRITE: Duration = Duration::from_secs(5);

impl Host {
    /// The end of a stop: the last seconds' counts into the store, and flushed; bounded, so a
    /// store that is down does not hold up the stop.
    pub(super) async fn write_last_history(&self) {
        let host = self.clone();
        let write = tokio::task::spawn_blocking(move || {
            host.write_history()?;
            Ok::<_, HostError>(host.inner.shared.store.flush()?)
        });
        match tokio::time::timeout(LAST_WRITE, write).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => log::warn!("the last throughput history was not stored: {e}"),
            Ok(Err(e)) => log::warn!("the last throughput history was not stored: {e}"),
            Err(_) => log::warn!("the last throughput history was not stored: the store did not answer"),
        }
    }
}
