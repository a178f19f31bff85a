//! The worker pool: queues started, stopped and listed at run time, the workers (at most
//! `max_workers`, shared by every queue, started as work appears), and the graceful shutdown.
//!
//! **Invariant:** stopping a queue stops claiming, never a running job (`stop_queue` returns
//! only once no claim of the queue is in flight, a claim made with an outcome included), and
//! every claimed job is in the running set before the claim lock is released, and leaves it only
//! once its outcome is with the recorder, so a shutdown or a cancel never misses it. However many queues there are, at most `max_workers` jobs run at
//! once, on threads of the pool's own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::queue::Queue;
use super::shared::Shared;
use super::state::{PoolState, Tally, WorkerStatus};
use super::supervisor;
use super::worker::{self, RunError};
use crate::job::{Job, JobId, DEFAULT_QUEUE};
use crate::store::{ClaimFilter, Counts, StoreResult};
use crate::sync;

/// A queue as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueInfo {
    pub name: String,
    pub processing: bool,
    pub concurrency: usize,
    pub queued: u64,
    pub running: usize,
    /// Jobs this host claimed for the queue's next free places, not given to a worker yet
    /// (within the claim window).
    pub claimed_ahead: usize,
    /// Worker processes that died running this queue's jobs (each was replaced).
    pub worker_restarts: u64,
    /// Jobs still running past their timeout or cancel plus the grace, which nothing can stop
    /// (`isolation = "none"`).
    pub stuck: usize,
    /// The store's jobs of this queue by status (every host's, on a shared store).
    pub jobs: BTreeMap<crate::job::Status, u64>,
    /// Who paused it and when, while it is paused (filled by the host from the store).
    pub paused: Option<crate::store::QueuePause>,
}

impl QueueInfo {
    /// A queue this host has not seen: nothing running, nothing counted.
    pub fn named(name: &str) -> QueueInfo {
        QueueInfo {
            name: name.to_owned(),
            processing: false,
            concurrency: 0,
            queued: 0,
            running: 0,
            claimed_ahead: 0,
            worker_restarts: 0,
            stuck: 0,
            jobs: BTreeMap::new(),
            paused: None,
        }
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Running jobs that did not finish in time and went back to `queued`.
    pub released: usize,
}

/// The worker pool of one host. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    state: Arc<PoolState>,
}

impl Pool {
    pub fn new(shared: Arc<Shared>) -> Self {
        let state = PoolState {
            shared,
            queues: Mutex::new(BTreeMap::new()),
            ready: Mutex::default(),
            work: Condvar::new(),
            running: Default::default(),
            workers: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            starting: AtomicUsize::new(0),
            supervisor_started: AtomicBool::new(false),
            one_shot: Mutex::new(None),
            tally: Mutex::new(BTreeMap::new()),
            claimed: Mutex::default(),
            recorder: Default::default(),
            writes: Default::default(),
            running_limits: Mutex::new(None),
        };
        Pool { state: Arc::new(state) }
    }

    /// Starts the queues that autostart among the configured ones (the default queue among
    /// them) and `stored`: the queues the store holds jobs of, which would otherwise wait for
    /// a new job to start their queue after a restart. `paused` are left stopped.
    pub fn start_configured(&self, stored: &[String], paused: &std::collections::BTreeSet<String>) {
        let config = &self.state.shared.config;
        let mut names: Vec<String> = config.queues.keys().cloned().collect();
        names.push(DEFAULT_QUEUE.to_owned());
        names.extend(stored.iter().cloned());
        names.sort();
        names.dedup();
        for name in &names {
            if config.queue(name).autostart && !paused.contains(name) {
                self.start_queue(name);
            }
        }
    }

    /// Starts processing `name` (no-op if it runs). Stopped queues still accept jobs.
    pub fn start_queue(&self, name: &str) {
        let queue = self.queue_entry(name);
        supervisor::ensure(&self.state);
        if !queue.processing.swap(true, Ordering::SeqCst) {
            log::info!("queue '{}' started (concurrency {})", queue.name, queue.concurrency);
        }
        self.offer(&queue);
    }

    /// Stops claiming from `name`; its running jobs finish. A queue not yet in use is created
    /// stopped, so its first job does not autostart it. Returns once no claim of this queue is
    /// in flight: from then on it claims nothing.
    pub fn stop_queue(&self, name: &str) {
        let queue = self.queue_entry(name);
        if queue.processing.swap(false, Ordering::SeqCst) {
            log::info!("queue '{}' stopped", queue.name);
        }
        drop(sync::write(&queue.claiming));
        self.give_back_claimed(Some(name));
        // Jobs sent ahead to worker processes come back to their slots, which release them.
        self.state.running.withdraw(Some(name), usize::MAX);
    }

