//! One attempt of one claimed job, whichever way it runs: what the worker hands the executor,
//! how the attempt ended, and the outcomes a timeout or a plugin's failure come to (retried
//! after backoff while attempts remain, else `error`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use jobhost_plugin_api::{Failure, FailureKind};

use super::shared::Shared;
use crate::clock::duration_micros;
use crate::job::{AttemptToken, Job, JobId, Outcome, Progress};
use crate::plugins::{FactoryInfo, ProgressSink};
use crate::store::{Claimed, Store};

/// A claimed attempt, registered as running (see `worker::begin`).
pub(super) struct Attempt {
    pub claimed: Claimed,
    pub factory: Option<FactoryInfo>,
    pub timeout: Option<Duration>,
    pub cancel: Arc<AtomicBool>,
    pub timed_out: Arc<AtomicBool>,
    /// Set by the supervisor when the job's worker process was killed for using more CPU time
    /// than `worker_limits.cpu_time` (past SIGXCPU, which a plugin can ignore).
    pub over_cpu: Arc<AtomicBool>,
}

/// How an attempt ended.
pub(super) enum Ending {
    Outcome(Outcome),
    /// The host could not run it (no worker process would start): back to its queue, the
    /// attempt not counted.
    GiveBack(String),
    /// It was sent ahead to a worker process and withdrawn before it started: it did not run,
    /// and goes back to the pool (`Feed::give_back`), still claimed.
    Withdrawn,
}

/// Where a worker slot gets a job to send ahead to its worker process, and gives back one
/// that did not start there (see `worker::Lookahead`).
pub(super) trait Feed {
    /// A claimed job to send ahead of the one running, if the pool has one to spare.
    fn next(&mut self) -> Option<Attempt>;
    /// A job sent ahead that did not start (withdrawn, or its process died first).
    fn give_back(&mut self, attempt: Attempt);
}

/// No jobs sent ahead (plugins in process, `process_next`).
pub(super) struct NoFeed;

impl Feed for NoFeed {
    fn next(&mut self) -> Option<Attempt> {
        None
    }

    fn give_back(&mut self, _: Attempt) {}
}

pub(super) struct Ran {
    pub ending: Ending,
    pub elapsed: Duration,
    /// When it really started (a job claimed in a batch may wait for a worker after its
    /// claim); `None` if it never ran.
    pub started_at: Option<crate::clock::Micros>,
}

/// Why a slot cannot run a job now, and when to try again.
#[derive(Debug, Clone)]
pub struct Unready {
    pub wait: Duration,
    pub reason: String,
}

pub(super) fn log_start(attempt: &Attempt) {
    let job = &attempt.claimed.job;
    log::debug!(
        job = job.id.0, factory = job.factory.as_str(), queue = job.queue.as_str(), attempt = job.attempts;
        "job {} ({}) started, attempt {}/{}", job.id, job.factory, job.attempts, job.max_attempts
    );
}

/// Why a claimed job cannot run at all, found before it is started: its factory is gone, or
/// its input does not match the factory's schema as loaded now (a reload changed it since the
/// job was submitted). Either ends the job in `error` at once: no attempt could succeed.
pub(super) fn refused(shared: &Shared, attempt: &Attempt) -> Option<Outcome> {
    let job = &attempt.claimed.job;
    let Some(factory) = &attempt.factory else { return Some(unknown_factory(job)) };
    let errors = shared.schemas.check(factory, &job.input).err()?;
    Some(Outcome::Failed {
        error: format!(
            "invalid input: it no longer matches `{}`'s input schema (the plugin changed since the job was submitted): {}",
            job.factory,
            crate::plugins::describe_fields(&errors)
        ),
        backtrace: None,
    })
}

pub(super) fn unknown_factory(job: &Job) -> Outcome {
    // The plugin is gone (the host restarted or reloaded without it): retrying cannot help.
    Outcome::Failed {
        error: format!("unknown job factory `{}`: no loaded plugin provides it", job.factory),
        backtrace: None,
    }
}

/// A timed-out attempt: counted, retried or failed like a retryable failure.
pub(super) fn timed_out(shared: &Shared, attempt: &Attempt, killed_after: Option<Duration>) -> Outcome {
    let secs = attempt.timeout.unwrap_or_default().as_secs_f64();
    let error = match killed_after {
        Some(grace) => {
            format!("timed out after {secs}s (worker killed after {}s grace)", grace.as_secs_f64())
        }
        None => format!("timed out after {secs}s"),
    };
    retry_or_fail(shared, attempt, error, None)
}

/// A job's result, recorded unless it is larger than `limits.max_result_bytes`: then the job
/// fails for good (the same job would return as much again), saying so.
pub(super) fn completed(shared: &Shared, result: String) -> Outcome {
    let limit = shared.config.max_result_bytes;
    if result.len() > limit {
        return Outcome::Failed {
            error: format!(
                "result too large ({} bytes, limit {limit}: limits.max_result_bytes)",
                result.len()
            ),
            backtrace: None,
        };
    }
    Outcome::Completed { result }
}

pub(super) fn failure_outcome(shared: &Shared, attempt: &Attempt, failure: Failure) -> Outcome {
    let backtrace = failure.backtrace().map(str::to_owned);
    let mut outcome = match failure.kind() {
        FailureKind::Permanent => Outcome::Failed { error: failure.message().to_owned(), backtrace: None },
        FailureKind::Retryable => {
            retry_or_fail(shared, attempt, failure.message().to_owned(), failure.retry_delay())
        }
    };
    if let Outcome::Retry { backtrace: kept, .. } | Outcome::Failed { backtrace: kept, .. } = &mut outcome {
        *kept = backtrace;
    }
    outcome
}

/// A retryable failure: another attempt after backoff, or `error` once attempts are spent.
pub(super) fn retry_or_fail(
    shared: &Shared,
    attempt: &Attempt,
    error: String,
    at_least: Option<Duration>,
) -> Outcome {
    let job = &attempt.claimed.job;
    if job.attempts >= job.max_attempts {
        return Outcome::Failed { error, backtrace: None };
    }
    let factory_delay = attempt.factory.as_ref().and_then(|f| f.defaults.retry_delay);
    let delay = shared.config.retry.delay(job.attempts, factory_delay, at_least);
    Outcome::Retry { error, retry_at: shared.now().saturating_add(duration_micros(delay)), backtrace: None }
}

/// Stores progress reports against the attempt's token.
pub(super) struct StoreProgress {
    pub store: Arc<dyn Store>,
    pub id: JobId,
    pub token: AttemptToken,
}

impl ProgressSink for StoreProgress {
    fn report(&self, fraction: f64, message: &str) {
        let progress = Progress { fraction, message: message.to_owned() };
        if let Err(e) = self.store.set_progress(self.id, self.token, progress) {
            log::warn!("job {}: could not store progress: {e}", self.id);
        }
    }
}
