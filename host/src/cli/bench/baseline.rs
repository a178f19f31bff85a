//! The store's own limit, measured in the same run as the real benchmark: exactly the store
//! operations the host performs (`add`; `claim_batch` with the queue's adaptive size;
//! `finish_batch` of whatever outcomes wait, from one recorder thread), with the same flush
//! policy, called from plain threads, without the processor, the plugin, JSON or HTTP. Calling
//! the store itself (not a copy of its sled calls) keeps the baseline from drifting from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::BenchArgs;
use crate::cli::stores::{ClaimFilter, JobStore, LeaseTerms, Report, Store, StoreOptions};
use crate::clock::{Clock, SystemClock};
use crate::job::{NewJob, Outcome, DEFAULT_QUEUE};

pub struct Baseline {
    pub submit_per_s: f64,
    pub drain_per_s: f64,
    /// One job at a time on the idle store (add, durable; claim; finish), milliseconds,
    /// sorted: the disk's own flush latency is most of it, and its tail is the disk's.
    pub latencies: Vec<f64>,
}

fn new_job(i: usize) -> NewJob {
    NewJob {
        factory: "echo".to_owned(),
        input: format!("{{\"n\":{i}}}"),
        queue: DEFAULT_QUEUE.to_owned(),
        max_attempts: 3,
        ..NewJob::default()
    }
}

pub fn measure(args: &BenchArgs, options: StoreOptions) -> anyhow::Result<Baseline> {
    let dir = tempfile::tempdir()?;
    let store = crate::cli::stores::open_for_baseline(dir.path(), options).map_err(anyhow::Error::msg)?;
    preload(store.as_ref(), args.preload)?;
    let clock = SystemClock;

    let started = Instant::now();
    let per = args.jobs.div_ceil(args.submitters);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..args.submitters)
            .map(|s| {
                let store = store.clone();
                let count = per.min(args.jobs.saturating_sub(s * per));
                scope.spawn(move || -> anyhow::Result<()> {
                    for i in 0..count {
                        store.add(new_job(i), clock.now())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a baseline submitter panicked"))??;
        }
        Ok(())
    })?;
    let submit_per_s = args.jobs as f64 / started.elapsed().as_secs_f64();
    store.flush()?; // the submission's lazy leftovers are not the drain's to pay

    let lease = LeaseTerms { duration: Duration::from_secs(30) };
    let started = Instant::now();
    drain(&store, args, lease)?;
    store.flush()?; // drained means on disk, as in the real benchmark
    let drain_per_s = args.jobs as f64 / started.elapsed().as_secs_f64();

    // As in the real benchmark, no latency at depth: the preload is still queued.
    let latency_jobs = if args.preload > 0 { 0 } else { args.latency_jobs };
    let mut latencies = Vec::with_capacity(latency_jobs);
    let filter = ClaimFilter { queue: Some(DEFAULT_QUEUE), factory: None };
    for i in 0..latency_jobs {
        let started = Instant::now();
        let added = store.add(new_job(i), clock.now())?;
        let claimed = store
            .claim(&filter, clock.now(), lease)?
            .ok_or_else(|| anyhow::anyhow!("the baseline's job {} was not claimable", added.job.id))?;
        let outcome = Outcome::Completed { result: claimed.job.input };
        store.finish(
            Report { started_at: None, id: claimed.job.id, token: claimed.token, outcome },
            clock.now(),
        )?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Baseline { submit_per_s, drain_per_s, latencies })
}

/// Drains `args.jobs` as the pool does: `args.concurrency` workers claim (1 job, doubling while
/// claims come back full, up to the default `claim_batch` or more at a fast pace) and hand each
/// outcome to one recorder, which writes all that wait in one transaction.
fn drain(store: &Arc<dyn Store>, args: &BenchArgs, lease: LeaseTerms) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    let clock = SystemClock;
    let pace = crate::service::ClaimPace::new(std::time::Instant::now());
    let size = AtomicUsize::new(1);
    // With a preload the queue holds more than the run drains: claims stop at `args.jobs`.
    let claimed_so_far = AtomicUsize::new(0);
    let outcomes: (Mutex<Vec<Report>>, Condvar) = Default::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let recorder = scope.spawn(|| -> anyhow::Result<()> {
            let (pending, arrived) = &outcomes;
            let mut written = 0;
            while written < args.jobs {
                let batch = {
                    let mut pending = crate::sync::lock(pending);
                    while pending.is_empty() {
                        pending = crate::sync::wait(arrived, pending);
                    }
                    std::mem::take(&mut *pending)
                };
                written += batch.len();
                store.finish_batch(&batch, clock.now())?;
            }
            Ok(())
        });
        let workers: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (size, outcomes, claimed_so_far, pace) = (&size, &outcomes, &claimed_so_far, &pace);
                scope.spawn(move || -> anyhow::Result<()> {
                    let filter = ClaimFilter { queue: Some(DEFAULT_QUEUE), factory: None };
                    loop {
                        let asked = size.load(Ordering::Relaxed);
                        let taken = claimed_so_far.fetch_add(asked, Ordering::Relaxed);
                        let allowed = asked.min(args.jobs.saturating_sub(taken));
                        if allowed == 0 {
                            return Ok(());
                        }
                        let claimed = store.claim_batch(&filter, clock.now(), lease, allowed)?;
                        claimed_so_far.fetch_sub(allowed - claimed.len(), Ordering::Relaxed);
                        let now = std::time::Instant::now();
                        pace.claimed(claimed.len(), now);
                        let cap = pace.cap(crate::service::DEFAULT_CLAIM_BATCH, now);
                        let next = if claimed.len() >= asked { asked * 2 } else { claimed.len() };
                        size.store(next.clamp(1, cap), Ordering::Relaxed);
                        if claimed.is_empty() {
                            return Ok(());
                        }
                        for claimed in claimed {
                            let outcome = Outcome::Completed { result: claimed.job.input };
                            let report = Report {
                                started_at: None,
                                id: claimed.job.id,
                                token: claimed.token,
                                outcome,
                            };
                            crate::sync::lock(&outcomes.0).push(report);
                            outcomes.1.notify_one();
                        }
                    }
                })
            })
            .collect();
        for h in workers {
            h.join().map_err(|_| anyhow::anyhow!("a baseline worker panicked"))??;
        }
        recorder.join().map_err(|_| anyhow::anyhow!("the baseline recorder panicked"))??;
        Ok(())
    })
}

/// Fills the default queue with `n` echo jobs, 1,000 per transaction and flush (larger
/// transactions only add memory: sled holds a transaction's writes until it commits).
pub fn preload(store: &dyn JobStore, n: usize) -> anyhow::Result<()> {
    const CHUNK: usize = 1_000;
    let mut added = 0;
    while added < n {
        let count = CHUNK.min(n - added);
        store.add_batch((added..added + count).map(new_job).collect(), SystemClock.now())?;
        added += count;
    }
    Ok(())
}
