//! One named queue's processor: `concurrency` workers, each claiming and running one job at a
//! time.
//!
//! Concurrency 1 is the seeds' SimpleJobWorker (strict FIFO: the next job is claimed only after
//! the previous one finished); N is the MultiJobWorker. Workers claim independently, so their
//! claims' flushes overlap and are shared by group commit. An idle worker sleeps until a job
//! is added (a `Notify`), a waiting job becomes due, or the poll interval passes (the
//! fallback); a worker that found a job wakes a peer, so a burst is picked up by all of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use jobhost_plugin_api::Failure;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use super::Inner;
use crate::clock::Micros;
use crate::store::{ClaimFilter, LeaseTerms, StoreResult};

/// Runtime state of one queue.
pub(super) struct Queue {
    pub name: String,
    pub concurrency: usize,
    /// Jobs of this queue running now.
    busy: AtomicUsize,
    /// Woken when a job is added to this queue.
    pub wake: Notify,
    /// Whether the workers run (start/stop at run time).
    pub processing: AtomicBool,
    /// Tells the workers to stop claiming; running jobs finish on their own.
    pub stop: watch::Sender<bool>,
    /// The task running the workers (a shutdown waits for it).
    pub task: Mutex<Option<JoinHandle<()>>>,
    /// Read-held by every claim in flight; `stop_queue` write-locks it to wait them out.
    pub claiming: RwLock<()>,
}

impl Queue {
    pub fn new(name: &str, concurrency: usize) -> Self {
        Queue {
            name: name.to_owned(),
            concurrency: concurrency.max(1),
            busy: AtomicUsize::new(0),
            wake: Notify::new(),
            processing: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            claiming: RwLock::new(()),
        }
    }

    /// Jobs of this queue running now.
    pub fn running(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }
}

/// Runs the queue's workers; returns when `queue.stop` is set and every worker has finished
/// its job.
pub(super) async fn run(inner: Arc<Inner>, queue: Arc<Queue>) {
    log::info!("processor '{}' started (concurrency {})", queue.name, queue.concurrency);
    let workers: Vec<_> =
        (0..queue.concurrency).map(|_| tokio::spawn(worker(inner.clone(), queue.clone()))).collect();
    for worker in workers {
        if let Err(e) = worker.await {
            log::error!("processor '{}': a worker failed: {e}", queue.name);
        }
    }
    queue.processing.store(false, Ordering::SeqCst);
    log::info!("processor '{}' stopped", queue.name);
}

async fn worker(inner: Arc<Inner>, queue: Arc<Queue>) {
    let mut stop = queue.stop.subscribe();
    let lease = LeaseTerms { duration: inner.config.lease };
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        // Register for the wake-up before looking, so an add between the look and the wait
        // is not missed.
        let woken = queue.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        // One blocking thread both claims and runs the job's plugin, so a job costs one hand-off
        // to the blocking pool, not two; the claim comes back over `claimed` as soon as it is
        // made, so this task can renew the lease and enforce the timeout meanwhile.
        let (claimed_tx, claimed_rx) = oneshot::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let call = {
            let (inner, queue, cancel) = (inner.clone(), queue.clone(), cancel.clone());
            tokio::task::spawn_blocking(move || -> StoreResult<Option<Result<String, Failure>>> {
                let claimed = {
                    // Under the claim lock and after checking `stop`: once `stop_queue`
                    // returns, this queue claims nothing more.
                    let _claiming = queue.claiming.read().unwrap_or_else(PoisonError::into_inner);
                    if *queue.stop.borrow() {
                        return Ok(None);
                    }
                    let filter = ClaimFilter { queue: Some(&queue.name), factory: None };
                    inner.store.claim(&filter, inner.clock.now(), lease)?
                };
                let Some(claimed) = claimed else { return Ok(None) };
                let factory = inner.factory(&claimed.job.factory);
                let (job, token) = (claimed.job.clone(), claimed.token);
                // Registered (`track`) before the plugin starts: a cancel or a shutdown finds it.
                inner.track_with(&claimed, &cancel);
                if claimed_tx.send(claimed).is_err() {
                    return Ok(None); // the worker is gone (runtime shutting down)
                }
                Ok(factory.map(|f| super::execute::run_plugin(&inner, &f, &job, token, &cancel)))
            })
        };
        let wait = match claimed_rx.await {
            Ok(claimed) => {
                // There may be more: let an idle peer look too.
                queue.wake.notify_one();
                let id = claimed.job.id;
                queue.busy.fetch_add(1, Ordering::Relaxed);
                let has_factory = inner.factory(&claimed.job.factory).is_some();
                let result = has_factory.then_some(async move {
                    match call.await {
                        Ok(Ok(Some(result))) => result,
                        Ok(Ok(None) | Err(_)) => {
                            Err(Failure::retryable("the job's thread ended without a result"))
                        }
                        Err(e) => Err(super::execute::thread_failed(e)),
                    }
                });
                if let Err(e) = super::execute::supervise(&inner, claimed, cancel, result).await {
                    log::error!("job {id}: could not record its outcome: {e}");
                }
                queue.busy.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            // No job (or the claim failed): the blocking call has ended.
            Err(_) => match call.await {
                Ok(Ok(_)) => idle_wait(&inner),
                Ok(Err(e)) => {
                    log::error!("processor '{}': claim failed: {e}", queue.name);
                    inner.config.poll_interval
                }
                Err(e) => {
                    log::error!("processor '{}': claim task failed: {e}", queue.name);
                    inner.config.poll_interval
                }
            },
        };
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How long an idle worker sleeps: until the next waiting job is due, at most the poll interval.
fn idle_wait(inner: &Inner) -> Duration {
    let poll = inner.config.poll_interval;
    match inner.store.next_due() {
        Ok(Some(due)) => {
            let until: Micros = due.saturating_sub(inner.clock.now());
            Duration::from_micros(until.max(0) as u64).min(poll)
        }
        _ => poll,
    }
}
