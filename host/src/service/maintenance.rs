//! Background upkeep of a running host: the lease reaper (jobs whose worker stopped renewing
//! their lease go back to their queue) and the retention sweeper (finished jobs past their
//! status's retention are deleted). Both hold the host weakly and end when it is dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::error::HostError;
use super::host::Host;
use crate::clock::duration_micros;
use crate::job::{JobId, Status};
use crate::store::Removal;

/// How often a store that cannot write is probed.
const HEAL_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

impl Host {
    /// Requeues jobs whose lease expired (a worker that stopped renewing). Run periodically.
    pub fn recover_expired(&self) -> Result<Vec<JobId>, HostError> {
        Ok(self.inner.shared.store.recover_expired(self.now())?)
    }

    /// Deletes the finished jobs older than their status's retention. Returns counts.
    pub fn sweep_expired(&self) -> Result<BTreeMap<Status, u64>, HostError> {
        let retention = self.inner.shared.config.retention;
        let now = self.now();
        let mut removed = BTreeMap::new();
        for (status, keep) in [
            (Status::Completed, retention.completed),
            (Status::Error, retention.error),
            (Status::Cancelled, retention.cancelled),
        ] {
            if let Some(keep) = keep {
                let before = now.saturating_sub(duration_micros(keep));
                let which =
                    Removal { statuses: vec![status], finished_before: Some(before), ..Removal::default() };
                removed.extend(self.remove(&which)?);
            }
        }
        Ok(removed)
    }

    /// Every half lease, requeues jobs whose worker stopped renewing their lease (with the
    /// embedded store that means a stuck heartbeat; with a shared store, a dead host) and wakes
    /// their queues.
    pub(super) fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.shared.config.lease / 2;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                if let Err(e) = host.beat() {
                    log::error!("cannot tell the store this host is alive: {e}");
                }
                match host.recover_expired() {
                    Ok(ids) if !ids.is_empty() => {
                        log::warn!("requeued {} job(s) whose lease expired: {ids:?}", ids.len());
                        host.inner.pool.wake_all();
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("lease recovery failed: {e}"),
                }
            }
        });
    }

    /// Every `log_summary_interval`, one info line per queue that ended attempts since the
    /// last: how many completed, failed, were retried, were cancelled.
    pub(super) fn spawn_summary(&self) {
        let Some(period) = self.inner.shared.config.log_summary_interval else { return };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                for (queue, t) in inner.pool.take_tally() {
                    let (completed, failed, retried, cancelled) =
                        (t.completed, t.failed, t.retried, t.cancelled);
                    log::info!(
                        queue = queue.as_str(), completed, failed, retried, cancelled;
                        "queue '{queue}' in the last {}: {completed} completed, {failed} failed, {retried} retried, {cancelled} cancelled",
                        humantime::format_duration(period)
                    );
                }
            }
        });
    }

    /// Every second while the store cannot write (a full disk), asks it to heal: writes resume
    /// once space is back, without a restart. Queues are woken then, as their claims failed.
    pub(super) fn spawn_healer(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEAL_PERIOD).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.shared.store.unwritable().is_none() {
                    continue;
                }
                let host = Host { inner };
                let store = host.inner.shared.store.clone();
                match tokio::task::spawn_blocking(move || store.heal()).await {
                    Ok(Ok(true)) => host.inner.pool.wake_all(),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => log::error!("the store could not be reopened: {e}"),
                    Err(e) => log::error!("store healing task failed: {e}"),
                }
            }
        });
    }

    /// Every `retention.sweep_interval`, deletes expired finished jobs and idempotency keys.
    pub(super) fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.shared.config.retention.sweep_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                let keys = host.clone();
                match tokio::task::spawn_blocking(move || keys.forget_expired_keys()).await {
                    Ok(Ok(n)) if n > 0 => log::debug!("{n} expired idempotency key(s) deleted"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("idempotency key sweep failed: {e}"),
                    Err(e) => log::error!("idempotency key sweep task failed: {e}"),
                }
                match tokio::task::spawn_blocking(move || host.sweep_expired()).await {
                    Ok(Ok(removed)) if !removed.is_empty() => {
                        log::info!("retention: removed {removed:?} finished job(s)")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::error!("retention sweep failed: {e}"),
                    Err(e) => log::error!("retention sweep task failed: {e}"),
                }
            }
        });
    }
}
