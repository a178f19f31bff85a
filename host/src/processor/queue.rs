//! One named queue's processor: a claim loop feeding a pool of `concurrency` workers.
//!
//! Concurrency 1 is the seeds' SimpleJobWorker (strict FIFO: the next job is claimed only after
//! the previous one finished); N is the MultiJobWorker. The loop sleeps until a job is added
//! (a `Notify`), a waiting job becomes due, or the poll interval passes (the fallback).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::Inner;
use crate::clock::Micros;
use crate::store::{ClaimFilter, LeaseTerms};

/// Runtime state of one queue.
pub(super) struct Queue {
    pub name: String,
    pub concurrency: usize,
    /// One permit per worker slot; a claimed job holds one until its attempt is reported.
    pub slots: Arc<Semaphore>,
    /// Woken when a job is added to this queue.
    pub wake: Notify,
    /// Whether the claim loop runs (start/stop at run time).
    pub processing: AtomicBool,
    /// Tells the running claim loop to stop claiming; running jobs finish on their own.
    pub stop: watch::Sender<bool>,
    /// The claim loop's task while it runs (a shutdown waits for it).
    pub task: Mutex<Option<JoinHandle<()>>>,
    /// Held while a claim is in flight; `stop_queue` takes it to wait one out.
    pub claiming: Mutex<()>,
}

impl Queue {
    pub fn new(name: &str, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Queue {
            name: name.to_owned(),
            concurrency,
            slots: Arc::new(Semaphore::new(concurrency)),
            wake: Notify::new(),
            processing: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            claiming: Mutex::new(()),
        }
    }

    /// Jobs of this queue running now.
    pub fn running(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }
}

/// The claim loop; returns when `queue.stop` is set.
pub(super) async fn run(inner: Arc<Inner>, queue: Arc<Queue>) {
    let mut stop = queue.stop.subscribe();
    log::info!("processor '{}' started (concurrency {})", queue.name, queue.concurrency);
    let lease = LeaseTerms { duration: inner.config.lease };
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        let permit = tokio::select! {
            permit = queue.slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // the semaphore is never closed; stop rather than spin
            },
            _ = stop.changed() => break,
        };
        // Register for the wake-up before looking, so an add between the look and the wait
        // is not missed.
        let woken = queue.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let claimed = {
            let (inner, queue) = (inner.clone(), queue.clone());
            tokio::task::spawn_blocking(move || {
                // Under the claim lock and after checking `stop`: once `stop_queue` returns,
                // this queue claims nothing more.
                let _claiming = queue.claiming.lock().unwrap_or_else(PoisonError::into_inner);
                if *queue.stop.borrow() {
                    return Ok(None);
                }
                let filter = ClaimFilter { queue: Some(&queue.name), factory: None };
                inner.store.claim(&filter, inner.clock.now(), lease)
            })
            .await
        };
        let wait = match claimed {
            Ok(Ok(Some(claimed))) => {
                let inner = inner.clone();
                let cancel = inner.track(&claimed);
                tokio::spawn(async move {
                    let id = claimed.job.id;
                    if let Err(e) = super::execute::execute(&inner, claimed, cancel).await {
                        log::error!("job {id}: could not record its outcome: {e}");
                    }
                    drop(permit);
                });
                continue;
            }
            Ok(Ok(None)) => idle_wait(&inner),
            Ok(Err(e)) => {
                log::error!("processor '{}': claim failed: {e}", queue.name);
                inner.config.poll_interval
            }
            Err(e) => {
                log::error!("processor '{}': claim task failed: {e}", queue.name);
                inner.config.poll_interval
            }
        };
        drop(permit);
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    queue.processing.store(false, Ordering::SeqCst);
    log::info!("processor '{}' stopped", queue.name);
}

/// How long an idle loop sleeps: until the next waiting job is due, at most the poll interval.
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