    /// Gives jobs claimed and not started back to their queues, their attempts uncounted.
    fn give_back_claimed(&self, queue: Option<&str>) {
        let attempts = self.state.drain_claimed(queue);
        if attempts.is_empty() {
            return;
        }
        let jobs: Vec<_> = attempts.iter().map(|a| (a.claimed.job.id, a.claimed.token)).collect();
        let shared = &self.state.shared;
        match shared.store.release_batch(&jobs, shared.now()) {
            Ok(n) => log::info!("{n} job(s) claimed and not started given back to their queue"),
            // Their leases requeue them.
            Err(e) => log::warn!("{} claimed job(s) could not be given back: {e}", jobs.len()),
        }
        for (id, _) in jobs {
            self.state.running.remove(id);
        }
    }

    pub fn is_processing(&self, name: &str) -> bool {
        self.lock_queues().get(name).is_some_and(|q| q.processing.load(Ordering::SeqCst))
    }

    /// A job was added to `name` or became ready there: a worker will look (the queue is
    /// created on first use; a new autostart queue starts).
    pub fn wake(&self, name: &str) {
        let queue = self.queue(name);
        if queue.processing.load(Ordering::SeqCst) {
            self.offer(&queue);
        }
    }

    /// The plugins were reloaded: jobs sent ahead to worker processes of the old ones are
    /// asked back, and every idle worker rolls its process. Returns once each was given back or
    /// is known to have started before (a blocking wait of a round trip to each process): from
    /// then on no job starts on the old code.
    pub fn plugins_reloaded(&self) {
        if self.state.running.withdraw(None, usize::MAX) > 0
            && !self.state.running.wait_withdrawn(Duration::from_secs(5))
        {
            log::warn!("plugins reloaded: some worker processes did not answer within 5 s; a job sent ahead to one may still start on the old plugins");
        }
        self.wake_all();
    }

    /// A limit was set or removed through this host. The workers read the limits afresh, and
    /// the jobs claimed here and not started (those sent ahead to worker processes, once
    /// asked back) go back to their queues uncounted, to be claimed again through the limits
    /// as they are now: a limit set mid-drain holds within a round trip to each worker
    /// process, not after two claim batches. Other hosts sharing the store start the jobs
    /// they claimed before it. Then every queue looks again (a wider limit lets waiting jobs
    /// start).
    pub fn limits_changed(&self) {
        *sync::lock(&self.state.running_limits) = None;
        // Claims in flight end first (as when a queue stops): one that read the limits before
        // the change keeps its jobs in the queues' claimed jobs, given back below, instead of
        // after them, where they would start outside the new limit.
        let queues: Vec<Arc<Queue>> = self.lock_queues().values().cloned().collect();
        for queue in &queues {
            drop(sync::write(&queue.claiming));
        }
        if self.state.running.withdraw(None, usize::MAX) > 0
            && !self.state.running.wait_withdrawn(Duration::from_secs(5))
        {
            log::warn!("limits changed: some worker processes did not answer within 5 s; a job sent ahead to one may still start outside the new limits");
        }
        self.give_back_claimed(None);
        self.wake_all();
    }

    /// Jobs may have become ready anywhere (due jobs promoted, leases recovered), or the
    /// plugins were reloaded: every idle worker looks (and rolls its worker process).
    pub fn wake_all(&self) {
        self.state.list_all();
        self.state.work.notify_all();
        self.staff();
    }

    /// Lists `queue` for the workers, starting one if none is idle and the cap allows.
    fn offer(&self, queue: &Arc<Queue>) {
        worker::offer(&self.state, queue);
    }

    /// Starts a worker unless one is idle or starting, or the pool is full.
    fn staff(&self) {
        worker::staff(&self.state, 1);
    }

    /// Every queue that is configured, in use, or holds jobs (`counts`: the store's).
    pub fn queues(&self, counts: &Counts) -> Vec<QueueInfo> {
        let config = &self.state.shared.config;
        let mut names: Vec<String> = config.queues.keys().cloned().collect();
        names.extend(self.lock_queues().keys().cloned());
        names.extend(counts.keys().cloned());
        names.sort();
        names.dedup();
        let stuck = self.state.running.stuck_by_queue();
        let queues = self.lock_queues();
        names
            .into_iter()
            .map(|name| {
                let live = queues.get(&name);
                let queued =
                    counts.get(&name).and_then(|c| c.get(&crate::job::Status::Queued)).copied().unwrap_or(0);
                QueueInfo {
                    processing: live.is_some_and(|q| q.processing.load(Ordering::SeqCst)),
                    concurrency: live.map_or(config.queue(&name).concurrency, |q| q.concurrency),
                    running: live.map_or(0, |q| q.running()),
                    claimed_ahead: self.state.claimed_count(&name),
                    worker_restarts: live.map_or(0, |q| q.worker_deaths.load(Ordering::Relaxed)),
                    stuck: stuck.get(&name).copied().unwrap_or(0),
                    queued,
                    jobs: counts.get(&name).cloned().unwrap_or_default(),
                    paused: None,
                    name,
                }
            })
            .collect()
    }

