//! The pool's workers, and the one place jobs are claimed and outcomes reported.
//!
//! Workers are threads of their own (never the runtime's blocking pool, which request handlers
//! use), at most `max_workers` per host, shared by every queue: an idle worker takes the queue
//! that has waited longest in the pool's list of queues with work, takes one of its places
//! (its concurrency), claims, runs and reports, then moves on to the next queue in line, or,
//! when no other queue waits, claims that queue's next job in the same transaction as the
//! outcome (`finish_and_claim`). Concurrency 1 is m01.remote's SimpleJobWorker (strict FIFO:
//! the next job is claimed only after the previous one finished); N is its MultiJobWorker. A
//! queue is listed when a job is added or becomes ready there; idle workers also look at every
//! queue when a waiting job becomes due and every poll interval (the fallback).
//!
//! **Invariant:** a worker claims a job only once it can run it (its worker process ready)
//! and its queue has a free place; plugin code runs only on workers (or in their processes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::execute::{Attempt, Ending, Executor, Ran};
use super::queue::Queue;
use super::running::RunningJob;
use super::state::{PoolState, WorkerState, WorkerStatus};
use super::supervisor;
use crate::clock::Micros;
use crate::job::{Job, Status};
use crate::store::{ClaimFilter, Claimed, Finished, Report, StoreError, StoreResult};
use crate::sync;

/// Lists `queue` for the workers, starting one if none is idle, the queue has a free place
/// and `max_workers` allows.
pub(super) fn offer(state: &Arc<PoolState>, queue: &Arc<Queue>) {
    if state.list(queue) && queue.running() < queue.concurrency {
        staff(state);
    }
}

/// Starts one more worker (its thread) when every worker is running a job, unless
/// `max_workers` run already. (A worker between two jobs takes the next one soon enough:
/// starting another, and its worker process, would cost more than it saves.)
pub(super) fn staff(state: &Arc<PoolState>) {
    let mut workers = sync::lock(&state.workers);
    let id = workers.len();
    let all_busy = state.running.len() >= id;
    if !all_busy || id >= state.shared.config.max_workers || state.stopping.load(Ordering::SeqCst) {
        return;
    }
    workers.push(WorkerStatus { id, ..WorkerStatus::default() });
    drop(workers);
    let worker = state.clone();
    let spawned =
        std::thread::Builder::new().name(format!("jobhost-worker-{id}")).spawn(move || work(&worker, id));
    if let Err(e) = spawned {
        log::error!("cannot start worker {id}: {e}");
        sync::lock(&state.workers).pop();
    }
}

fn work(state: &Arc<PoolState>, id: usize) {
    let shared = &state.shared;
    let mut executor = Executor::for_plugins(&sync::read(&shared.plugins));
    // Ready before it waits for work (its worker process started), so a job it takes does
    // not wait for a process to start.
    ready_up(state, &mut executor, id);
    // The job claimed together with the last outcome (`finish_and_claim`), with its queue's
    // place. It was claimed before any stop, under the claim lock, so it runs even if a stop
    // came since.
    let mut carried: Option<(Arc<Queue>, Attempt)> = None;
    loop {
        let (queue, attempt) = match carried.take() {
            Some(carried) => carried,
            None => match next_job(state, &mut executor, id) {
                Some(next) => next,
                None if state.stopping.load(Ordering::SeqCst) => break,
                None => continue,
            },
        };
        let job_id = attempt.claimed.job.id;
        state.set_worker(id, |w| {
            w.state = WorkerState::Running;
            w.job = Some(job_id);
            w.queue = Some(queue.name.clone());
        });
        // The SDK catches panics inside the plugin; one escaping here is a host defect and
        // must not take the worker down with it.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_and_report(state, &mut executor, attempt, &queue)
        }));
        match ran {
            Ok(Ok(Some(next))) => {
                carried = Some((queue, next));
                continue;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => log::error!("job {job_id}: could not record its outcome: {e}"),
            Err(_) => {
                state.running.remove(job_id);
                log::error!("job {job_id}: its attempt panicked in the host; the lease will requeue it");
            }
        }
        queue.give_place();
        // It may have more (or was full while others waited for it): back in line.
        offer(state, &queue);
        state.set_worker(id, |w| {
            *w = WorkerStatus {
                id,
                pid: executor.pid(),
                restarts: executor.restarts(),
                ..WorkerStatus::default()
            }
        });
    }
    executor.stop();
}

