//! The pool's workers, and the one place jobs are claimed.
//!
//! Workers are threads of their own (never the runtime's blocking pool, which request handlers
//! use), at most `max_workers` per host, shared by every queue: an idle worker takes the queue
//! that has waited longest in the pool's list of queues with work, takes one of its places
//! (its concurrency), and takes a job claimed for that queue earlier or claims: one job when
//! the queue is shallow, up to its claim cap (`claim_batch`, more at a fast pace: `pace`) in
//! one transaction under backlog (the rest wait,
//! claimed, for the queue's next free places, oldest first). It runs the job, hands the
//! outcome to the recorder (many outcomes per transaction) and moves on to the next queue in
//! line. Concurrency 1 is m01.remote's SimpleJobWorker (strict FIFO); N is its MultiJobWorker.
//! A queue is listed when a job is added or becomes ready there, when jobs claimed for it
//! wait, or when outcomes are written after its claim came back empty under a limit on how
//! many run at once (the job that ended may have freed the place); idle workers also look at
//! every queue when a waiting job becomes due and every poll interval (the fallback).
//!
//! Jobs claimed together under backlog wait in the pool (`PoolState::claimed`), shared by every
//! worker of their queue, and a stop gives them back. A worker whose queue runs at its
//! concurrency, with no other queue waiting, sends one of them ahead to its worker process
//! (`Lookahead`), which goes on to it without a round trip; a worker with a free place that
//! finds nothing else to run asks such a job back (`RunningJobs::withdraw`), so no job waits
//! behind another while a place is free for it.
//!
//! **Invariant:** a worker claims a job only once it can run it (its worker process ready)
//! and its queue has a free place; every claimed job is in `running` before the claim lock is
//! released; plugin code runs only on workers (or in their processes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::attempt::{Attempt, Ending, Feed, NoFeed, Ran};
use super::execute::Executor;
use super::outcomes;
use super::queue::Queue;
use super::recorder::Record;
use super::running::RunningJob;
use super::state::{PoolState, WorkerState, WorkerStatus};
use super::supervisor;
use crate::clock::Micros;
use crate::job::{Job, Outcome};
use crate::limits::Scope;
use crate::store::{ClaimFilter, Claimed, StoreError, StoreResult};
use crate::sync;

/// Lists `queue` for the workers, starting one if none is idle or starting, the queue has a
/// free place and the pool has room.
pub(super) fn offer(state: &Arc<PoolState>, queue: &Arc<Queue>) {
    if state.list(queue) && queue.running() < queue.concurrency {
        staff(state, 1);
    }
}

