//! The processor: adds jobs, runs them on per-queue worker pools, and reports their life.
//!
//! **Invariant:** a job's status changes only through the store, and only the holder of its
//! current lease token can report its outcome. Plugin code runs on blocking threads, never on
//! the runtime's core threads. Stopping a queue stops claiming, never a running job.

mod execute;
mod queue;
mod retry;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::clock::{duration_micros, Clock, Micros};
use crate::config::Retention;
use crate::job::{Job, JobId, NewJob, Status, DEFAULT_QUEUE, MAX_NAME_LEN};
use crate::metrics::Metrics;
use crate::plugins::{Factory, Registry};
use crate::store::{Added, Cancelled, ClaimFilter, LeaseTerms, ListFilter, Store, StoreError};

pub use retry::{RetryPolicy, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP};

use queue::Queue;

/// Attempts per job when neither the job nor its factory says.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// How long a claimed job's lease lasts without a heartbeat (renewed every third of it).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The idle workers' fallback poll; they normally wake on notifications.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How one queue is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Jobs run at once; 1 is strict FIFO.
    pub concurrency: usize,
    /// Start processing when the host starts (or when the queue is first used).
    pub autostart: bool,
}

impl Default for QueueConfig {
    /// As many workers as CPUs, started automatically.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        QueueConfig { concurrency: cpus, autostart: true }
    }
}

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    pub default_max_attempts: u32,
    /// Configured queues; any other queue a job names gets `default_queue`.
    pub queues: BTreeMap<String, QueueConfig>,
    pub default_queue: QueueConfig,
    /// How long finished jobs are kept (swept by `start_configured`'s sweeper).
    pub retention: Retention,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retry: RetryPolicy::default(),
            default_max_attempts: DEFAULT_MAX_ATTEMPTS,
            queues: BTreeMap::new(),
            default_queue: QueueConfig::default(),
            retention: Retention::default(),
        }
    }
}

/// A request to add a job.
#[derive(Debug, Clone, Default)]
pub struct AddJob {
    pub factory: String,
    /// JSON text; `None` is `null`.
    pub input: Option<String>,
    pub queue: Option<String>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    /// Not before this time (the job is `scheduled` until then).
    pub run_at: Option<Micros>,
    /// Add it `held`: it waits for `start`.
    pub hold: bool,
    /// While a job of the same factory with this key is pending, return that job instead.
    pub unique_key: Option<String>,
    /// The schedule making this job (set by the scheduler).
    pub schedule_id: Option<crate::job::ScheduleId>,
}

/// Longest unique key (it is part of an index key).
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown job factory `{name}`; known factories: {}", known.join(", "))]
    UnknownFactory { name: String, known: Vec<String> },
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some jobs of a batch are invalid (by index); nothing was added.
    #[error("{} of {total} jobs are invalid; nothing was added", items.len())]
    InvalidBatch { total: usize, items: Vec<(usize, HostError)> },
}

/// A job reached a new status (published after the store recorded it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub id: JobId,
    pub status: Status,
}

/// A queue as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueInfo {
    pub name: String,
    pub processing: bool,
    pub concurrency: usize,
    pub queued: u64,
    pub running: usize,
}

/// The job host: store, factories, clock and queues. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    /// Behind a lock so a rescan can add plugins while jobs run.
    registry: RwLock<Registry>,
    clock: Arc<dyn Clock>,
    config: ProcessorConfig,
    queues: Mutex<BTreeMap<String, Arc<Queue>>>,
    /// The jobs running in this process.
    running: Mutex<HashMap<JobId, Running>>,
    events: broadcast::Sender<JobEvent>,
    metrics: Metrics,
    /// The attempt supervisor (leases, timeouts) runs once started (`execute::ensure_supervisor`).
    supervisor_started: AtomicBool,
}

/// A job running in this process: its attempt's token and cancellation flag.
struct Running {
    token: u64,
    cancel: Arc<AtomicBool>,
    /// Set by the supervisor when the deadline passed (the outcome is then a timeout).
    timed_out: Arc<AtomicBool>,
    deadline: Option<std::time::Instant>,
    /// When the supervisor next renews the lease.
    renew_at: std::time::Instant,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Running jobs that did not finish in time and went back to `queued`.
    pub released: usize,
}

