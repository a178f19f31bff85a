//! The recording thread: takes the outcomes workers handed to the recorder, writes each batch
//! in one store transaction (`finish_batch`; given-back attempts with `release_batch`), then
//! logs, counts and announces each. An outcome is durable within the store's flush interval,
//! as before: a host that dies first runs the job again (at-least-once).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::attempt::Ending;
use super::recorder::Record;
use super::state::PoolState;
use crate::job::{Job, JobId, Status};
use crate::store::{Finished, Report};

/// Hands `record` to the recorder, starting its thread on first use.
pub(super) fn submit(state: &Arc<PoolState>, record: Record) {
    if state.recorder.start_once() {
        let weak = Arc::downgrade(state);
        let spawned =
            std::thread::Builder::new().name("jobhost-recorder".to_owned()).spawn(move || run(&weak));
        if let Err(e) = spawned {
            log::error!("cannot start the outcome recorder: {e}");
            state.recorder.start_failed();
        }
    }
    state.recorder.submit(record);
}

fn run(weak: &Weak<PoolState>) {
    let mut busy = false;
    loop {
        let Some(state) = weak.upgrade() else { return };
        // Wakes now and then to notice the pool is gone.
        let Some(batch) = state.recorder.take(busy, &state.stopping, Duration::from_secs(1)) else {
            if Arc::strong_count(&state) == 1 {
                return;
            }
            continue;
        };
        busy = batch.len() > 1;
        write(&state, batch);
        state.recorder.written();
        state.wake_starved();
    }
}

/// The longest wait between two tries of a batch the store could not take.
const RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(1);

/// `finish_batch`, tried again while the store is unavailable (a full disk, a database that
/// restarts) and the pool is not stopping. Giving up would leave the jobs `processing` until
/// their leases expired and run them again although they ended; a store back within the
/// lease (renewed every third of it) takes the outcomes, and the jobs ran once.
///
/// Also says whether an earlier try may have been applied (its answer was lost at commit):
/// then an outcome the store calls stale may be this batch's own.
fn finish_while_unavailable(
    state: &Arc<PoolState>,
    reports: &[Report],
    now: crate::clock::Micros,
) -> (crate::store::StoreResult<Vec<Finished>>, bool) {
    let mut wait = std::time::Duration::from_millis(50);
    let mut logged = false;
    let mut maybe_applied = false;
    loop {
        match state.shared.store.finish_batch(reports, now) {
            Err(e) if e.is_unavailable() && !state.stopping.load(std::sync::atomic::Ordering::SeqCst) => {
                maybe_applied |= matches!(e, crate::store::StoreError::OutcomeUnknown(_));
                if !logged {
                    log::warn!("{} outcome(s) wait for the store, trying again: {e}", reports.len());
                    logged = true;
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(RETRY_CAP);
            }
            result => {
                if logged && result.is_ok() {
                    log::info!("{} outcome(s) recorded after the store came back", reports.len());
                }
                return (result, maybe_applied);
            }
        }
    }
}

/// What became of an attempt whose outcome the store called stale after a try whose answer
/// was lost: applied by that try if the job is no longer running this attempt (same attempt
/// count, not `processing`), else superseded (its lease expired and another attempt took it).
fn applied_before(state: &Arc<PoolState>, record: &Record) -> Finished {
    match state.shared.store.get(record.claimed.job.id) {
        Ok(Some(job)) if job.attempts == record.claimed.job.attempts && job.status != Status::Processing => {
            log::debug!("job {}: outcome recorded by a try whose answer was lost", job.id);
            Finished::Applied(job)
        }
        _ => Finished::Stale,
    }
}

/// Writes one batch: given-back attempts released, outcomes applied, each then logged, counted
/// and announced.
fn write(state: &Arc<PoolState>, batch: Vec<Record>) {
    let shared = &state.shared;
    let now = shared.now();
    let (give_back, ended): (Vec<Record>, Vec<Record>) =
        batch.into_iter().partition(|r| matches!(r.ran.ending, Ending::GiveBack(_) | Ending::Withdrawn));
    if !give_back.is_empty() {
        let jobs: Vec<(JobId, _)> = give_back.iter().map(|r| (r.claimed.job.id, r.claimed.token)).collect();
        match shared.store.release_batch(&jobs, now) {
            Ok(_) => {
                for r in &give_back {
                    if let Ending::GiveBack(why) = &r.ran.ending {
                        log::warn!(
                            "job {} ({}): given back to its queue uncounted: {why}",
                            r.claimed.job.id,
                            r.claimed.job.factory
                        );
                    }
                }
            }
            Err(e) => log::error!(
                "{} job(s) could not be given back (their leases will requeue them): {e}",
                jobs.len()
            ),
        }
        for r in give_back {
            if let Some(done) = r.done {
                let _ = done.send(None);
            }
        }
    }
    if ended.is_empty() {
        return;
    }
    let reports: Vec<Report> = ended
        .iter()
        .filter_map(|r| match &r.ran.ending {
            Ending::Outcome(outcome) => Some(Report {
                id: r.claimed.job.id,
                token: r.claimed.token,
                outcome: outcome.clone(),
                started_at: r.ran.started_at,
            }),
            Ending::GiveBack(_) | Ending::Withdrawn => None,
        })
        .collect();
    let (finished, maybe_applied) = finish_while_unavailable(state, &reports, now);
    let finished = match finished {
        Ok(finished) => finished,
        Err(e) => {
            // The jobs stay `processing` until their leases expire; then they run again.
            log::error!(
                "{} outcome(s) could not be recorded (their leases will requeue the jobs): {e}",
                reports.len()
            );
            vec![Finished::Stale; reports.len()]
        }
    };
    for (record, finished) in ended.into_iter().zip(finished) {
        let id = record.claimed.job.id;
        let finished = match finished {
            Finished::Stale if maybe_applied => applied_before(state, &record),
            other => other,
        };
        let job = match finished {
            Finished::Applied(done) => {
                log_outcome(&done, record.ran.elapsed.as_secs_f64() * 1000.0);
                state.tally(&done.queue, done.status);
                shared.metrics.record_attempt(&done.factory, done.status, record.ran.elapsed);
                let started = record.ran.started_at.or(record.claimed.job.started_at).unwrap_or(now);
                let due = record.claimed.job.run_at.max(record.claimed.job.created_at);
                let wait = Duration::from_micros(started.saturating_sub(due).max(0) as u64);
                shared.history.record(&done.queue, done.status, record.ran.elapsed, wait, now);
                shared.events.publish(&done);
                Some(done)
            }
            Finished::Stale => {
                log::warn!("job {id}: outcome of a superseded attempt discarded");
                None
            }
        };
        if let Some(done) = record.done {
            let _ = done.send(job);
        }
    }
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