/// Starts workers (their threads, each starting its worker process) until `wanted` are idle or
/// starting, within `max_workers` and the places of the processing queues (a worker beyond
/// those could never run a job). Workers start in parallel: a burst onto an idle pool has its
/// workers within one worker start, not one start per job that ends.
pub(super) fn staff(state: &Arc<PoolState>, wanted: usize) {
    if state.stopping.load(Ordering::SeqCst) {
        return;
    }
    let places: usize = sync::lock(&state.queues)
        .values()
        .filter(|q| q.processing.load(Ordering::SeqCst))
        .map(|q| q.concurrency)
        .fold(0, usize::saturating_add);
    let cap = state.shared.config.max_workers.min(places.max(1));
    let idle = sync::lock(&state.ready).idle;
    let mut workers = sync::lock(&state.workers);
    let available = idle + state.starting.load(Ordering::SeqCst);
    let more = wanted.saturating_sub(available).min(cap.saturating_sub(workers.len()));
    for _ in 0..more {
        let id = workers.len();
        workers.push(WorkerStatus { id, state: WorkerState::Starting, ..WorkerStatus::default() });
        state.starting.fetch_add(1, Ordering::SeqCst);
        let worker = state.clone();
        let spawned =
            std::thread::Builder::new().name(format!("jobhost-worker-{id}")).spawn(move || work(&worker, id));
        if let Err(e) = spawned {
            log::error!("cannot start worker {id}: {e}");
            workers.pop();
            state.starting.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
}

/// The queue may hold more ready jobs than the workers looking at it (its last claim came
/// back full, or jobs claimed for it wait): start workers for its free places.
fn staff_backlog(state: &Arc<PoolState>, queue: &Arc<Queue>) {
    state.list(queue);
    staff(state, queue.concurrency.saturating_sub(queue.running()));
}

fn work(state: &Arc<PoolState>, id: usize) {
    let shared = &state.shared;
    let mut executor = Executor::for_plugins(&sync::read(&shared.plugins));
    // Ready before it waits for work (its worker process started), so a job it takes does
    // not wait for a process to start.
    ready_up(state, &mut executor, id);
    state.starting.fetch_sub(1, Ordering::SeqCst);
    loop {
        let Some((queue, attempt)) = next_job(state, &mut executor, id) else {
            if state.stopping.load(Ordering::SeqCst) {
                break;
            }
            continue;
        };
        let job_id = attempt.claimed.job.id;
        state.set_worker(id, |w| {
            w.state = WorkerState::Running;
            w.job = Some(job_id);
            w.queue = Some(queue.name.clone());
        });
        // The SDK catches panics inside the plugin; one escaping here is a host defect and
        // must not take the worker down with it.
        let current = std::cell::Cell::new(job_id);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(state, &mut executor, attempt, &queue, id, &current);
        }));
        if ran.is_err() {
            let job_id = current.get();
            state.running.remove(job_id);
            log::error!("job {job_id}: its attempt panicked in the host; the lease will requeue it");
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
/// run it and the queue has a place, claimed earlier for that queue or claimed now. `None`
/// when there is none for now (after waiting up to the next due time or the poll interval) or
/// the pool stops.
fn next_job(state: &Arc<PoolState>, executor: &mut Executor, id: usize) -> Option<(Arc<Queue>, Attempt)> {
    let shared = &state.shared;
    let Some(queue) = state.next_queue(|| idle_wait(state)) else {
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
    if let Some(attempt) = state.take_claimed(&queue.name) {
        taken(state, &attempt);
        if queue.backlog() {
            top_up(state, &queue);
        }
        if state.has_claimed(&queue.name) || queue.backlog() {
            staff_backlog(state, &queue);
        }
        return Some((queue, attempt));
    }
    if shared.store.unwritable().is_some() {
        // A claim is a write: wait for the store to heal (the host probes it every second)
        // rather than fail and log once per worker per poll.
        queue.give_place();
        sleep_unless_stopping(state, shared.config.poll_interval);
        state.list(&queue);
        return None;
    }
    if state.recorder.behind() {
        // The store takes outcomes more slowly than jobs end: claiming more would only widen
        // the jobs ended and not recorded (run again if the host dies) and take the store's
        // time from the outcomes. The place goes back while this worker waits, and it goes
        // round again (jobs claimed meanwhile by others are taken first, other queues too).
        queue.give_place();
        state.recorder.wait_to_claim(&state.stopping, shared.config.poll_interval);
        state.list(&queue);
        return None;
    }
    let writes = state.writes.load(Ordering::SeqCst);
    match claim_for(state, &queue) {
        Ok(Some(first)) => {
            taken(state, &first);
            // There may be more (claimed, or ready): other workers look too, and more start
            // for the queue's free places.
            if state.has_claimed(&queue.name) || queue.backlog() {
                staff_backlog(state, &queue);
            }
            Some((queue, first))
        }
        Ok(None) => {
            queue.give_place();
            if under_running_limit(state, &queue) {
                // A limit may hold its jobs until an outcome being recorded frees a place: the
                // recorder lists it again once that outcome is written.
                queue.starve();
                if state.writes.load(Ordering::SeqCst) != writes {
                    // Outcomes were written during the claim, perhaps before the mark: look
                    // again.
                    state.list(&queue);
                }
            }
            // A place is free and nothing else is ready: a job sent ahead to a busy worker
            // process is asked back, to run here.
            state.running.withdraw(Some(&queue.name), 1);
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

/// How long the scopes of the limits on how many run at once are taken as read: a limit set
/// since is seen by an empty claim that long after at most (until then its queue waits for the
/// poll, as before).
const LIMITS_FRESH: Duration = Duration::from_secs(1);

/// Whether a limit on how many run at once (in all, or per key) may cover jobs of `queue`: its
/// own, or any factory's. Asked only after an empty claim, from the scopes read within
/// `LIMITS_FRESH`; a store that cannot say counts as no limit (the poll still looks again).
fn under_running_limit(state: &PoolState, queue: &Queue) -> bool {
    let mut cached = sync::lock(&state.running_limits);
    let fresh = cached.as_ref().is_some_and(|(at, _)| at.elapsed() < LIMITS_FRESH);
    if !fresh {
        let Ok(limits) = state.shared.store.limits() else { return false };
        let scopes = limits
            .into_iter()
            .filter(|l| l.limit.concurrency.is_some() || l.limit.per_key.is_some())
            .map(|l| l.limit.scope)
            .collect();
        *cached = Some((Instant::now(), scopes));
    }
    cached.as_ref().is_some_and(|(_, scopes)| {
        scopes.iter().any(|scope| match scope {
            Scope::Queue(name) => *name == queue.name,
            Scope::Factory(_) => true,
        })
    })
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

/// A worker took `attempt` and runs it now: it counts as running from here (its deadline, and
/// `staff`, which starts another worker when all are busy).
fn taken(state: &PoolState, attempt: &Attempt) {
    state.running.start(attempt.claimed.job.id, attempt.timeout.map(|t| Instant::now() + t));
}

/// Claims the queue's next jobs: the caller's own, and under backlog more for the queue's
/// next free places (its claim size, 1 on a shallow queue), each registered; the caller's is
/// returned, the others are kept claimed for the queue. `None` once the queue is stopped or
/// nothing is ready.
///
/// The jobs kept claimed for a queue, with those of claims in flight, stay within its claim
/// window (`claim_window`): each claim reserves its extra jobs first
/// (`PoolState::reserve_extra`), so workers claiming at once take smaller batches, never a
/// whole batch each, and still claim in parallel (each can claim its own job whatever the
/// others reserved).
fn claim_for(state: &Arc<PoolState>, queue: &Queue) -> StoreResult<Option<Attempt>> {
    let shared = &state.shared;
    let Some(_claiming) = queue.open_for_claims() else { return Ok(None) };
    let cap = queue.claim_cap(shared.config.claim_batch);
    let wanted = queue.claim_size().min(cap);
    let extra = state.reserve_extra(queue, wanted.saturating_sub(1), claim_window(cap));
    claim_reserved(state, queue, wanted, true, extra)
}

/// One claim of the caller's own job (if `own`) and `reserved` more, reserved before, to
/// keep for the queue's next places (the claim size it meant: `wanted`). Each job is registered
/// and kept while the claim is held open (the caller holds `open_for_claims`): a stop finds
/// every one. Ends the reservation whatever the store answers. The caller's job, if any.
fn claim_reserved(
    state: &Arc<PoolState>,
    queue: &Queue,
    wanted: usize,
    own: bool,
    reserved: usize,
) -> StoreResult<Option<Attempt>> {
    let shared = &state.shared;
    let asked = usize::from(own) + reserved;
    let claimed =
        match shared.store.claim_batch(&queue.claim_filter(), shared.now(), shared.lease_terms(), asked) {
            Ok(claimed) => claimed,
            Err(e) => {
                state.keep_reserved(queue, Vec::new(), reserved);
                return Err(e);
            }
        };
    queue.claimed(wanted, asked, claimed.len(), shared.config.claim_batch);
    let mut attempts = claimed.into_iter().map(|c| begin(state, c, &queue.name));
    let first = if own { attempts.next() } else { None };
    state.keep_reserved(queue, attempts, reserved);
    Ok(first)
}

/// How many jobs a queue keeps claimed for its next places at most, counting claims in
/// flight, given its claim cap now (`Queue::claim_cap`): one batch waiting for workers while
/// the next is claimed. One batch alone caps a drain at a batch per claim's round trip (on
/// PostgreSQL at concurrency 8, 5,600–7,200 jobs/s against 7,400 with two, in one sitting).
fn claim_window(cap: usize) -> usize {
    cap.saturating_mul(2)
}

/// Under backlog, once the jobs kept claimed for `queue` (counting claims in flight) are down
/// to one batch, claims the next batch before the caller runs the job it took: the other
/// workers find jobs kept for them rather than each claiming its own on an empty list (a round
/// trip each on PostgreSQL, whose claims then come back a job or two long). A failed top-up is
/// left to the next claim, which reports it.
fn top_up(state: &Arc<PoolState>, queue: &Queue) {
    let shared = &state.shared;
    let cap = queue.claim_cap(shared.config.claim_batch);
    if cap < 2 || state.recorder.behind() {
        return; // claims job by job, or the recorder is behind: the next claim waits for it
    }
    let Some(_claiming) = queue.open_for_claims() else { return };
    let asked = state.reserve_top_up(queue, cap, claim_window(cap));
    if asked == 0 {
        return;
    }
    // A failure is left to the next claim, which reports it.
    let _ = claim_reserved(state, queue, asked, false, asked);
}

/// The ending of an attempt cancelled while it waited for a worker, which then does not run.
/// (A cancel in the moment between a claim and its registration sets no flag: that job runs,
/// and the store still ends it `cancelled`, whatever it reports.)
fn cancelled_before_start(attempt: &Attempt) -> Option<Ran> {
    attempt.cancel.load(Ordering::Relaxed).then(cancelled)
}

/// How a job cancelled before it started ends. The store ends a job whose cancel was requested
/// `cancelled`, whatever the outcome.
fn cancelled() -> Ran {
    let error = "cancelled before it started".to_owned();
    Ran {
        ending: Ending::Outcome(Outcome::Failed { error, backtrace: None }),
        elapsed: Duration::ZERO,
        started_at: None,
    }
}

/// A job claimed and not started, cancelled: it ends so without running.
pub(super) fn end_cancelled(state: &Arc<PoolState>, attempt: Attempt) {
    finish(state, attempt, cancelled());
}

/// An attempt ended: its outcome to the recorder, then no longer running here. In that order:
/// a shutdown waits for the running set to empty and then for the recorder, so an outcome
/// must be with the recorder before its job leaves the set (the other way round, a stop on a
/// loaded machine could find both empty in between and exit without it).
fn finish(state: &Arc<PoolState>, attempt: Attempt, ran: Ran) {
    let id = attempt.claimed.job.id;
    outcomes::submit(state, Record { claimed: attempt.claimed, ran, done: None });
    state.running.remove(id);
}

/// Registers a claimed job here (for cancels, the supervisor and a shutdown), not started yet.
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
    let over_cpu = Arc::new(AtomicBool::new(false));
    state.running.insert(
        claimed.job.id,
        RunningJob {
            started: false,
            token: claimed.token,
            queue: queue.to_owned(),
            cancel: cancel.clone(),
            timed_out: timed_out.clone(),
            over_cpu: over_cpu.clone(),
            cpu_at_start: None,
            deadline: None,
            renew_at: Instant::now() + state.shared.config.lease / 3,
            worker: None,
            asked_to_stop_at: None,
            stuck: false,
            withdrawing: false,
        },
    );
    Attempt { claimed, factory, timeout, cancel, timed_out, over_cpu }
}

/// Runs a registered attempt to its end on the calling thread and hands the outcome to the
/// recorder; then, if its worker process went on to a job sent ahead, that one the same way
/// (`current` tells which runs). One cancelled while it waited for a worker does not run.
fn run(
    state: &Arc<PoolState>,
    executor: &mut Executor,
    attempt: Attempt,
    queue: &Arc<Queue>,
    worker: usize,
    current: &std::cell::Cell<crate::job::JobId>,
) {
    let mut feed = Lookahead { state, queue };
    let (ran, mut next) = match cancelled_before_start(&attempt) {
        Some(ran) => (ran, None),
        None => executor.run(&state.shared, &state.running, &attempt, queue, &mut feed),
    };
    end(state, &mut feed, attempt, ran);
    while let Some(attempt) = next.take() {
        // Already in its worker process, which has taken it up: it runs now, whatever its flag
        // (a cancel reaches it there).
        let job_id = attempt.claimed.job.id;
        current.set(job_id);
        taken(state, &attempt);
        state.set_worker(worker, |w| w.job = Some(job_id));
        let ran;
        (ran, next) = executor.run(&state.shared, &state.running, &attempt, queue, &mut feed);
        end(state, &mut feed, attempt, ran);
    }
}

/// An attempt ended: recorded, or back to the pool if it was withdrawn before it started.
fn end(state: &Arc<PoolState>, feed: &mut Lookahead<'_>, attempt: Attempt, ran: Ran) {
    if matches!(ran.ending, Ending::Withdrawn) {
        feed.give_back(attempt);
    } else {
        finish(state, attempt, ran);
    }
}

/// Where a worker gets the job it sends ahead to its worker process: a job claimed for its
/// queue and not started, only while the queue runs at its concurrency (no worker could take
/// the job now) and no other queue waits for a worker (a worker goes on to the next queue in
/// line after each job otherwise). Under backlog with none claimed, it claims.
struct Lookahead<'a> {
    state: &'a Arc<PoolState>,
    queue: &'a Arc<Queue>,
}

impl Feed for Lookahead<'_> {
    fn next(&mut self) -> Option<Attempt> {
        let (state, queue) = (self.state, self.queue);
        if state.stopping.load(Ordering::SeqCst)
            || !queue.processing.load(Ordering::SeqCst)
            || queue.running() < queue.concurrency
            || sync::lock(&state.ready).queues.iter().any(|q| !Arc::ptr_eq(q, queue))
        {
            return None;
        }
        let attempt = match state.take_claimed(&queue.name) {
            Some(attempt) => attempt,
            None if queue.backlog() && !state.recorder.behind() => {
                // A failed claim is left to the next worker's claim, which reports it.
                claim_for(state, queue).ok()??
            }
            None => return None,
        };
        if attempt.cancel.load(Ordering::Relaxed) {
            end_cancelled(state, attempt);
            return None;
        }
        Some(attempt)
    }

    /// Back to the front of its queue's claimed jobs, for the next worker; released to the
    /// store instead once the queue or the host stops (a stop gives back the claimed jobs
    /// it finds, and this one may come after).
    fn give_back(&mut self, attempt: Attempt) {
        let (state, queue) = (self.state, self.queue);
        let id = attempt.claimed.job.id;
        if attempt.cancel.load(Ordering::Relaxed) {
            // Asked back because it was cancelled: it ends now, without waiting for a place.
            end_cancelled(state, attempt);
            return;
        }
        state.running.unstart(id);
        let stopped = {
            let mut claimed = sync::lock(&state.claimed);
            // Under the lock a stop drains the claimed jobs with, after it marked the queue
            // stopped: kept here only if that drain is still to come.
            if queue.processing.load(Ordering::SeqCst) && !state.stopping.load(Ordering::SeqCst) {
                claimed.entry(queue.name.clone()).or_default().push_front(attempt);
                None
            } else {
                Some(attempt)
            }
        };
        let Some(attempt) = stopped else {
            offer(state, queue);
            return;
        };
        let shared = &state.shared;
        match shared.store.release(id, attempt.claimed.token, shared.now()) {
            Ok(true) => log::info!(
                "job {id}: sent ahead to a worker process and not started; given back to its queue"
            ),
            Ok(false) => {}
            // Its lease requeues it.
            Err(e) => log::warn!("job {id}: sent ahead and not started, could not be given back: {e}"),
        }
        state.running.remove(id);
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
        state2.running.start(id, attempt.timeout.map(|t| Instant::now() + t));
        let (ran, _) = executor.run(&state2.shared, &state2.running, &attempt, &one_shot, &mut NoFeed);
        *sync::lock(&state2.one_shot) = Some(executor);
        let (done, stored) = std::sync::mpsc::channel();
        outcomes::submit(&state2, Record { claimed: attempt.claimed, ran, done: Some(done) });
        // After the outcome is with the recorder (see `finish`).
        state2.running.remove(id);
        stored.recv().ok().flatten()
    })
    .await;
    let job = match reported {
        Ok(job) => job,
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
