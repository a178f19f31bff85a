//! One attempt of one claimed job: run the factory (on a blocking thread), decide the outcome,
//! and report it with the attempt's token. While attempts run, one supervisor task per host
//! renews their leases and enforces their timeouts (`supervise`), so the thread running a job
//! never waits on the async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use jobhost_plugin_api::{Failure, FailureKind};

use super::queue::Queue;
use super::{Inner, Running};
use crate::clock::duration_micros;
use crate::job::{Job, Outcome, Progress};
use crate::plugins::{Factory, ProgressSink, RunContext};
use crate::store::{Claimed, Finished, LeaseTerms, Store, StoreResult};

/// How often the supervisor looks at the running attempts: the resolution of timeouts.
const SUPERVISOR_TICK: Duration = Duration::from_millis(25);

/// Stores progress reports against the attempt's token.
struct StoreProgress {
    store: Arc<dyn Store>,
    id: u64,
    token: u64,
}

impl ProgressSink for StoreProgress {
    fn report(&self, fraction: f64, message: &str) {
        let progress = Progress { fraction, message: message.to_owned() };
        if let Err(e) = self.store.set_progress(self.id, self.token, progress) {
            log::warn!("job {}: could not store progress: {e}", self.id);
        }
    }
}

/// A claimed attempt, registered with the supervisor.
pub(super) struct Attempt {
    pub claimed: Claimed,
    pub factory: Option<Factory>,
    pub timeout: Option<Duration>,
    pub cancel: Arc<AtomicBool>,
    pub timed_out: Arc<AtomicBool>,
}

impl Inner {
    /// Registers a claimed job as running here (for cancels, the supervisor and a shutdown).
    /// Called as soon as the claim returns, so nothing misses a claimed job.
    pub(super) fn begin(self: &Arc<Self>, claimed: Claimed) -> Attempt {
        self.ensure_supervisor();
        let factory = self.factory(&claimed.job.factory);
        let timeout = claimed
            .job
            .timeout_ms
            .map(Duration::from_millis)
            .or(factory.as_ref().and_then(|f| f.defaults().timeout));
        let cancel = Arc::new(AtomicBool::new(claimed.job.cancel_requested));
        let timed_out = Arc::new(AtomicBool::new(false));
        let now = Instant::now();
        let running = Running {
            token: claimed.token,
            cancel: cancel.clone(),
            timed_out: timed_out.clone(),
            deadline: timeout.map(|t| now + t),
            renew_at: now + self.config.lease / 3,
        };
        self.running.lock().unwrap_or_else(PoisonError::into_inner).insert(claimed.job.id, running);
        // A cancel that landed between the claim and the insert found no flag to set; it did
        // mark the record first, so reading the record after the insert catches it.
        if let Ok(Some(job)) = self.store.get(claimed.job.id) {
            if job.cancel_requested {
                cancel.store(true, Ordering::Relaxed);
            }
        }
        Attempt { claimed, factory, timeout, cancel, timed_out }
    }

    /// Starts the supervisor once per host (needs a Tokio runtime). It ends with the host.
    fn ensure_supervisor(self: &Arc<Self>) {
        if self.supervisor_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::runtime::Handle::current().spawn(async move {
            let mut tick = tokio::time::interval(SUPERVISOR_TICK);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                supervise(&inner);
            }
        });
    }
}

/// One look at every running attempt: past its deadline → timed out (its cancellation flag
/// set); lease a third gone → renewed.
fn supervise(inner: &Inner) {
    let now = Instant::now();
    let mut renew = Vec::new();
    {
        let mut running = inner.running.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, r) in running.iter_mut() {
            if r.deadline.is_some_and(|d| d <= now) && !r.timed_out.swap(true, Ordering::Relaxed) {
                r.cancel.store(true, Ordering::Relaxed);
            }
            if r.renew_at <= now {
                r.renew_at = now + inner.config.lease / 3;
                renew.push((*id, r.token));
            }
        }
    }
    let lease = LeaseTerms { duration: inner.config.lease };
    for (id, token) in renew {
        match inner.store.heartbeat(id, token, inner.clock.now(), lease) {
            Ok(true) => {}
            Ok(false) => log::warn!("job {id}: lease lost; its outcome will be discarded"),
            Err(e) => log::error!("job {id}: could not renew its lease: {e}"),
        }
    }
}

/// What reporting an attempt's outcome did.
pub(super) struct Reported {
    /// The job as stored afterwards; `None` if the outcome was stale (a newer attempt owns
    /// the job).
    pub job: Option<Job>,
    /// The queue's next job, claimed in the same transaction as the outcome and already
    /// registered (`begin`).
    pub next: Option<Attempt>,
}

