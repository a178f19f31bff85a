//! One attempt of one claimed job: run the factory on a blocking thread, renew the lease while
//! it runs, enforce the timeout, decide the outcome, and report it with the attempt's token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhost_plugin_api::{Failure, FailureKind};

use super::Inner;
use crate::clock::duration_micros;
use crate::job::{Job, Outcome, Progress};
use crate::plugins::{ProgressSink, RunContext};
use crate::store::{Claimed, Finished, LeaseTerms, Store, StoreResult};

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

/// Runs one claimed attempt to its end and returns the job as stored afterwards (`None` if the
/// outcome was stale: a newer attempt owns the job).
/// `cancel` is the flag [`Inner::track`] registered when the job was claimed. The plugin runs on
/// a blocking thread started here.
pub(super) async fn execute(
    inner: &Arc<Inner>,
    claimed: Claimed,
    cancel: Arc<AtomicBool>,
) -> StoreResult<Option<Job>> {
    let call = match inner.factory(&claimed.job.factory) {
        Some(factory) => {
            let (inner, cancel, job) = (inner.clone(), cancel.clone(), claimed.job.clone());
            let token = claimed.token;
            // Plugin code is synchronous and may block for as long as it likes: never on the
            // runtime's core threads.
            let call =
                tokio::task::spawn_blocking(move || run_plugin(&inner, &factory, &job, token, &cancel));
            Some(async move { call.await.unwrap_or_else(|e| Err(thread_failed(e))) })
        }
        None => None,
    };
    supervise(inner, claimed, cancel, call).await
}

/// Runs the job's factory on the calling (blocking) thread.
pub(super) fn run_plugin(
    inner: &Arc<Inner>,
    factory: &crate::plugins::Factory,
    job: &Job,
    token: u64,
    cancel: &AtomicBool,
) -> Result<String, Failure> {
    let sink = StoreProgress { store: inner.store.clone(), id: job.id, token };
    factory.run(&RunContext { job_id: job.id, attempt: job.attempts, cancel, progress: &sink }, &job.input)
}

/// Watches an attempt whose plugin call is `call` (already running on a blocking thread):
/// renews its lease, enforces its timeout, then reports its outcome. `call` is `None` when no
/// loaded plugin provides the factory.
pub(super) async fn supervise(
    inner: &Arc<Inner>,
    claimed: Claimed,
    cancel: Arc<AtomicBool>,
    call: Option<impl std::future::Future<Output = Result<String, Failure>>>,
) -> StoreResult<Option<Job>> {
    let Claimed { job, token } = claimed;
    let id = job.id;
    let (Some(factory), Some(call)) = (inner.factory(&job.factory), call) else {
        inner.running_remove(id);
        // The plugin is gone (the host restarted without it): retrying cannot help.
        let error = format!("unknown job factory `{}`: no loaded plugin provides it", job.factory);
        return report(inner, &job, token, Outcome::Failed { error }, Duration::ZERO).await;
    };
    let timeout = job.timeout_ms.map(Duration::from_millis).or(factory.defaults().timeout);
    let lease = LeaseTerms { duration: inner.config.lease };
    log::info!("job {id} ({}) started, attempt {}/{}", job.factory, job.attempts, job.max_attempts);

    let started = Instant::now();
    tokio::pin!(call);
    // The claim just set the lease: the first renewal is due a third of a lease from now. (Not
    // `interval()` with its "immediate" first tick: that tick still waits for the timer
    // wheel's next millisecond, which alone capped a worker at ~700 jobs/s.)
    let period = inner.config.lease / 3;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    let mut timed_out = false;
    let returned = loop {
        tokio::select! {
            returned = &mut call => break returned,
            _ = heartbeat.tick() => {
                match inner.store.heartbeat(id, token, inner.clock.now(), lease) {
                    Ok(true) => {}
                    Ok(false) => log::warn!("job {id}: lease lost; its outcome will be discarded"),
                    Err(e) => log::error!("job {id}: could not renew its lease: {e}"),
                }
            }
            _ = &mut deadline, if timeout.is_some() && !timed_out => {
                timed_out = true;
                cancel.store(true, Ordering::Relaxed);
            }
        }
    };
    inner.running_remove(id);
    let elapsed = started.elapsed();

    let outcome = match returned {
        _ if timed_out => {
            let secs = timeout.unwrap_or_default().as_secs_f64();
            inner.retry_or_fail(&job, &factory, format!("timed out after {secs}s"), None)
        }
        Ok(result) => Outcome::Completed { result },
        Err(failure) => failure_outcome(inner, &job, &factory, failure),
    };
    report(inner, &job, token, outcome, elapsed).await
}

/// The plugin's blocking thread died without a result. The SDK catches panics inside the
/// plugin, so this is a host-side defect; the attempt is retried.
pub(super) fn thread_failed(e: tokio::task::JoinError) -> Failure {
    Failure::retryable(format!("the job's thread failed: {e}"))
}

fn failure_outcome(inner: &Inner, job: &Job, factory: &crate::plugins::Factory, failure: Failure) -> Outcome {
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
        factory: &crate::plugins::Factory,
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

async fn report(
    inner: &Arc<Inner>,
    job: &Job,
    token: u64,
    outcome: Outcome,
    elapsed: Duration,
) -> StoreResult<Option<Job>> {
    let id = job.id;
    let ms = elapsed.as_secs_f64() * 1000.0;
    match inner.store.finish(id, token, outcome, inner.clock.now())? {
        Finished::Applied(done) => {
            match done.errors.last().filter(|_| done.status != crate::job::Status::Completed) {
                Some(error) => {
                    log::info!("job {id} ({}) {} after {ms:.1} ms: {error}", done.factory, done.status)
                }
                None => log::info!("job {id} ({}) {} in {ms:.1} ms", done.factory, done.status),
            }
            inner.metrics.record_attempt(&done.factory, done.status, elapsed);
            inner.publish(&done);
            Ok(Some(done))
        }
        Finished::Stale => {
            log::warn!("job {id}: outcome of a superseded attempt discarded");
            Ok(None)
        }
    }
}
