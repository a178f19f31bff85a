//! The `Host`: the one door to a running job host for the API, the CLI and the scheduler.
//! Reads, cancel, retry, start, removal, queues, metrics, plugins and shutdown are here;
//! adding jobs is `admission`'s, schedules `schedules`', background upkeep `maintenance`'s.
//!
//! **Invariant:** callers reach the store, the worker pool and the plugin registry only
//! through these methods; every change is published as an event after the store recorded it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

use super::error::HostError;
use crate::clock::{Clock, Micros};
use crate::events::JobEvent;
use crate::job::{Job, JobId, Refused, Status};
use crate::metrics::{PluginGauges, QueueGauges};
use crate::plugins::{Catalog, Registry};
use crate::processor::{Plugins, Pool, ProcessorConfig, QueueInfo, RunError, Shared, Shutdown, WorkerStatus};
use crate::store::{Cancelled, ClaimFilter, ListFilter, Notice, Removal, Store};
use crate::sync;

/// The job host: store, factories, clock, worker pool and scheduler state. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    pub(super) inner: Arc<HostInner>,
}

/// What a `Host` shares; background tasks hold it weakly, so they end with the last `Host`.
pub(super) struct HostInner {
    pub shared: Arc<Shared>,
    pub pool: Pool,
    /// Woken when a schedule changes, so the scheduler loop recomputes its sleep.
    pub schedules_changed: Notify,
    /// This host among the hosts sharing the store.
    pub me: crate::store::HostRecord,
    /// Queues this host stopped because the store holds them paused (see `pauses`).
    pub held_by_pause: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Bulk operations started here (see `operations`).
    pub operations: super::bulk::Operations,
}

impl Host {
    /// A host running its plugins in this process (`isolation = "none"`); see [`Host::with_plugins`].
    pub fn new(
        store: Arc<dyn Store>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        config: ProcessorConfig,
    ) -> Result<Self, HostError> {
        Host::with_plugins(store, Plugins::in_process(registry), clock, config)
    }

    /// Builds the host and recovers the jobs a dead host left `processing`.
    pub fn with_plugins(
        store: Arc<dyn Store>,
        plugins: Plugins,
        clock: Arc<dyn Clock>,
        config: ProcessorConfig,
    ) -> Result<Self, HostError> {
        let recovered = store.recover_all(clock.now())?;
        if !recovered.is_empty() {
            log::warn!(
                "recovered {} job(s) that were running when the host stopped: {recovered:?}",
                recovered.len()
            );
        }
        let me = crate::store::HostRecord::this_process(config.host_name.as_deref(), clock.now());
        let shared = Arc::new(Shared::new(store, plugins, clock, config));
        let inner = HostInner {
            pool: Pool::new(shared.clone()),
            shared,
            schedules_changed: Notify::new(),
            me,
            held_by_pause: Default::default(),
            operations: Default::default(),
        };
        let host = Host { inner: Arc::new(inner) };
        // Jobs made ready by other hosts sharing the store wake this one's workers; a cancel
        // requested through another host reaches the job running here.
        let weak = Arc::downgrade(&host.inner);
        host.inner.shared.store.on_notice(Arc::new(move |notice: Notice| {
            let Some(inner) = weak.upgrade() else { return };
            match notice {
                Notice::Ready(Some(queue)) if crate::job::is_valid_name(&queue) => inner.pool.wake(&queue),
                Notice::Ready(Some(_)) => {} // not a queue any host could have made
                Notice::Ready(None) => inner.pool.wake_all(),
                Notice::Cancel(id) => inner.pool.cancel_running(id),
            }
        }));
        // Registered before it claims anything, so its claims carry its name. A configured
        // name a live host already uses would make the two indistinguishable.
        if host.inner.shared.config.host_name.is_some() {
            let me = &host.inner.me;
            let taken =
                host.inner.shared.store.hosts()?.into_iter().find(|h| h.name == me.name && h.pid != me.pid);
            if let Some(other) = taken {
                let lease = crate::clock::duration_micros(host.inner.shared.config.lease);
                // The same machine, and no such process: it crashed (a restart comes here).
                let gone = other.machine == me.machine && !process_alive(other.pid);
                if gone {
                    log::info!(
                        "host_name `{}`: its previous holder (pid {} on this machine) is gone; taking the name over",
                        me.name,
                        other.pid
                    );
                } else if other.heartbeat_at >= host.now().saturating_sub(lease) {
                    return Err(HostError::Store(crate::store::StoreError::Unusable(format!(
                        "host_name `{}` is in use by a live host (pid {}, last heartbeat {}): give each host a name of its own",
                        me.name,
                        other.pid,
                        crate::clock::rfc3339(other.heartbeat_at)
                    ))));
                }
            }
        }
        host.beat()?;
        Ok(host)
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.shared.clock
    }

