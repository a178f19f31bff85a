//! One attempt of one claimed job, run by a worker slot's executor: in this process, or in
//! the slot's worker process (`isolated`). Decides how the attempt ends; `worker` reports it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::attempt::{
    completed, failure_outcome, log_start, refused, timed_out, unknown_factory, Attempt, Ending, Feed, Ran,
    StoreProgress, Unready,
};
use super::isolated::Isolated;
use super::parents::parent_outcomes;
use super::plugins::Plugins;
use super::queue::Queue;
use super::running::RunningJobs;
use super::shared::Shared;
use crate::clock::duration_micros;
use crate::plugins::RunContext;
use crate::sync;

/// How a worker slot runs its attempts. One per slot, held for the slot's life: the size of
/// the isolated variant does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Executor {
    InProcess,
    Isolated(Isolated),
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
        slot.prepare(shared, None)
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

    /// Runs the attempt to its end (the calling thread blocks meanwhile). A worker process may
    /// be sent the next job from `feed` ahead of this one (see `isolated`); if it went on to
    /// that job, it is returned, and the caller runs it next, right away.
    pub fn run(
        &mut self,
        shared: &Shared,
        running: &RunningJobs,
        attempt: &Attempt,
        queue: &Queue,
        feed: &mut dyn Feed,
    ) -> (Ran, Option<Attempt>) {
        let started = Instant::now();
        let started_at = shared.now();
        log_start(attempt);
        let (ending, ran_since, next) = match self {
            Executor::InProcess => (run_in_process(shared, attempt), None, None),
            Executor::Isolated(slot) => slot.run(shared, running, attempt, queue, feed),
        };
        // A worker process says when the job started there: for one sent ahead, that is when
        // the job before it ended, which the host learns only on reading that job's answer.
        let (elapsed, started_at) = match ran_since {
            Some(since) => {
                let elapsed = since.elapsed();
                (elapsed, shared.now() - duration_micros(elapsed))
            }
            None => (started.elapsed(), started_at),
        };
        (Ran { ending, elapsed, started_at: Some(started_at) }, next)
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

/// Runs the attempt on this thread, through the plugin loaded in this process.
fn run_in_process(shared: &Shared, attempt: &Attempt) -> Ending {
    let job = &attempt.claimed.job;
    if let Some(outcome) = refused(shared, attempt) {
        return Ending::Outcome(outcome);
    }
    let factory = sync::read(&shared.plugins).runnable(&job.factory);
    let Some(factory) = factory else {
        return Ending::Outcome(unknown_factory(job));
    };
    let sink = StoreProgress { store: shared.store.clone(), id: job.id, token: attempt.claimed.token };
    let parents = parent_outcomes(shared, job);
    let ctx = RunContext {
        job_id: job.id.0,
        attempt: job.attempts,
        cancel: &attempt.cancel,
        progress: &sink,
        parents: parents.as_deref(),
    };
    let returned = factory.run(&ctx, &job.input);
    Ending::Outcome(if attempt.timed_out.load(Ordering::Relaxed) {
        timed_out(shared, attempt, None)
    } else {
        match returned {
            Ok(result) => completed(shared, result),
            Err(failure) => failure_outcome(shared, attempt, failure),
        }
    })
}