impl Host {
    /// Builds the host and recovers the jobs a dead host left `processing`.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Registry,
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
        let inner = Inner {
            store,
            registry: RwLock::new(registry),
            clock,
            config,
            queues: Mutex::new(BTreeMap::new()),
            running: Mutex::new(HashMap::new()),
            events: broadcast::channel(4096).0,
            metrics: Metrics::default(),
            supervisor_started: AtomicBool::new(false),
        };
        Ok(Host { inner: Arc::new(inner) })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// `GET /metrics`: the exposition with the store's current counts.
    pub fn render_metrics(&self) -> Result<String, HostError> {
        let counts = self.inner.store.counts()?;
        let (plugins, rejected) = self.with_registry(|r| (r.plugins().len(), r.rejected().len()));
        Ok(self.inner.metrics.render(&counts, plugins, rejected))
    }

    /// Scans `dirs` again and registers plugins that appeared since (SIGHUP). Libraries
    /// already loaded stay as they are: a loaded library cannot be unloaded safely.
    pub fn rescan_plugins(&self, dirs: &[std::path::PathBuf]) -> usize {
        let added = self.with_registry(|r| r.rescan(dirs));
        self.with_registry(|r| {
            for rejection in r.rejected() {
                log::warn!("plugin rejected: {rejection}");
            }
        });
        added
    }

    /// Calls `f` with the factory registry (e.g. to list factories or rescan plugin dirs).
    pub fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.inner.registry.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Validates and stores a job; returns once it is durable (or the pending job holding its
    /// unique key). Blocking: async callers use `spawn_blocking`. Wakes the job's queue,
    /// starting it if it is new and autostarts.
    pub fn add(&self, req: AddJob) -> Result<Added, HostError> {
        let new = self.validate(req)?;
        let added = self.inner.store.add(new, self.inner.clock.now())?;
        if !added.existing {
            self.inner.publish(&added.job);
            let queue = self.queue(&added.job.queue);
            queue.wake.notify_one();
        }
        Ok(added)
    }

    /// Validates every job, then stores them all in one transaction and one flush, or none.
    /// Unique keys are refused in batches (the answer would differ job by job).
    pub fn add_batch(&self, reqs: Vec<AddJob>) -> Result<Vec<Job>, HostError> {
        let news = self.add_batch_check(reqs)?;
        let jobs = self.inner.store.add_batch(news, self.inner.clock.now())?;
        let mut queues: Vec<&str> = Vec::new();
        for job in &jobs {
            self.inner.publish(job);
            if !queues.contains(&job.queue.as_str()) {
                queues.push(&job.queue);
            }
        }
        for name in queues {
            // Every worker may find work: wake them all.
            let queue = self.queue(name);
            for _ in 0..queue.concurrency {
                queue.wake.notify_one();
            }
        }
        Ok(jobs)
    }

    /// Checks every job of a batch; `InvalidBatch` lists each refused one by index.
    pub fn add_batch_check(&self, reqs: Vec<AddJob>) -> Result<Vec<NewJob>, HostError> {
        let total = reqs.len();
        let mut news = Vec::with_capacity(total);
        let mut items = Vec::new();
        for (index, req) in reqs.into_iter().enumerate() {
            if req.unique_key.is_some() {
                let message = "not accepted in a batch; add jobs with unique keys one at a time".to_owned();
                items.push((index, HostError::Invalid { field: "unique_key", message }));
                continue;
            }
            match self.validate(req) {
                Ok(new) => news.push(new),
                Err(e) => items.push((index, e)),
            }
        }
        if items.is_empty() {
            Ok(news)
        } else {
            Err(HostError::InvalidBatch { total, items })
        }
    }

    /// Checks a request against the registry and the limits, and fills in the defaults.
    pub fn validate(&self, req: AddJob) -> Result<NewJob, HostError> {
        let factory = self.inner.factory(&req.factory).ok_or_else(|| HostError::UnknownFactory {
            name: req.factory.clone(),
            known: self.with_registry(|r| r.factory_names().iter().map(|s| s.to_string()).collect()),
        })?;
        let queue = req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        validate_name("queue", &queue)?;
        let input = req.input.unwrap_or_else(|| "null".to_owned());
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(HostError::Invalid { field: "input", message: format!("not valid JSON: {e}") });
        }
        let max_attempts = req
            .max_attempts
            .or(factory.defaults().max_attempts)
            .unwrap_or(self.inner.config.default_max_attempts);
        if max_attempts == 0 {
            return Err(HostError::Invalid {
                field: "max_attempts",
                message: "must be at least 1".to_owned(),
            });
        }
        if let Some(key) = &req.unique_key {
            if key.is_empty() || key.len() > MAX_UNIQUE_KEY_LEN {
                return Err(HostError::Invalid {
                    field: "unique_key",
                    message: format!("must be 1 to {MAX_UNIQUE_KEY_LEN} bytes long"),
                });
            }
        }
        Ok(NewJob {
            factory: req.factory,
            input,
            queue,
            priority: req.priority,
            max_attempts,
            timeout_ms: req.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            run_at: req.run_at,
            hold: req.hold,
            unique_key: req.unique_key,
            schedule_id: req.schedule_id,
        })
    }

