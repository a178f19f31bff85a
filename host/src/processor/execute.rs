//! One attempt of one claimed job, run by a worker slot's executor: in this process, or in
//! the slot's worker process (spawned, rolled after a reload, restarted with backoff after a
//! crash). Decides how the attempt ends; `worker` reports it.
//!
//! **Invariant:** a worker process's death costs only the job it was running: that attempt is
//! counted with the cause (`worker process killed by signal 6 (SIGABRT)`), and the slot starts
//! a new process, waiting longer after each death in a row.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhost_plugin_api::{Failure, FailureKind};

use super::plugins::Plugins;
use super::queue::Queue;
use super::running::RunningJobs;
use super::shared::Shared;
use crate::clock::duration_micros;
use crate::job::{AttemptToken, Job, JobId, Outcome, Progress};
use crate::plugins::{FactoryInfo, ProgressSink, RunContext};
use crate::store::{Claimed, Store};
use crate::sync;
use crate::workers::{Death, RunJob, WorkerProcess};

/// The first wait before restarting a worker process that died on its own; doubled per death
/// in a row, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait before starting a worker process after `deaths` in a row.
fn backoff(deaths: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1 << deaths.saturating_sub(1).min(16)).min(BACKOFF_MAX)
}

/// A claimed attempt, registered as running (see `worker::begin`).
pub(super) struct Attempt {
    pub claimed: Claimed,
    pub factory: Option<FactoryInfo>,
    pub timeout: Option<Duration>,
    pub cancel: Arc<AtomicBool>,
    pub timed_out: Arc<AtomicBool>,
}

/// How an attempt ended.
pub(super) enum Ending {
    Outcome(Outcome),
    /// The host could not run it (no worker process would start): back to its queue, the
    /// attempt not counted.
    GiveBack(String),
}

pub(super) struct Ran {
    pub ending: Ending,
    pub elapsed: Duration,
}

/// Why a slot cannot run a job now, and when to try again.
#[derive(Debug, Clone)]
pub struct Unready {
    pub wait: Duration,
    pub reason: String,
}

/// How a worker slot runs its attempts. One per slot, held for the slot's life: the size of
/// the isolated variant does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Executor {
    InProcess,
    Isolated(Isolated),
}

/// A slot's worker process and its restart state.
#[derive(Default)]
pub(super) struct Isolated {
    process: Option<WorkerProcess>,
    /// Deaths in a row that the host did not cause.
    crashes: u32,
    /// No new worker process before this (backoff after crashes).
    not_before: Option<Instant>,
    /// Whether this slot has started a process before (later starts are restarts).
    started: bool,
    restarts: u64,
    /// Attempts sent to the process and not received yet.
    in_flight: usize,
}

impl Executor {
    pub fn for_plugins(plugins: &Plugins) -> Executor {
        if plugins.is_isolated() {
            Executor::Isolated(Isolated::default())
        } else {
            Executor::InProcess
        }
    }

    /// Gets ready to run a job: with worker processes, one that loaded the current plugins (a
    /// reload rolls it here, between jobs). `Err`: backing off after crashes, or no worker
    /// would start; try again after its `wait`.
    pub fn prepare(&mut self, shared: &Shared) -> Result<(), Unready> {
        let Executor::Isolated(slot) = self else { return Ok(()) };
        slot.prepare(shared)
    }

    /// Its worker process, if it has one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Executor::Isolated(Isolated { process: Some(process), .. }) => u32::try_from(process.pid()).ok(),
            _ => None,
        }
    }

    /// Worker processes it started after its first.
    pub fn restarts(&self) -> u64 {
        match self {
            Executor::Isolated(slot) => slot.restarts,
            Executor::InProcess => 0,
        }
    }

    /// Runs the attempt to its end (the calling thread blocks meanwhile).
    pub fn run(&mut self, shared: &Shared, running: &RunningJobs, attempt: &Attempt, queue: &Queue) -> Ran {
        let started = Instant::now();
        log_start(attempt);
        let ending = match self {
            Executor::InProcess => run_in_process(shared, attempt),
            Executor::Isolated(slot) => match slot.send(shared, attempt) {
                Ok(()) => slot.receive(shared, running, attempt, queue),
                Err(ending) => ending,
            },
        };
        Ran { ending, elapsed: started.elapsed() }
    }

    /// Whether attempts can be sent ahead of the one running: a worker process runs the jobs it
    /// is sent one after the other, so sending the next before the last is done saves it the
    /// wait for the host between jobs.
    pub fn pipelines(&self) -> bool {
        matches!(self, Executor::Isolated(_))
    }

    /// Sends an attempt to the worker process, behind those sent before (`pipelines` only).
    /// `Err`: it ends here without running (no plugin provides its factory; no worker process).
    pub fn send(&mut self, shared: &Shared, attempt: &Attempt) -> Result<(), Ending> {
        match self {
            Executor::Isolated(slot) => slot.send(shared, attempt),
            Executor::InProcess => Err(Ending::GiveBack("not a worker process".to_owned())),
        }
    }

    /// How the oldest attempt sent and not received ended, once it has (`pipelines` only).
    pub fn receive(
        &mut self,
        shared: &Shared,
        running: &RunningJobs,
        attempt: &Attempt,
        queue: &Queue,
    ) -> Ran {
        let started = Instant::now();
        log_start(attempt);
        let ending = match self {
            Executor::Isolated(slot) => slot.receive(shared, running, attempt, queue),
            Executor::InProcess => Ending::GiveBack("not a worker process".to_owned()),
        };
        Ran { ending, elapsed: started.elapsed() }
    }

    /// Stops the slot's worker process, if any (the slot is ending).
    pub fn stop(&mut self) {
        if let Executor::Isolated(slot) = self {
            if let Some(process) = slot.process.take() {
                process.stop(Duration::from_secs(1));
            }
        }
    }
}

