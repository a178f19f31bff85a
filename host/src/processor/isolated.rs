//! A worker slot's worker process: started with the current plugins, rolled after a reload
//! between jobs, restarted with backoff after a death, and the attempts sent to it and
//! received back, each ending the way the process reported it or died.
//!
//! Under backlog, while its queue runs at its concurrency, the slot sends its process the next
//! job ahead of the one running (one, no more), so the process goes from job to job without
//! waiting for a round trip through the host. A job sent ahead is not started: it has no
//! deadline and holds no place; it is asked back (`Withdraw`) when a worker with a free place
//! finds nothing else to run, when it is cancelled, when its queue or the host stops, and at a
//! plugin reload, so no job waits behind another while a place is free for it.
//!
//! **Invariant:** a worker process's death costs only the job it was running: that attempt is
//! counted with the cause (`worker process killed by signal 6 (SIGABRT)`), a job sent ahead of
//! it goes back uncounted, and the slot starts a new process, waiting longer after each death
//! in a row. The process runs its jobs in order and answers each (`Done` or `Withdrawn`), so
//! the slot always knows which one was running.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::attempt::{
    completed, failure_outcome, refused, retry_or_fail, timed_out, Attempt, Ending, Feed, StoreProgress,
    Unready,
};
use super::parents::parent_outcomes;
use super::plugins::Plugins;
use super::queue::Queue;
use super::running::RunningJobs;
use super::shared::Shared;
use crate::job::Outcome;
use crate::plugins::ProgressSink;
use crate::sync;
use crate::workers::{Death, Received, RunJob, WorkerProcess};

/// The first wait before restarting a worker process that died on its own; doubled per death
/// in a row, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait before starting a worker process after `deaths` in a row.
fn backoff(deaths: u32) -> Duration {
    BACKOFF_FIRST.saturating_mul(1 << deaths.saturating_sub(1).min(16)).min(BACKOFF_MAX)
}

/// A slot's worker process and its restart state.
#[derive(Default)]
pub(super) struct Isolated {
    pub(super) process: Option<WorkerProcess>,
    /// Deaths in a row that the host did not cause.
    pub(super) crashes: u32,
    /// No new worker process before this (backoff after crashes).
    pub(super) not_before: Option<Instant>,
    /// Whether this slot has started a process before (later starts are restarts).
    pub(super) started: bool,
    pub(super) restarts: u64,
    /// Jobs its current process has run (`worker_limits.max_jobs` replaces it).
    pub(super) jobs: u64,
    /// The plugin file its current process is dedicated to (`[worker_sandbox.plugins]`);
    /// `None`: a shared one.
    pub(super) profile: Option<std::path::PathBuf>,
    /// The job sent ahead that its process went on to (the last `run` returned it): already
    /// sent, so the next `run` only receives it.
    sent_ahead: Option<u64>,
}

impl Isolated {
    /// Gets a worker process ready: one of the current plugins, and for `factory` one of its
    /// sandbox profile (workers dedicated to a plugin with write paths of its own, or shared
    /// ones); `None` takes whichever profile the slot has, or a shared one.
    pub(super) fn prepare(&mut self, shared: &Shared, factory: Option<&str>) -> Result<(), Unready> {
        let (spec, generation, wanted, spent) = {
            let plugins = sync::read(&shared.plugins);
            let Plugins::Isolated { spec, generation, dedicated, .. } = &*plugins else { return Ok(()) };
            let wanted = factory.and_then(|f| dedicated.get(f)).cloned();
            let spent = spec.limits.max_jobs.is_some_and(|max| self.jobs >= max);
            let fits = factory.is_none() || self.profile.as_ref() == wanted.as_ref().map(|p| &p.path);
            let current = |p: &WorkerProcess| p.generation == *generation && !spent && !p.has_ended();
            if fits && self.process.as_ref().is_some_and(current) {
                return Ok(());
            }
            // The spec is cloned only to start a process, outside the lock.
            (spec.clone(), *generation, wanted, spent)
        };
        let current = |p: &WorkerProcess| p.generation == generation && !spent && !p.has_ended();
        match self.process.take() {
            // Current, but of another sandbox profile than the job's.
            Some(process) if current(&process) => {
                let profile =
                    wanted.as_ref().map_or("the shared".to_owned(), |p| format!("plugin {}'s", p.plugin));
                log::debug!("worker process {}: replaced by one of {profile} sandbox profile", process.pid());
                process.stop(shared.config.kill_grace);
            }
            Some(process) => self.retire(shared, process, spent)?,
            None => {}
        }
        self.jobs = 0;
        if let Some(at) = self.not_before {
            let now = Instant::now();
            if at > now {
                let reason = format!("backing off after {} worker process death(s) in a row", self.crashes);
                return Err(Unready { wait: at - now, reason });
            }
        }
        match WorkerProcess::spawn(wanted.as_ref().map_or(&spec, |p| &p.spec), generation) {
            Ok(process) => {
                if self.started {
                    self.restarts += 1;
                }
                self.started = true;
                self.not_before = None;
                log::debug!("worker process {} started", process.pid());
                self.process = Some(process);
                self.profile = wanted.map(|p| p.path.clone());
                Ok(())
            }
            Err(e) => {
                log::error!("{e}");
                Err(Unready { wait: self.back_off(), reason: e.to_string() })
            }
        }
    }

