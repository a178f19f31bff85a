//! One attempt of one claimed job: run the factory on the calling (blocking) thread and decide
//! the outcome. Nothing here touches the store but progress reports: `worker` reports the
//! outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhost_plugin_api::{Failure, FailureKind};

use super::state::Shared;
use crate::clock::duration_micros;
use crate::job::{AttemptToken, Job, JobId, Outcome, Progress};
use crate::plugins::{Factory, ProgressSink, RunContext};
use crate::store::{Claimed, Store};

/// A claimed attempt, registered as running (see `worker::begin`).
pub(super) struct Attempt {
    pub claimed: Claimed,
    pub factory: Option<Factory>,
    pub timeout: Option<Duration>,
    pub cancel: Arc<AtomicBool>,
    pub timed_out: Arc<AtomicBool>,
}

/// How an attempt ended.
pub(super) struct Ran {
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Stores progress reports against the attempt's token.
struct StoreProgress {
    store: Arc<dyn Store>,
    id: JobId,
    token: AttemptToken,
}

impl ProgressSink for StoreProgress {
    fn report(&self, fraction: f64, message: &str) {
        let progress = Progress { fraction, message: message.to_owned() };
        if let Err(e) = self.store.set_progress(self.id, self.token, progress) {
            log::warn!("job {}: could not store progress: {e}", self.id);
        }
    }
}

/// Runs the attempt to its end and decides its outcome: the factory's result or failure, or
/// a timeout if the supervisor flagged one meanwhile.
pub(super) fn run(shared: &Shared, attempt: &Attempt) -> Ran {
    let job = &attempt.claimed.job;
    let Some(factory) = &attempt.factory else {
        // The plugin is gone (the host restarted without it): retrying cannot help.
        let error = format!("unknown job factory `{}`: no loaded plugin provides it", job.factory);
        return Ran { outcome: Outcome::Failed { error }, elapsed: Duration::ZERO };
    };
    log::info!("job {} ({}) started, attempt {}/{}", job.id, job.factory, job.attempts, job.max_attempts);
    let started = Instant::now();
    let sink = StoreProgress { store: shared.store.clone(), id: job.id, token: attempt.claimed.token };
    let ctx =
        RunContext { job_id: job.id.0, attempt: job.attempts, cancel: &attempt.cancel, progress: &sink };
    let returned = factory.run(&ctx, &job.input);
    let elapsed = started.elapsed();
    let outcome = if attempt.timed_out.load(Ordering::Relaxed) {
        let secs = attempt.timeout.unwrap_or_default().as_secs_f64();
        retry_or_fail(shared, job, factory, format!("timed out after {secs}s"), None)
    } else {
        match returned {
            Ok(result) => Outcome::Completed { result },
            Err(failure) => failure_outcome(shared, job, factory, failure),
        }
    };
    Ran { outcome, elapsed }
}

fn failure_outcome(shared: &Shared, job: &Job, factory: &Factory, failure: Failure) -> Outcome {
    match failure.kind() {
        FailureKind::Permanent => Outcome::Failed { error: failure.message().to_owned() },
        FailureKind::Retryable => {
            retry_or_fail(shared, job, factory, failure.message().to_owned(), failure.retry_delay())
        }
    }
}

/// A retryable failure: another attempt after backoff, or `error` once attempts are spent.
fn retry_or_fail(
    shared: &Shared,
    job: &Job,
    factory: &Factory,
    error: String,
    at_least: Option<Duration>,
) -> Outcome {
    if job.attempts >= job.max_attempts {
        return Outcome::Failed { error };
    }
    let delay = shared.config.retry.delay(job.attempts, factory.defaults().retry_delay, at_least);
    Outcome::Retry { error, retry_at: shared.now().saturating_add(duration_micros(delay)) }
}