/// Runs a registered attempt to its end on the calling (blocking) thread and reports it; with
/// `next`, claims that queue's next job along with the outcome (unless the queue is stopping).
pub(super) fn run(inner: &Arc<Inner>, attempt: Attempt, next: Option<&Queue>) -> StoreResult<Reported> {
    let Attempt { claimed: Claimed { job, token }, factory, timeout, cancel, timed_out } = attempt;
    let id = job.id;
    let Some(factory) = factory else {
        inner.running_remove(id);
        // The plugin is gone (the host restarted without it): retrying cannot help.
        let error = format!("unknown job factory `{}`: no loaded plugin provides it", job.factory);
        return report(inner, &job, token, Outcome::Failed { error }, Duration::ZERO, next);
    };
    log::info!("job {id} ({}) started, attempt {}/{}", job.factory, job.attempts, job.max_attempts);
    let started = Instant::now();
    let sink = StoreProgress { store: inner.store.clone(), id, token };
    let returned = factory
        .run(&RunContext { job_id: id, attempt: job.attempts, cancel: &cancel, progress: &sink }, &job.input);
    inner.running_remove(id);
    let elapsed = started.elapsed();
    let outcome = if timed_out.load(Ordering::Relaxed) {
        let secs = timeout.unwrap_or_default().as_secs_f64();
        inner.retry_or_fail(&job, &factory, format!("timed out after {secs}s"), None)
    } else {
        match returned {
            Ok(result) => Outcome::Completed { result },
            Err(failure) => failure_outcome(inner, &job, &factory, failure),
        }
    };
    report(inner, &job, token, outcome, elapsed, next)
}

/// Runs a registered attempt on a blocking thread (plugin code never runs on the runtime's
/// core threads) and waits for it.
pub(super) async fn run_async(inner: &Arc<Inner>, attempt: Attempt) -> StoreResult<Option<Job>> {
    let id = attempt.claimed.job.id;
    let inner2 = inner.clone();
    match tokio::task::spawn_blocking(move || run(&inner2, attempt, None)).await {
        Ok(result) => result.map(|reported| reported.job),
        Err(e) => {
            // The SDK catches panics inside the plugin; this is a host-side defect.
            inner.running_remove(id);
            log::error!("job {id}: its thread failed: {e}");
            Ok(None)
        }
    }
}

fn failure_outcome(inner: &Inner, job: &Job, factory: &Factory, failure: Failure) -> Outcome {
    match failure.kind() {
        FailureKind::Permanent => Outcome::Failed { error: failure.message().to_owned() },
        FailureKind::Retryable => {
            inner.retry_or_fail(job, factory, failure.message().to_owned(), failure.retry_delay())
        }
    }
}

impl Inner {
    /// A retryable failure: another attempt after backoff, or `error` once attempts are spent.
    fn retry_or_fail(
        &self,
        job: &Job,
        factory: &Factory,
        error: String,
        at_least: Option<Duration>,
    ) -> Outcome {
        if job.attempts >= job.max_attempts {
            return Outcome::Failed { error };
        }
        let delay = self.config.retry.delay(job.attempts, factory.defaults().retry_delay, at_least);
        Outcome::Retry { error, retry_at: self.clock.now().saturating_add(duration_micros(delay)) }
    }
}

fn report(
    inner: &Arc<Inner>,
    job: &Job,
    token: u64,
    outcome: Outcome,
    elapsed: Duration,
    next: Option<&Queue>,
) -> StoreResult<Reported> {
    let id = job.id;
    let ms = elapsed.as_secs_f64() * 1000.0;
    let now = inner.clock.now();
    let (finished, next) = match next.and_then(|queue| Some((queue, queue.open_for_claims()?))) {
        Some((queue, _claiming)) => {
            let lease = LeaseTerms { duration: inner.config.lease };
            let filter = queue.claim_filter();
            let (finished, next) = inner.store.finish_and_claim(id, token, outcome, now, &filter, lease)?;
            // Registered under the claim lock, as a fresh claim is: once `stop_queue` returns,
            // a shutdown finds every claimed job in `running`.
            (finished, next.map(|claimed| inner.begin(claimed)))
        }
        None => (inner.store.finish(id, token, outcome, now)?, None),
    };
    let job = match finished {
        Finished::Applied(done) => {
            match done.errors.last().filter(|_| done.status != crate::job::Status::Completed) {
                Some(error) => {
                    log::info!("job {id} ({}) {} after {ms:.1} ms: {error}", done.factory, done.status)
                }
                None => log::info!("job {id} ({}) {} in {ms:.1} ms", done.factory, done.status),
            }
            inner.metrics.record_attempt(&done.factory, done.status, elapsed);
            inner.publish(&done);
            Some(done)
        }
        Finished::Stale => {
            log::warn!("job {id}: outcome of a superseded attempt discarded");
            None
        }
    };
    Ok(Reported { job, next })
}