    /// Ends `old`, a process no longer current: one that ended between jobs (its death charges
    /// no job, and backs off as after any death), one that ran its `max_jobs`, or one of plugins
    /// replaced since.
    fn retire(&mut self, shared: &Shared, old: WorkerProcess, spent: bool) -> Result<(), Unready> {
        if old.has_ended() {
            // Its plugin crashed or exited while it ran no job (a thread of its own, a
            // timer): no job is charged, and it is replaced as after any death.
            let pid = old.pid();
            let death = old.reap_ended();
            log::warn!("{death} between jobs (pid {pid}; no job charged); replacing it");
            let wait = self.back_off();
            return Err(Unready { wait, reason: format!("{death} between jobs") });
        }
        if spent {
            log::info!(
                "worker process {}: ran its {} jobs (worker_limits.max_jobs); replacing it",
                old.pid(),
                self.jobs
            );
        } else {
            log::info!("worker process {}: plugins reloaded, replacing it", old.pid());
        }
        old.stop(shared.config.kill_grace);
        Ok(())
    }

    /// One more death in a row: how long to wait before the next start.
    pub(super) fn back_off(&mut self) -> Duration {
        self.crashes += 1;
        let wait = backoff(self.crashes);
        self.not_before = Some(Instant::now() + wait);
        wait
    }

    /// Runs `attempt` on the slot's worker process (sent now, or sent ahead before), sending
    /// the next job ahead meanwhile if `feed` has one. Returns how it ended, how long ago it
    /// started if the process ran it (when, by its word), and the job sent ahead if the process went on to it: the
    /// caller runs that one next.
    pub(super) fn run(
        &mut self,
        shared: &Shared,
        running: &RunningJobs,
        attempt: &Attempt,
        queue: &Queue,
        feed: &mut dyn Feed,
    ) -> (Ending, Option<Instant>, Option<Attempt>) {
        let id = attempt.claimed.job.id.0;
        if self.sent_ahead.take() == Some(id) {
            if let Some(process) = self.process.as_mut() {
                process.started_ahead(id);
            }
        } else if let Err(ending) = self.send(shared, attempt) {
            return (ending, None, None);
        }
        let mut ahead = self.send_ahead(shared, running, feed);
        let (ending, started) = self.receive(shared, running, attempt, queue, &mut ahead, feed);
        let Some(next) = ahead else { return (ending, started, None) };
        if self.process.is_some() {
            // Done (or withdrawn) with this one, the process has taken up the next.
            self.sent_ahead = Some(next.claimed.job.id.0);
            (ending, started, Some(next))
        } else {
            // It died before it got to it: it never started.
            feed.give_back(next);
            (ending, started, None)
        }
    }

    /// Sends the next job ahead of the running one, if `feed` has one, the process is of the
    /// current plugins, has room under `max_jobs` and the job's sandbox profile, and the job
    /// can run at all (else it goes back for the usual path to end it).
    fn send_ahead(&mut self, shared: &Shared, running: &RunningJobs, feed: &mut dyn Feed) -> Option<Attempt> {
        if !self.may_take_ahead(&sync::read(&shared.plugins)) {
            return None;
        }
        let next = feed.next()?;
        let job = &next.claimed.job;
        let fits = {
            let plugins = sync::read(&shared.plugins);
            let Plugins::Isolated { dedicated, .. } = &*plugins else { return None };
            self.profile.as_ref() == dedicated.get(&job.factory).map(|p| &p.path)
        };
        if !fits || refused(shared, &next).is_some() {
            feed.give_back(next);
            return None;
        }
        let run = run_job(shared, job);
        // Checked again and sent under the plugins lock: a reload swaps the plugins under it,
        // then withdraws every job sent ahead. So a job sent to a worker of the old plugins is
        // attached before the swap and withdrawn after it, never sent past the withdrawal.
        let plugins = sync::read(&shared.plugins);
        let sent = self.may_take_ahead(&plugins)
            && self.process.as_mut().is_some_and(|process| {
                running.attach(job.id, process.control());
                // An error means the process is ending: the running job's receive says how.
                process.send_ahead(run).is_ok()
            });
        drop(plugins);
        if !sent {
            feed.give_back(next);
            return None;
        }
        self.jobs += 1;
        Some(next)
    }