impl Isolated {
    fn prepare(&mut self, shared: &Shared) -> Result<(), Unready> {
        let (spec, generation) = match &*sync::read(&shared.plugins) {
            Plugins::Isolated { spec, generation, .. } => (spec.clone(), *generation),
            Plugins::InProcess { .. } => return Ok(()),
        };
        if self.process.as_ref().is_some_and(|p| p.generation == generation) {
            return Ok(());
        }
        if let Some(old) = self.process.take() {
            log::info!("worker process {}: plugins reloaded, replacing it", old.pid());
            old.stop(shared.config.kill_grace);
        }
        if let Some(at) = self.not_before {
            let now = Instant::now();
            if at > now {
                let reason = format!("backing off after {} worker process death(s) in a row", self.crashes);
                return Err(Unready { wait: at - now, reason });
            }
        }
        match WorkerProcess::spawn(&spec, generation) {
            Ok(process) => {
                if self.started {
                    self.restarts += 1;
                }
                self.started = true;
                self.not_before = None;
                log::debug!("worker process {} started", process.pid());
                self.process = Some(process);
                Ok(())
            }
            Err(e) => {
                log::error!("{e}");
                Err(Unready { wait: self.back_off(), reason: e.to_string() })
            }
        }
    }

    /// One more death in a row: how long to wait before the next start.
    fn back_off(&mut self) -> Duration {
        self.crashes += 1;
        let wait = backoff(self.crashes);
        self.not_before = Some(Instant::now() + wait);
        wait
    }

    fn send(&mut self, shared: &Shared, attempt: &Attempt) -> Result<(), Ending> {
        let job = &attempt.claimed.job;
        if attempt.factory.is_none() {
            return Err(Ending::Outcome(unknown_factory(job)));
        }
        // A reload rolls the process, and a dead one is replaced, only between jobs: with
        // nothing sent ahead.
        if self.in_flight == 0 {
            if let Err(unready) = self.prepare(shared) {
                return Err(Ending::GiveBack(unready.reason));
            }
        }
        let Some(process) = self.process.as_mut() else {
            return Err(Ending::GiveBack("no worker process".to_owned()));
        };
        let run = RunJob {
            id: job.id.0,
            attempt: job.attempts,
            factory: job.factory.clone(),
            input: job.input.clone(),
        };
        match process.send(run) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(_) => {
                // It died before it read the job: the job never started.
                self.process = None;
                self.in_flight = 0;
                Err(Ending::GiveBack("its worker process ended before it started".to_owned()))
            }
        }
    }

    fn receive(
        &mut self,
        shared: &Shared,
        running: &RunningJobs,
        attempt: &Attempt,
        queue: &Queue,
    ) -> Ending {
        let job = &attempt.claimed.job;
        let Some(process) = self.process.as_mut() else {
            // Sent ahead to a process that died running an earlier job: it never started.
            return Ending::GiveBack("its worker process ended before it started".to_owned());
        };
        running.attach(job.id, process.control());
        let sink = StoreProgress { store: shared.store.clone(), id: job.id, token: attempt.claimed.token };
        match process.receive(job.id.0, &mut |fraction, message| sink.report(fraction, message)) {
            Ok(result) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.crashes = 0;
                Ending::Outcome(match result {
                    Ok(result) if !attempt.timed_out.load(Ordering::Relaxed) => Outcome::Completed { result },
                    Ok(_) => timed_out(shared, attempt, None),
                    Err(failure) => {
                        if attempt.timed_out.load(Ordering::Relaxed) {
                            timed_out(shared, attempt, None)
                        } else {
                            failure_outcome(shared, attempt, failure.into())
                        }
                    }
                })
            }
            Err(death) => {
                self.process = None;
                self.in_flight = 0;
                Ending::Outcome(self.died(shared, attempt, queue, &death))
            }
        }
    }

    /// The outcome of an attempt whose worker process died.
    fn died(&mut self, shared: &Shared, attempt: &Attempt, queue: &Queue, death: &Death) -> Outcome {
        let grace = shared.config.kill_grace;
        if death.killed_by_host {
            if attempt.timed_out.load(Ordering::Relaxed) {
                return timed_out(shared, attempt, Some(grace));
            }
            // Cancelled, or the host is stopping: the store ends it `cancelled`, or the
            // attempt was released and this outcome is stale.
            let error = format!("stopped by the host (worker killed after {}s grace)", grace.as_secs_f64());
            return Outcome::Failed { error };
        }
        let wait = self.back_off();
        queue.worker_deaths.fetch_add(1, Ordering::Relaxed);
        shared.metrics.record_worker_restart(&queue.name);
        let limits = match &*sync::read(&shared.plugins) {
            Plugins::Isolated { spec, .. } => spec.limits,
            Plugins::InProcess { .. } => Default::default(),
        };
        let cause = match limits.explain(death.signal(), &death.tail) {
            Some(why) => format!("{death} while running: {why}"),
            None => format!("{death} while running"),
        };
        let job = &attempt.claimed.job;
        log::warn!(
            job = job.id.0, factory = job.factory.as_str(), queue = job.queue.as_str(), attempt = job.attempts;
            "job {} ({}): {cause}; a new worker process in {wait:?}", job.id, job.factory
        );
        retry_or_fail(shared, attempt, cause, None)
    }
}