    pub(super) fn now(&self) -> Micros {
        self.inner.shared.now()
    }

    /// `GET /metrics`: the exposition with the store's current counts and the queues' workers.
    pub fn render_metrics(&self) -> Result<String, HostError> {
        let counts = self.inner.shared.store.counts()?;
        let queues: Vec<QueueGauges> = self
            .inner
            .pool
            .queues(&counts)
            .into_iter()
            .map(|q| QueueGauges { queue: q.name, stuck: q.stuck })
            .collect();
        let catalog = self.catalog();
        let plugins = PluginGauges {
            loaded: catalog.plugins.len(),
            rejected: catalog.rejected.len(),
            conflicts: catalog.conflicts.len(),
        };
        let workers: Vec<&'static str> = self.workers().iter().map(|w| w.state.as_str()).collect();
        Ok(self.inner.shared.metrics.render(&counts, &queues, &workers, plugins))
    }

    /// What is known of the plugins: plugins, factories, rejected files, conflicts.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.inner.shared.catalog()
    }

    /// Whether plugin code runs in worker processes.
    pub fn isolated(&self) -> bool {
        sync::read(&self.inner.shared.plugins).is_isolated()
    }

    /// Loads the plugin directories afresh (SIGHUP): with worker processes, every worker is
    /// replaced between jobs by one that loaded them anew, so a replaced plugin file runs its
    /// new code from the next job on; in this process, files that appeared are loaded. Factories
    /// already loaded keep their files against new ones. Returns the factories added and removed.
    pub fn reload_plugins(&self, dirs: &[PathBuf]) -> Result<(Vec<String>, Vec<String>), HostError> {
        let (before, after) = sync::write(&self.inner.shared.plugins)
            .reload(dirs)
            .map_err(|e| HostError::NoWorker(e.to_string()))?;
        for rejection in &after.rejected {
            log::warn!("plugin rejected: {rejection}");
        }
        for conflict in &after.conflicts {
            log::warn!("plugin conflict: {conflict}");
        }
        // Idle workers roll as soon as they look for work; busy ones after their job. The new
        // set shows once no job can start on the old one any more: jobs sent ahead to workers
        // of the old set are back or started by then.
        self.inner.pool.plugins_reloaded();
        sync::write(&self.inner.shared.plugins).publish(after.clone());
        Ok(before.changes_to(&after))
    }

    /// Queues a `held` (or `scheduled`) job now.
    pub fn start(&self, id: JobId) -> Result<Job, HostError> {
        let job = self.inner.shared.store.start(id, self.now())?;
        self.announce(&job);
        Ok(job)
    }

    /// Turns due `scheduled` jobs (and due retries) `queued`, and wakes the queues if any were.
    pub fn promote_due(&self) -> Result<usize, HostError> {
        let promoted = self.inner.shared.store.promote_due(self.now())?;
        if promoted > 0 {
            self.inner.pool.wake_all();
        }
        Ok(promoted)
    }

    /// A job stored or changed here: publish it and wake its queue.
    pub(super) fn announce(&self, job: &Job) {
        self.inner.shared.events.publish(job);
        self.inner.pool.wake(&job.queue);
    }

    /// Starts the background upkeep: the lease reaper (which also beats for this host), the
    /// retention sweeper, the log summary and the healer. Needs a Tokio runtime.
    pub fn start_upkeep(&self) {
        self.spawn_reaper();
        self.spawn_sweeper();
        self.spawn_summary();
        self.spawn_healer();
        self.spawn_pause_watch();
        self.spawn_history_writer();
    }

    /// Starts the configured queues that autostart, and those the store holds jobs of (unless
    /// every queue is told not to autostart). Needs a Tokio runtime.
    pub fn start_queues(&self) {
        let stored = match self.inner.shared.store.counts() {
            Ok(counts) => counts.into_keys().collect(),
            Err(e) => {
                log::warn!("cannot read the store's queues to start them: {e}");
                Vec::new()
            }
        };
        // Paused queues are stopped first, so not one claim is made from them.
        match self.pauses() {
            Ok(pauses) => self.follow_pauses(&pauses),
            Err(e) => log::warn!("cannot read the paused queues (each is stopped once read): {e}"),
        }
        let held = sync::lock(&self.inner.held_by_pause).clone();
        self.inner.pool.start_configured(&stored, &held);
    }

    /// Starts processing `name` (no-op if it runs). Stopped queues still accept jobs.
    pub fn start_queue(&self, name: &str) {
        self.inner.pool.start_queue(name);
    }

    /// Stops claiming from `name`; its running jobs finish. Returns once no claim of this
    /// queue is in flight.
    pub fn stop_queue(&self, name: &str) {
        self.inner.pool.stop_queue(name);
    }

    pub fn is_processing(&self, name: &str) -> bool {
        self.inner.pool.is_processing(name)
    }

    /// Every queue that is configured, in use, or holds jobs.
    pub fn queues(&self) -> Result<Vec<QueueInfo>, HostError> {
        let mut queues = self.inner.pool.queues(&self.inner.shared.store.counts()?);
        for pause in self.pauses()? {
            match queues.binary_search_by(|q| q.name.cmp(&pause.queue)) {
                Ok(i) => queues[i].paused = Some(pause),
                // Paused on another host before this one knew of it.
                Err(i) => queues
                    .insert(i, QueueInfo { paused: Some(pause.clone()), ..QueueInfo::named(&pause.queue) }),
            }
        }
        Ok(queues)
    }

    /// Claims the next ready job matching `filter` and runs it to its end on this task
    /// (m01.remote's `processNextJob`). `None` when nothing is ready.
    pub async fn process_next(&self, filter: ClaimFilter<'_>) -> Result<Option<Job>, HostError> {
        match self.inner.pool.process_next(filter).await {
            Ok(job) => Ok(job),
            Err(RunError::Store(e)) => Err(e.into()),
            Err(RunError::NoWorker(why)) => Err(HostError::NoWorker(why)),
        }
    }

    pub fn get(&self, id: JobId) -> Result<Option<Job>, HostError> {
        Ok(self.inner.shared.store.get(id)?)
    }

    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, HostError> {
        // A name no job can have matches nothing (and never reaches a store that could
        // choke on it, such as a NUL for PostgreSQL).
        let impossible =
            |name: &Option<String>| name.as_deref().is_some_and(|n| !crate::job::is_valid_name(n));
        if impossible(&filter.factory) || impossible(&filter.queue) {
            return Ok(Vec::new());
        }
        Ok(self.inner.shared.store.list(filter)?)
    }

    /// The jobs of `factory` (within `queue`, if given) in `statuses` (any when empty), counted
    /// up to `cap`.
    pub fn count_of_factory(
        &self,
        factory: &str,
        queue: Option<&str>,
        statuses: &[Status],
        cap: u64,
    ) -> Result<u64, HostError> {
        let valid = crate::job::is_valid_name(factory) && queue.is_none_or(crate::job::is_valid_name);
        if !valid {
            return Ok(0);
        }
        Ok(self.inner.shared.store.count_of_factory(factory, queue, statuses, cap)?)
    }

    /// Cancels a waiting job now; a running one gets its cancellation flag set and ends
    /// `cancelled` when its factory returns.
    pub fn cancel(&self, id: JobId) -> Result<Job, HostError> {
        match self.inner.shared.store.cancel(id, self.now())? {
            Cancelled::Now(job) => {
                self.inner.shared.events.publish(&job);
                Ok(job)
            }
            Cancelled::Requested(job) => {
                self.inner.pool.cancel_running(id);
                Ok(job)
            }
        }
    }

    /// Sends a job in `error` or `cancelled` back to `queued` with fresh attempts.
    pub fn retry(&self, id: JobId) -> Result<Job, HostError> {
        let job = self.inner.shared.store.retry(id, None, self.now())?;
        self.announce(&job);
        Ok(job)
    }

    /// Retries every job in `statuses` (`error`, `cancelled`: all are checked before any is
    /// retried) of `queue` and `factory` (each when given), a page at a time; how many were
    /// retried. A job another caller retried or removed meanwhile is skipped.
    pub fn retry_all(
        &self,
        statuses: &[Status],
        queue: Option<String>,
        factory: Option<String>,
    ) -> Result<u64, HostError> {
        if let Some(other) = statuses.iter().find(|s| !matches!(s, Status::Error | Status::Cancelled)) {
            return Err(HostError::invalid(
                "status",
                format!("only `error` and `cancelled` jobs can be retried, not `{other}`"),
            ));
        }
        let mut filter =
            ListFilter { statuses: statuses.to_vec(), queue, factory, limit: 500, ..ListFilter::default() };
        let mut retried = 0;
        loop {
            let page = self.list(&filter)?;
            let Some(last) = page.last() else { return Ok(retried) };
            filter.after = Some(last.id);
            for job in &page {
                match self.retry(job.id) {
                    Ok(_) => retried += 1,
                    // Retried, removed or holding a key another job now has: left as it is.
                    Err(HostError::NotFound(_) | HostError::Refused(_) | HostError::KeyHeld(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Deletes one finished job; the job as it was.
    pub fn remove_job(&self, id: JobId) -> Result<Job, HostError> {
        let job = self.get(id)?.ok_or(HostError::NotFound(id))?;
        if !job.status.is_finished() {
            return Err(HostError::Refused(Refused { id, status: job.status, action: "remove" }));
        }
        let mut after = None;
        loop {
            let children = self.dependents(id, after, 1000)?;
            for &child in &children {
                if let Some(waiting) = self.get(child)?.filter(|c| c.is_pending()) {
                    return Err(HostError::Needed { id, dependent: waiting.id, status: waiting.status });
                }
            }
            match children.last() {
                Some(&last) if children.len() == 1000 => after = Some(last),
                _ => break,
            }
        }
        let removed = self.inner.shared.store.remove(&Removal { id: Some(id), ..Removal::default() })?;
        if removed.values().sum::<u64>() == 0 {
            // Retried (or removed) since it was read.
            let now = self.get(id)?.ok_or(HostError::NotFound(id))?;
            return Err(HostError::Refused(Refused { id, status: now.status, action: "remove" }));
        }
        Ok(job)
    }

    /// Deletes the finished jobs `which` selects.
    pub fn remove(&self, which: &Removal) -> Result<BTreeMap<Status, u64>, HostError> {
        if let Some(s) = which.statuses.iter().find(|s| !s.is_finished()) {
            return Err(HostError::invalid(
                "status",
                format!("only finished jobs can be removed (completed, error, cancelled), not `{s}`"),
            ));
        }
        Ok(self.inner.shared.store.remove(which)?)
    }

    /// Job status changes, for waiters (long polls, `bench`). Lagging receivers miss events
    /// and should re-read the store.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Graceful stop: queues stop claiming, running jobs get up to `timeout`, the rest are
    /// released uncounted, the store is flushed.
    pub async fn shutdown(&self, timeout: Duration) -> Result<Shutdown, HostError> {
        let stopped = self.inner.pool.shutdown(timeout).await?;
        self.write_last_history().await;
        self.leave();
        Ok(stopped)
    }

    /// Takes this host off the store's list of hosts (`GET /v1/hosts`): the end of a stop,
    /// and of `run-once`.
    pub fn leave(&self) {
        if let Err(e) = self.inner.shared.store.leave(&self.inner.me.name) {
            log::warn!("cannot take this host off the store's list of hosts: {e}");
        }
    }

    /// Writes everything to disk (the end of `run-once`).
    pub fn flush(&self) -> Result<(), HostError> {
        if let Err(e) = self.write_history() {
            log::warn!("the throughput history was not stored: {e}");
        }
        Ok(self.inner.shared.store.flush()?)
    }

    /// The workers started so far (at most `max_workers`) and what each does.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.inner.pool.workers()
    }

    /// Writes a consistent backup of the whole store to `out` (writes wait meanwhile).
    pub fn backup(&self, out: &mut dyn std::io::Write) -> Result<crate::store::BackupSummary, HostError> {
        Ok(self.inner.shared.store.backup(out)?)
    }

    /// Why the store cannot write now (a full disk), if it cannot: the health check's answer.
    pub fn store_problem(&self) -> Option<String> {
        self.inner.shared.store.unwritable()
    }

    pub fn running_count(&self) -> usize {
        self.inner.pool.running_count()
    }
}

/// Whether a process `pid` exists on this machine (a process of another user counts).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