    /// Whether the process may be sent a job ahead: it is of the current plugins and has room
    /// under `max_jobs`.
    fn may_take_ahead(&self, plugins: &Plugins) -> bool {
        let Plugins::Isolated { spec, generation, .. } = plugins else { return false };
        self.process.as_ref().is_some_and(|process| {
            process.generation == *generation && spec.limits.max_jobs.is_none_or(|max| self.jobs < max)
        })
    }

    fn send(&mut self, shared: &Shared, attempt: &Attempt) -> Result<(), Ending> {
        let job = &attempt.claimed.job;
        if let Some(outcome) = refused(shared, attempt) {
            return Err(Ending::Outcome(outcome));
        }
        // A reload rolls the process, and a dead one is replaced, here: between jobs. No job
        // is sent to a worker of plugins replaced since (a reload withdraws those sent ahead).
        if let Err(unready) = self.prepare(shared, Some(&job.factory)) {
            return Err(Ending::GiveBack(unready.reason));
        }
        let Some(process) = self.process.as_mut() else {
            return Err(Ending::GiveBack("no worker process".to_owned()));
        };
        let run = run_job(shared, job);
        match process.send(run) {
            Ok(()) => {
                self.jobs += 1;
                Ok(())
            }
            Err(_) => {
                // It died before it read the job: the job never started.
                self.process = None;
                Err(Ending::GiveBack("its worker process ended before it started".to_owned()))
            }
        }
    }

    /// How `attempt` ends on the process, and when it started there if it ran; `ahead`,
    /// the job sent after it, goes back to `feed` if it is withdrawn meanwhile.
    fn receive(
        &mut self,
        shared: &Shared,
        running: &RunningJobs,
        attempt: &Attempt,
        queue: &Queue,
        ahead: &mut Option<Attempt>,
        feed: &mut dyn Feed,
    ) -> (Ending, Option<Instant>) {
        let job = &attempt.claimed.job;
        let Some(process) = self.process.as_mut() else {
            return (Ending::GiveBack("its worker process ended before it started".to_owned()), None);
        };
        running.attach(job.id, process.control());
        let sink = StoreProgress { store: shared.store.clone(), id: job.id, token: attempt.claimed.token };
        let mut withdrawn = |id: u64| {
            if ahead.as_ref().is_some_and(|next| next.claimed.job.id.0 == id) {
                if let Some(next) = ahead.take() {
                    feed.give_back(next);
                }
            }
        };
        match process.receive(
            job.id.0,
            &mut |fraction, message| sink.report(fraction, message),
            &mut withdrawn,
        ) {
            Ok(Received::Withdrawn) => (Ending::Withdrawn, None),
            Ok(Received::Done { result, started }) => {
                self.crashes = 0;
                let ending = Ending::Outcome(match result {
                    Ok(result) if !attempt.timed_out.load(Ordering::Relaxed) => completed(shared, result),
                    Ok(_) => timed_out(shared, attempt, None),
                    Err(failure) => {
                        if attempt.timed_out.load(Ordering::Relaxed) {
                            timed_out(shared, attempt, None)
                        } else {
                            failure_outcome(shared, attempt, failure.into())
                        }
                    }
                });
                (ending, Some(started))
            }
            Err(death) => {
                self.process = None;
                (Ending::Outcome(self.died(shared, attempt, queue, &death)), None)
            }
        }
    }

    /// The outcome of an attempt whose worker process died.
    pub(super) fn died(
        &mut self,
        shared: &Shared,
        attempt: &Attempt,
        queue: &Queue,
        death: &Death,
    ) -> Outcome {
        let grace = shared.config.kill_grace;
        if death.killed_by_host && attempt.over_cpu.load(Ordering::Relaxed) {
            let limit = match &*sync::read(&shared.plugins) {
                Plugins::Isolated { spec, .. } => spec.limits.cpu_time.unwrap_or_default(),
                Plugins::InProcess { .. } => Duration::ZERO,
            };
            let cause = format!(
                "the job used more CPU time than worker_limits.cpu_time ({}) and did not stop at SIGXCPU: worker process killed",
                humantime::format_duration(limit)
            );
            return retry_or_fail(shared, attempt, cause, None);
        }
        if death.killed_by_host {
            if attempt.timed_out.load(Ordering::Relaxed) {
                return timed_out(shared, attempt, Some(grace));
            }
            // Cancelled, or the host is stopping: the store ends it `cancelled`, or the
            // attempt was released and this outcome is stale.
            let error = format!("stopped by the host (worker killed after {}s grace)", grace.as_secs_f64());
            return Outcome::Failed { error, backtrace: None };
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

/// What a worker process is sent to run one attempt of `job`.
fn run_job(shared: &Shared, job: &crate::job::Job) -> RunJob {
    RunJob {
        id: job.id.0,
        attempt: job.attempts,
        factory: job.factory.clone(),
        input: job.input.clone(),
        parents: parent_outcomes(shared, job),
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