fn log_start(attempt: &Attempt) {
    let job = &attempt.claimed.job;
    log::debug!(
        job = job.id.0, factory = job.factory.as_str(), queue = job.queue.as_str(), attempt = job.attempts;
        "job {} ({}) started, attempt {}/{}", job.id, job.factory, job.attempts, job.max_attempts
    );
}

/// Runs the attempt on this thread, through the plugin loaded in this process.
fn run_in_process(shared: &Shared, attempt: &Attempt) -> Ending {
    let job = &attempt.claimed.job;
    let factory = sync::read(&shared.plugins).runnable(&job.factory);
    let Some(factory) = factory.filter(|_| attempt.factory.is_some()) else {
        return Ending::Outcome(unknown_factory(job));
    };
    let sink = StoreProgress { store: shared.store.clone(), id: job.id, token: attempt.claimed.token };
    let ctx =
        RunContext { job_id: job.id.0, attempt: job.attempts, cancel: &attempt.cancel, progress: &sink };
    let returned = factory.run(&ctx, &job.input);
    Ending::Outcome(if attempt.timed_out.load(Ordering::Relaxed) {
        timed_out(shared, attempt, None)
    } else {
        match returned {
            Ok(result) => Outcome::Completed { result },
            Err(failure) => failure_outcome(shared, attempt, failure),
        }
    })
}

fn unknown_factory(job: &Job) -> Outcome {
    // The plugin is gone (the host restarted or reloaded without it): retrying cannot help.
    Outcome::Failed { error: format!("unknown job factory `{}`: no loaded plugin provides it", job.factory) }
}

/// A timed-out attempt: counted, retried or failed like a retryable failure.
fn timed_out(shared: &Shared, attempt: &Attempt, killed_after: Option<Duration>) -> Outcome {
    let secs = attempt.timeout.unwrap_or_default().as_secs_f64();
    let error = match killed_after {
        Some(grace) => {
            format!("timed out after {secs}s (worker killed after {}s grace)", grace.as_secs_f64())
        }
        None => format!("timed out after {secs}s"),
    };
    retry_or_fail(shared, attempt, error, None)
}

fn failure_outcome(shared: &Shared, attempt: &Attempt, failure: Failure) -> Outcome {
    match failure.kind() {
        FailureKind::Permanent => Outcome::Failed { error: failure.message().to_owned() },
        FailureKind::Retryable => {
            retry_or_fail(shared, attempt, failure.message().to_owned(), failure.retry_delay())
        }
    }
}

/// A retryable failure: another attempt after backoff, or `error` once attempts are spent.
fn retry_or_fail(shared: &Shared, attempt: &Attempt, error: String, at_least: Option<Duration>) -> Outcome {
    let job = &attempt.claimed.job;
    if job.attempts >= job.max_attempts {
        return Outcome::Failed { error };
    }
    let factory_delay = attempt.factory.as_ref().and_then(|f| f.defaults.retry_delay);
    let delay = shared.config.retry.delay(job.attempts, factory_delay, at_least);
    Outcome::Retry { error, retry_at: shared.now().saturating_add(duration_micros(delay)) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_wait_100_ms_doubling_per_death_in_a_row_up_to_30_s() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000]);
        assert_eq!(backoff(1000), BACKOFF_MAX);
    }
}
