//! A queue's workers, and the one place jobs are claimed and outcomes reported.
//!
//! Each worker is a blocking thread claiming and running one job at a time. Concurrency 1 is
//! m01.remote's SimpleJobWorker (strict FIFO: the next job is claimed only after the previous
//! one finished); N is its MultiJobWorker. Workers claim independently, so their claims'
//! flushes overlap and are shared by group commit; claim, plugin call and report run on the
//! worker's own thread, with no hand-off to the runtime per job, and each outcome carries the
//! worker's next claim in the same transaction (`finish_and_claim`). An idle worker sleeps
//! until a job is added (a `Notify`), a waiting job becomes due, or the poll interval passes
//! (the fallback); a worker that found a job wakes a peer, so a burst is picked up by all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::execute::{Attempt, Ending, Executor, Ran};
use super::queue::Queue;
use super::running::RunningJob;
use super::state::PoolState;
use super::supervisor;
use crate::clock::Micros;
use crate::job::{Job, Status};
use crate::store::{ClaimFilter, Claimed, Finished, Report, StoreError, StoreResult};
use crate::sync;
use tokio::sync::watch;

/// Runs the queue's workers; returns when `queue.stop` is set and every worker has finished
/// its job.
pub(super) async fn run_queue(state: Arc<PoolState>, queue: Arc<Queue>) {
    log::info!("processor '{}' started (concurrency {})", queue.name, queue.concurrency);
    let workers: Vec<_> =
        (0..queue.concurrency).map(|_| tokio::spawn(worker(state.clone(), queue.clone()))).collect();
    for worker in workers {
        if let Err(e) = worker.await {
            log::error!("processor '{}': a worker failed: {e}", queue.name);
        }
    }
    queue.processing.store(false, Ordering::SeqCst);
    log::info!("processor '{}' stopped", queue.name);
}

async fn worker(state: Arc<PoolState>, queue: Arc<Queue>) {
    let runtime = tokio::runtime::Handle::current();
    let name = queue.name.clone();
    // The whole loop runs on one blocking thread: claim, plugin call and report without a
    // hand-off per job (the runtime only supervises leases and timeouts, and wakes it).
    if let Err(e) = tokio::task::spawn_blocking(move || work(&state, &queue, &runtime)).await {
        log::error!("processor '{name}': a worker thread failed: {e}");
    }
}

fn work(state: &Arc<PoolState>, queue: &Arc<Queue>, runtime: &tokio::runtime::Handle) {
    let shared = &state.shared;
    let mut executor = Executor::for_plugins(&sync::read(&shared.plugins));
    let mut stop = queue.stop.subscribe();
    // The job claimed together with the last outcome (`finish_and_claim`). It was claimed
    // before any stop, under the claim lock, so it runs even if a stop came since.
    let mut carried: Option<Attempt> = None;
    loop {
        if carried.is_none() && *stop.borrow_and_update() {
            break;
        }
        // A job is claimed only once something can run it: a worker process that loaded the
        // current plugins, or none while backing off after crashes.
        if carried.is_none() {
            if let Err(unready) = executor.prepare(shared, queue) {
                if sleep_unless_stopped(runtime, &mut stop, unready.wait) {
                    break;
                }
                continue;
            }
        }
        // Register for the wake-up before looking, so an add between the look and the wait
        // is not missed.
        let mut woken = Box::pin(queue.wake.notified());
        woken.as_mut().enable();
        let attempt = match carried.take() {
            Some(attempt) => Ok(Some(attempt)),
            None => match queue.open_for_claims() {
                None => break,
                Some(_claiming) => shared
                    .store
                    .claim(&queue.claim_filter(), shared.now(), shared.lease_terms())
                    .map(|claimed| claimed.map(|claimed| begin(state, claimed, &queue.name))),
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
                    run_and_report(state, &mut executor, attempt, queue)
                }));
                match ran {
                    Ok(Ok(next)) => carried = next,
                    Ok(Err(e)) => log::error!("job {id}: could not record its outcome: {e}"),
                    Err(_) => {
                        state.running.remove(id);
                        log::error!("job {id}: its attempt panicked in the host; the lease will requeue it");
                    }
                }
                queue.busy.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            Ok(None) => idle_wait(state),
            Err(e) => {
                log::error!("processor '{}': claim failed: {e}", queue.name);
                shared.config.poll_interval
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
            break;
        }
    }
    executor.stop();
}

/// Sleeps `wait`; true if the queue was stopped meanwhile.
fn sleep_unless_stopped(
    runtime: &tokio::runtime::Handle,
    stop: &mut watch::Receiver<bool>,
    wait: Duration,
) -> bool {
    runtime.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = stop.changed() => true,
        }
    })
}

/// How long an idle worker sleeps: until the next waiting job is due, at most the poll interval.
fn idle_wait(state: &PoolState) -> Duration {
    let poll = state.shared.config.poll_interval;
    match state.shared.store.next_due() {
        Ok(Some(due)) => {
            let until: Micros = due.saturating_sub(state.shared.now());
            Duration::from_micros(until.max(0) as u64).min(poll)
        }
        _ => poll,
    }
}