    /// Attempts ended per queue since the last call.
    pub fn take_tally(&self) -> BTreeMap<String, Tally> {
        std::mem::take(&mut *sync::lock(&self.state.tally))
    }

    /// The workers started so far and what each does.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        sync::lock(&self.state.workers).clone()
    }

    /// Sets the cancellation flag of a job running here. One claimed and waiting for a place
    /// (perhaps behind a long job) ends now, cancelled; one sent ahead to a worker process is
    /// asked back, and ends so when it comes back.
    pub fn cancel_running(&self, id: JobId) {
        self.state.running.cancel(id);
        if let Some(attempt) = self.state.take_claimed_job(id) {
            worker::end_cancelled(&self.state, attempt);
        }
    }

    pub fn running_count(&self) -> usize {
        self.state.running.len()
    }

    /// Claims the next ready job matching `filter` and runs it to its end; `None` when
    /// nothing is ready.
    pub async fn process_next(&self, filter: ClaimFilter<'_>) -> Result<Option<Job>, RunError> {
        worker::run_one(&self.state, filter).await
    }

    /// Graceful stop: every queue stops claiming; running jobs get up to `timeout` to finish;
    /// the rest go back to `queued` without their attempt counted (a late outcome is then
    /// stale and discarded), get their cancellation flag set and `kill_grace` more, then their
    /// worker processes are killed; then the store is flushed. It never waits on a plugin
    /// longer than `timeout` + `kill_grace`.
    pub async fn shutdown(&self, timeout: Duration) -> StoreResult<Shutdown> {
        let shared = &self.state.shared;
        let deadline = tokio::time::Instant::now() + timeout;
        let queues: Vec<Arc<Queue>> = self.lock_queues().values().cloned().collect();
        for queue in &queues {
            self.stop_queue(&queue.name);
        }
        // Idle workers end now; busy ones once their job is done.
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.work.notify_all();
        while self.running_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The rest go back to their queues first, so whatever they report now is stale; then
        // they are asked to stop (the supervisor forwards the flag to worker processes) and get
        // the grace; then their processes are killed.
        let mut released = 0;
        for (id, token) in self.state.running.tokens() {
            match shared.store.release(id, token, shared.now()) {
                Ok(true) => {
                    log::warn!("job {id}: still running at shutdown; released back to queued");
                    released += 1;
                }
                Ok(false) => {}
                // Stopping goes on: the job is recovered at the next start, as after a crash.
                Err(e) => log::warn!("job {id}: still running at shutdown and cannot be released: {e}"),
            }
            self.state.running.cancel(id);
        }
        let grace_ends = tokio::time::Instant::now() + shared.config.kill_grace;
        while self.running_count() > 0 && tokio::time::Instant::now() < grace_ends {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let killed = self.state.running.kill_all();
        if killed > 0 {
            log::warn!("{killed} job(s) still running after the grace: their worker processes were killed");
        }
        // Outcomes handed to the recorder reach the store before its last flush.
        self.state.recorder.flush(Duration::from_secs(5));
        if let Err(e) = shared.store.flush() {
            // Acknowledged changes are on disk already; what is lost is what a crash loses
            // (outcomes of the last moments, which run again), so the stop itself succeeds.
            log::warn!("last flush at shutdown failed: {e}; jobs it held are recovered at the next start");
        }
        Ok(Shutdown { released })
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Queue>>> {
        sync::lock(&self.state.queues)
    }

    fn queue_entry(&self, name: &str) -> Arc<Queue> {
        let config = self.state.shared.config.queue(name);
        self.lock_queues()
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Queue::new(name, config.concurrency)))
            .clone()
    }

    /// The queue, created on first use; a new autostart queue starts.
    fn queue(&self, name: &str) -> Arc<Queue> {
        let is_new = !self.lock_queues().contains_key(name);
        let queue = self.queue_entry(name);
        if is_new && self.state.shared.config.queue(name).autostart {
            self.start_queue(name);
        }
        queue
    }
}