/// The next job for worker `id`: from the queue that has waited longest, once the worker can
/// run it and the queue has a place. `None` when there is none for now (after waiting up to
/// the next due time or the poll interval) or the pool stops.
fn next_job(state: &Arc<PoolState>, executor: &mut Executor, id: usize) -> Option<(Arc<Queue>, Attempt)> {
    let shared = &state.shared;
    let Some(queue) = state.next_queue(idle_wait(state)) else {
        // Nothing listed for a while (or a reload woke it): a waiting job may be due, or a
        // notification lost; and its worker process may need replacing.
        state.list_all();
        ready_up(state, executor, id);
        return None;
    };
    if !queue.take_place() {
        return None; // full: listed again when one of its jobs ends
    }
    if !ready_up(state, executor, id) {
        queue.give_place();
        // Someone else may run it meanwhile.
        offer(state, &queue);
        return None;
    }
    if shared.store.unwritable().is_some() {
        // A claim is a write: wait for the store to heal (the host probes it every second)
        // rather than fail and log once per worker per poll.
        queue.give_place();
        sleep_unless_stopping(state, shared.config.poll_interval);
        state.list(&queue);
        return None;
    }
    let claimed = match queue.open_for_claims() {
        None => Ok(None),
        Some(_claiming) => shared
            .store
            .claim(&queue.claim_filter(), shared.now(), shared.lease_terms())
            .map(|claimed| claimed.map(|claimed| begin(state, claimed, &queue.name))),
    };
    match claimed {
        Ok(Some(attempt)) => {
            // There may be more: let another worker look too.
            offer(state, &queue);
            Some((queue, attempt))
        }
        Ok(None) => {
            queue.give_place();
            None
        }
        Err(e) => {
            queue.give_place();
            log::error!("queue '{}': claim failed: {e}", queue.name);
            sleep_unless_stopping(state, shared.config.poll_interval);
            state.list(&queue);
            None
        }
    }
}

/// Gets the executor ready (a worker process of the current plugins), waiting out a backoff
/// after deaths in a row; false if it is not ready yet.
fn ready_up(state: &PoolState, executor: &mut Executor, id: usize) -> bool {
    match executor.prepare(&state.shared) {
        Ok(()) => {
            state.set_worker(id, |w| {
                w.pid = executor.pid();
                w.restarts = executor.restarts();
                w.state = WorkerState::Idle;
            });
            true
        }
        Err(unready) => {
            state.set_worker(id, |w| w.state = WorkerState::BackingOff);
            sleep_unless_stopping(state, unready.wait);
            false
        }
    }
}

fn sleep_unless_stopping(state: &PoolState, wait: Duration) {
    let deadline = Instant::now() + wait;
    while !state.stopping.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// How long an idle worker waits for work: until the next waiting job is due, at most the
/// poll interval.
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

/// Runs a registered attempt to its end on the calling thread and reports it; claims the
/// queue's next job along with the outcome when no other queue waits for a worker (and the
/// queue is not stopping), and returns it, registered, its place kept.
fn run_and_report(
    state: &Arc<PoolState>,
    executor: &mut Executor,
    attempt: Attempt,
    queue: &Queue,
) -> StoreResult<Option<Attempt>> {
    let ran = executor.run(&state.shared, &state.running, &attempt, queue);
    state.running.remove(attempt.claimed.job.id);
    let carry = !state.others_waiting(queue);
    report(state, attempt.claimed, ran, carry.then_some(queue)).map(|(_, next)| next)
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
            log_outcome(&done, ms);
            state.tally(&done.queue, done.status);
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

/// One line per ended attempt: a completion at debug (a busy host finishes thousands a
/// second), a retry or cancel at info, a failure at warn, each with the job's fields.
fn log_outcome(done: &Job, ms: f64) {
    let (id, factory, queue, attempt) =
        (done.id.0, done.factory.as_str(), done.queue.as_str(), done.attempts);
    let error = done.errors.last().map_or("", String::as_str);
    match done.status {
        Status::Completed => log::debug!(
            job = id, factory, queue, attempt;
            "job {id} ({factory}) completed in {ms:.1} ms"
        ),
        Status::Queued => log::info!(
            job = id, factory, queue, attempt;
            "job {id} ({factory}) failed attempt {attempt}/{}, will retry: {error}", done.max_attempts
        ),
        Status::Cancelled => log::info!(job = id, factory, queue, attempt; "job {id} ({factory}) cancelled"),
        status => log::warn!(
            job = id, factory, queue, attempt;
            "job {id} ({factory}) ended in {status} after {attempt} attempt(s): {error}"
        ),
    }
}

/// Claims the next ready job matching `filter` and runs it to its end on a blocking thread (the
/// m01.remote `processNextJob`), with the pool's one-shot executor. `None` when nothing is
/// ready; an error if no worker process can be started to run it.
pub(super) async fn run_one(
    state: &Arc<PoolState>,
    filter: ClaimFilter<'_>,
) -> Result<Option<Job>, RunError> {
    let shared = &state.shared;
    supervisor::ensure(state);
    let mut executor = sync::lock(&state.one_shot)
        .take()
        .unwrap_or_else(|| Executor::for_plugins(&sync::read(&shared.plugins)));
    let one_shot = Arc::new(Queue::new("process-next", 1));
    // Something must be able to run the job before it is claimed.
    if let Err(unready) = executor.prepare(shared) {
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