/// Registers a claimed job as running here (for cancels, the supervisor and a shutdown).
/// Called as soon as the claim returns, so nothing misses a claimed job.
pub(super) fn begin(state: &Arc<PoolState>, claimed: Claimed, queue: &str) -> Attempt {
    supervisor::ensure(state);
    let factory = state.shared.factory(&claimed.job.factory);
    let timeout = claimed
        .job
        .timeout_ms
        .map(Duration::from_millis)
        .or(factory.as_ref().and_then(|f| f.defaults.timeout));
    let cancel = Arc::new(AtomicBool::new(claimed.job.cancel_requested));
    let timed_out = Arc::new(AtomicBool::new(false));
    let now = Instant::now();
    state.running.insert(
        claimed.job.id,
        RunningJob {
            token: claimed.token,
            queue: queue.to_owned(),
            cancel: cancel.clone(),
            timed_out: timed_out.clone(),
            deadline: timeout.map(|t| now + t),
            renew_at: now + state.shared.config.lease / 3,
            worker: None,
            asked_to_stop_at: None,
            stuck: false,
        },
    );
    // A cancel that landed between the claim and the insert found no flag to set; it did
    // mark the record first, so reading the record after the insert catches it.
    if let Ok(Some(job)) = state.shared.store.get(claimed.job.id) {
        if job.cancel_requested {
            cancel.store(true, Ordering::Relaxed);
        }
    }
    Attempt { claimed, factory, timeout, cancel, timed_out }
}

/// Runs a registered attempt to its end on the calling (blocking) thread and reports it;
/// claims the queue's next job along with the outcome (unless the queue is stopping) and
/// returns it, registered.
fn run_and_report(
    state: &Arc<PoolState>,
    executor: &mut Executor,
    attempt: Attempt,
    queue: &Queue,
) -> StoreResult<Option<Attempt>> {
    let ran = executor.run(&state.shared, &state.running, &attempt, queue);
    state.running.remove(attempt.claimed.job.id);
    report(state, attempt.claimed, ran, Some(queue)).map(|(_, next)| next)
}

/// Records how an attempt ended (and, with `next`, claims the queue's next job in the same
/// transaction); logs, counts and announces it. The job as stored afterwards is `None` when
/// the outcome was stale (a newer attempt owns the job) or the job was given back.
fn report(
    state: &Arc<PoolState>,
    claimed: Claimed,
    ran: Ran,
    next: Option<&Queue>,
) -> StoreResult<(Option<Job>, Option<Attempt>)> {
    let shared = &state.shared;
    let Claimed { job, token } = claimed;
    let id = job.id;
    let now = shared.now();
    let outcome = match ran.ending {
        Ending::Outcome(outcome) => outcome,
        Ending::GiveBack(why) => {
            if shared.store.release(id, token, now)? {
                log::warn!("job {id} ({}): given back to its queue uncounted: {why}", job.factory);
            }
            return Ok((None, None));
        }
    };
    let report = Report { id, token, outcome };
    let (finished, next) = match next.and_then(|queue| Some((queue, queue.open_for_claims()?))) {
        Some((queue, _claiming)) => {
            let filter = queue.claim_filter();
            let (finished, next) =
                shared.store.finish_and_claim(report, now, &filter, shared.lease_terms())?;
            // Registered under the claim lock, as a fresh claim is: once `stop_queue` returns,
            // a shutdown finds every claimed job in `running`.
            (finished, next.map(|claimed| begin(state, claimed, &queue.name)))
        }
        None => (shared.store.finish(report, now)?, None),
    };
    let ms = ran.elapsed.as_secs_f64() * 1000.0;
    let job = match finished {
        Finished::Applied(done) => {
            match done.errors.last().filter(|_| done.status != Status::Completed) {
                Some(error) => {
                    log::info!("job {id} ({}) {} after {ms:.1} ms: {error}", done.factory, done.status)
                }
                None => log::info!("job {id} ({}) {} in {ms:.1} ms", done.factory, done.status),
            }
            shared.metrics.record_attempt(&done.factory, done.status, ran.elapsed);
            shared.events.publish(&done);
            Some(done)
        }
        Finished::Stale => {
            log::warn!("job {id}: outcome of a superseded attempt discarded");
            None
        }
    };
    Ok((job, next))
}

/// Claims the next ready job matching `filter` and runs it to its end on a blocking thread (the
/// m01.remote `processNextJob`), with the pool's one-shot executor. `None` when nothing is
/// ready; an error if no worker process can be started to run it.
pub(super) async fn run_one(
    state: &Arc<PoolState>,
    filter: ClaimFilter<'_>,
) -> Result<Option<Job>, RunError> {
    let shared = &state.shared;
    let mut executor = sync::lock(&state.one_shot)
        .take()
        .unwrap_or_else(|| Executor::for_plugins(&sync::read(&shared.plugins)));
    let one_shot = Arc::new(Queue::new("process-next", 1));
    // Something must be able to run the job before it is claimed.
    if let Err(unready) = executor.prepare(shared, &one_shot) {
        return Err(RunError::NoWorker(unready.reason));
    }
    let Some(claimed) = shared.store.claim(&filter, shared.now(), shared.lease_terms())? else {
        *sync::lock(&state.one_shot) = Some(executor);
        return Ok(None);
    };
    let id = claimed.job.id;
    let queue = claimed.job.queue.clone();
    let attempt = begin(state, claimed, &queue);
    let state2 = state.clone();
    let reported = tokio::task::spawn_blocking(move || {
        let ran = executor.run(&state2.shared, &state2.running, &attempt, &one_shot);
        *sync::lock(&state2.one_shot) = Some(executor);
        state2.running.remove(id);
        report(&state2, attempt.claimed, ran, None)
    })
    .await;
    let job = match reported {
        Ok(result) => result?.0,
        Err(e) => {
            // The SDK catches panics inside the plugin; this is a host-side defect.
            state.running.remove(id);
            log::error!("job {id}: its thread failed: {e}");
            None
        }
    };
    match job {
        Some(job) => Ok(Some(job)),
        None => Ok(Some(shared.store.get(id)?.ok_or(StoreError::NotFound(id))?)),
    }
}

/// Why `process_next` could not run a job.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no worker process to run jobs: {0}")]
    NoWorker(String),
}