    /// Queues a `held` (or `scheduled`) job now.
    pub fn start(&self, id: JobId) -> Result<Job, HostError> {
        let job = self.inner.store.start(id, self.inner.clock.now())?;
        self.inner.publish(&job);
        self.queue(&job.queue).wake.notify_one();
        Ok(job)
    }

    /// Turns due `scheduled` jobs (and due retries) `queued`, and wakes the queues if any were.
    pub fn promote_due(&self) -> Result<usize, HostError> {
        let promoted = self.inner.store.promote_due(self.inner.clock.now())?;
        if promoted > 0 {
            self.wake_all();
        }
        Ok(promoted)
    }

    /// A job stored by someone else (the scheduler): announce it and wake its queue.
    pub fn announce(&self, job: &Job) {
        self.inner.publish(job);
        self.queue(&job.queue).wake.notify_one();
    }

    fn wake_all(&self) {
        for queue in self.lock_queues().values() {
            queue.wake.notify_one();
        }
    }

    /// Starts the configured queues that autostart, the lease reaper and the retention
    /// sweeper. Needs a Tokio runtime.
    pub fn start_configured(&self) {
        self.spawn_reaper();
        self.spawn_sweeper();
        let names: Vec<String> = self.inner.config.queues.keys().cloned().collect();
        for name in names.iter().chain(std::iter::once(&DEFAULT_QUEUE.to_owned())) {
            if self.queue_config(name).autostart {
                self.start_queue(name);
            }
        }
    }

    /// Starts processing `name` (no-op if it runs). Stopped queues still accept jobs.
    pub fn start_queue(&self, name: &str) {
        let queue = self.queue_entry(name);
        if !queue.processing.swap(true, Ordering::SeqCst) {
            queue.stop.send_replace(false);
            let task = tokio::spawn(queue::run(self.inner.clone(), queue.clone()));
            *queue.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        }
    }

