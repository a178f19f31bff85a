//! One named queue's processor: `concurrency` workers, each a blocking thread claiming and
//! running one job at a time.
//!
//! Concurrency 1 is the seeds' SimpleJobWorker (strict FIFO: the next job is claimed only after
//! the previous one finished); N is the MultiJobWorker. Workers claim independently, so their
//! claims' flushes overlap and are shared by group commit; claim, plugin call and report run
//! on the worker's own thread, with no hand-off to the runtime per job. An idle worker sleeps until a job
//! is added (a `Notify`), a waiting job becomes due, or the poll interval passes (the
//! fallback); a worker that found a job wakes a peer, so a burst is picked up by all of them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::execute::Attempt;
use super::Inner;
use crate::clock::Micros;
use crate::store::{ClaimFilter, LeaseTerms};

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

    /// Held while a claim is in flight, so that `stop_queue` waits it out; `None` once the
    /// queue is stopping: it claims nothing more.
    pub fn open_for_claims(&self) -> Option<RwLockReadGuard<'_, ()>> {
        let claiming = self.claiming.read().unwrap_or_else(PoisonError::into_inner);
        (!*self.stop.borrow()).then_some(claiming)
    }

    pub fn claim_filter(&self) -> ClaimFilter<'_> {
        ClaimFilter { queue: Some(&self.name), factory: None }
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
    let runtime = tokio::runtime::Handle::current();
    let name = queue.name.clone();
    // The whole loop runs on one blocking thread: claim, plugin call and report without a
    // hand-off per job (the runtime only supervises leases and timeouts, and wakes it).
    if let Err(e) = tokio::task::spawn_blocking(move || work(&inner, &queue, &runtime)).await {
        log::error!("processor '{name}': a worker thread failed: {e}");
    }
}

fn work(inner: &Arc<Inner>, queue: &Arc<Queue>, runtime: &tokio::runtime::Handle) {
    let mut stop = queue.stop.subscribe();
    let lease = LeaseTerms { duration: inner.config.lease };
    // The job claimed together with the last outcome (`finish_and_claim`). It was claimed
    // before any stop, under the claim lock, so it runs even if a stop came since.
    let mut carried: Option<Attempt> = None;
    loop {
        if carried.is_none() && *stop.borrow_and_update() {
            return;
        }
        // Register for the wake-up before looking, so an add between the look and the wait
        // is not missed.
        let mut woken = Box::pin(queue.wake.notified());
        woken.as_mut().enable();
        let attempt = match carried.take() {
            Some(attempt) => Ok(Some(attempt)),
            None => match queue.open_for_claims() {
                None => return,
                Some(_claiming) => inner
                    .store
                    .claim(&queue.claim_filter(), inner.clock.now(), lease)
                    .map(|claimed| claimed.map(|claimed| inner.begin(claimed))),
            },
        };
        let wait = match attempt {
            Ok(Some(attempt)) => {
                // There may be more: let an idle peer look too.
                queue.wake.notify_one();
                let id = attempt.claimed.job.id;
                queue.busy.fetch_add(1, Ordering::Relaxed);
                // The SDK catches panics inside the plugin; one escaping here is a host defect
                // and must not take the worker down with it.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    super::execute::run(inner, attempt, Some(queue))
                }));
                match ran {
                    Ok(Ok(reported)) => carried = reported.next,
                    Ok(Err(e)) => log::error!("job {id}: could not record its outcome: {e}"),
                    Err(_) => {
                        inner.running_remove(id);
                        log::error!("job {id}: its attempt panicked in the host; the lease will requeue it");
                    }
                }
                queue.busy.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            Ok(None) => idle_wait(inner),
            Err(e) => {
                log::error!("processor '{}': claim failed: {e}", queue.name);
                inner.config.poll_interval
            }
        };
        let stopped = runtime.block_on(async {
            tokio::select! {
                _ = &mut woken => false,
                _ = tokio::time::sleep(wait) => false,
                _ = stop.changed() => true,
            }
        });
        if stopped {
            return;
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