    /// Stops claiming from `name`; its running jobs finish. A queue not yet in use is created
    /// stopped, so its first job does not autostart it.
    /// Returns once no claim of this queue is in flight: from then on it claims nothing.
    pub fn stop_queue(&self, name: &str) {
        let queue = self.queue_entry(name);
        queue.stop.send_replace(true);
        queue.processing.store(false, Ordering::SeqCst);
        drop(queue.claiming.write().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn is_processing(&self, name: &str) -> bool {
        self.lock_queues().get(name).is_some_and(|q| q.processing.load(Ordering::SeqCst))
    }

    /// Every queue that is configured, in use, or holds jobs.
    pub fn queues(&self) -> Result<Vec<QueueInfo>, HostError> {
        let counts = self.inner.store.counts()?;
        let mut names: Vec<String> = self.inner.config.queues.keys().cloned().collect();
        names.extend(self.lock_queues().keys().cloned());
        names.extend(counts.keys().cloned());
        names.sort();
        names.dedup();
        let queues = self.lock_queues();
        Ok(names
            .into_iter()
            .map(|name| {
                let live = queues.get(&name);
                let queued = counts.get(&name).and_then(|c| c.get(&Status::Queued)).copied().unwrap_or(0);
                QueueInfo {
                    processing: live.is_some_and(|q| q.processing.load(Ordering::SeqCst)),
                    concurrency: live.map_or(self.queue_config(&name).concurrency, |q| q.concurrency),
                    running: live.map_or(0, |q| q.running()),
                    queued,
                    name,
                }
            })
            .collect())
    }

    /// Claims the next ready job matching `filter` and runs it to its end on this task (the
    /// seeds' `processNextJob`). `None` when nothing is ready.
    pub async fn process_next(&self, filter: ClaimFilter<'_>) -> Result<Option<Job>, HostError> {
        let lease = LeaseTerms { duration: self.inner.config.lease };
        let claimed = self.inner.store.claim(&filter, self.inner.clock.now(), lease)?;
        match claimed {
            Some(claimed) => {
                let id = claimed.job.id;
                let attempt = self.inner.begin(claimed);
                let done = execute::run_async(&self.inner, attempt).await?;
                Ok(Some(match done {
                    Some(job) => job,
                    None => self.get(id)?.ok_or(StoreError::NotFound(id))?,
                }))
            }
            None => Ok(None),
        }
    }

    pub fn get(&self, id: JobId) -> Result<Option<Job>, HostError> {
        Ok(self.inner.store.get(id)?)
    }

    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, HostError> {
        Ok(self.inner.store.list(filter)?)
    }

    /// Cancels a waiting job now; a running one gets its cancellation flag set and ends
    /// `cancelled` when its factory returns.
    pub fn cancel(&self, id: JobId) -> Result<Job, HostError> {
        match self.inner.store.cancel(id, self.inner.clock.now())? {
            Cancelled::Now(job) => {
                self.inner.publish(&job);
                Ok(job)
            }
            Cancelled::Requested(job) => {
                self.inner.cancel_running(id);
                Ok(job)
            }
        }
    }

    /// Sends a job in `error` or `cancelled` back to `queued` with fresh attempts.
    pub fn retry(&self, id: JobId) -> Result<Job, HostError> {
        let job = self.inner.store.retry(id, None, self.inner.clock.now())?;
        self.inner.publish(&job);
        self.queue(&job.queue).wake.notify_one();
        Ok(job)
    }

    /// Deletes finished jobs (all finished statuses when `statuses` is empty).
    pub fn remove(&self, statuses: &[Status]) -> Result<BTreeMap<Status, u64>, HostError> {
        self.remove_finished_before(statuses, None)
    }

    /// Deletes finished jobs in `statuses` that finished before `before` (all when `None`).
    pub fn remove_finished_before(
        &self,
        statuses: &[Status],
        before: Option<crate::clock::Micros>,
    ) -> Result<BTreeMap<Status, u64>, HostError> {
        if let Some(s) = statuses.iter().find(|s| !s.is_finished()) {
            return Err(HostError::Invalid {
                field: "status",
                message: format!(
                    "only finished jobs can be removed (completed, error, cancelled), not `{s}`"
                ),
            });
        }
        Ok(self.inner.store.remove(statuses, before)?)
    }

    /// Job status changes, for waiters (long polls, `bench`). Lagging receivers miss events
    /// and should re-read the store.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// Requeues jobs whose lease expired (a worker that stopped renewing). Run periodically.
    pub fn recover_expired(&self) -> Result<Vec<JobId>, HostError> {
        Ok(self.inner.store.recover_expired(self.inner.clock.now())?)
    }

    /// Every half lease, requeues jobs whose worker stopped renewing their lease (with the
    /// embedded store that means a stuck heartbeat; with a shared store, a dead host) and wakes
    /// their queues. Ends when the host is dropped.
    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.lease / 2;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
                match host.recover_expired() {
                    Ok(ids) if !ids.is_empty() => {
                        log::warn!("requeued {} job(s) whose lease expired: {ids:?}", ids.len());
                        host.wake_all();
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("lease recovery failed: {e}"),
                }
            }
        });
    }

    /// Deletes the finished jobs older than their status's retention. Returns counts.
    pub fn sweep_expired(&self) -> Result<BTreeMap<Status, u64>, HostError> {
        let retention = self.inner.config.retention;
        let now = self.inner.clock.now();
        let mut removed = BTreeMap::new();
        for (status, keep) in [
            (Status::Completed, retention.completed),
            (Status::Error, retention.error),
            (Status::Cancelled, retention.cancelled),
        ] {
            if let Some(keep) = keep {
                let before = now.saturating_sub(duration_micros(keep));
                removed.extend(self.remove_finished_before(&[status], Some(before))?);
            }
        }
        Ok(removed)
    }

    /// Every `retention.sweep_interval`, deletes expired finished jobs. Ends with the host.
    fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.retention.sweep_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let host = Host { inner };
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

    /// Graceful stop: every queue stops claiming; running jobs get up to `timeout` to finish;
    /// the rest get their cancellation flag set and go back to `queued` without their attempt
    /// counted (their late outcome is then stale and discarded); then the store is flushed.
    pub async fn shutdown(&self, timeout: Duration) -> Result<Shutdown, HostError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let queues: Vec<Arc<Queue>> = self.lock_queues().values().cloned().collect();
        for queue in &queues {
            self.stop_queue(&queue.name);
        }
        // A claim in flight finishes first, so every claimed job is in `running` after this.
        for queue in &queues {
            let task = queue.task.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(task) = task {
                let _ = tokio::time::timeout_at(deadline, task).await;
            }
        }
        while self.running_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left: Vec<(JobId, u64)> = {
            let running = self.inner.running.lock().unwrap_or_else(PoisonError::into_inner);
            running.iter().map(|(id, r)| (*id, r.token)).collect()
        };
        let mut released = 0;
        for (id, token) in left {
            self.inner.cancel_running(id);
            if self.inner.store.release(id, token, self.inner.clock.now())? {
                log::warn!("job {id}: still running at shutdown; released back to queued");
                released += 1;
            }
        }
        self.inner.store.flush()?;
        Ok(Shutdown { released })
    }

    pub fn running_count(&self) -> usize {
        self.inner.running.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn queue_config(&self, name: &str) -> QueueConfig {
        self.inner.config.queues.get(name).copied().unwrap_or(self.inner.config.default_queue)
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Queue>>> {
        self.inner.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue_entry(&self, name: &str) -> Arc<Queue> {
        let config = self.queue_config(name);
        self.lock_queues()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(name, config.concurrency)))
            .clone()
    }

    /// The queue, created on first use; a new autostart queue starts (inside a runtime).
    fn queue(&self, name: &str) -> Arc<Queue> {
        let is_new = !self.lock_queues().contains_key(name);
        let queue = self.queue_entry(name);
        if is_new && self.queue_config(name).autostart && tokio::runtime::Handle::try_current().is_ok() {
            self.start_queue(name);
        }
        queue
    }
}

impl Inner {
    fn factory(&self, name: &str) -> Option<Factory> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    fn publish(&self, job: &Job) {
        // No receivers is normal.
        let _ = self.events.send(JobEvent { id: job.id, status: job.status });
    }

    fn running_remove(&self, id: JobId) {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    fn cancel_running(&self, id: JobId) {
        if let Some(running) = self.running.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }
}

fn validate_name(field: &'static str, name: &str) -> Result<(), HostError> {
    if crate::job::is_valid_name(name) {
        Ok(())
    } else {
        Err(HostError::Invalid {
            field,
            message: format!(
                "{name:?}: use 1 to {MAX_NAME_LEN} characters from a-z, A-Z, 0-9, `_`, `-`, `.`"
            ),
        })
    }
}
