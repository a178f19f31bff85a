//! The attempt supervisor: one thread per host that renews the leases of running attempts,
//! enforces their timeouts, forwards cancellation flags to worker processes and kills those
//! that outlast the grace, so the thread running a job never has to.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::PoolState;

/// How often the supervisor looks at the running attempts: the resolution of timeouts.
const SUPERVISOR_TICK: Duration = Duration::from_millis(25);

/// How often it reads the CPU time of worker processes running jobs (with `cpu_time` set).
const CPU_CHECK_EVERY: u32 = 10;

/// How far past `worker_limits.cpu_time` a job may go before its worker process is killed:
/// the kernel's SIGXCPU comes first (at the limit, rounded up to a second), which a plugin may
/// ignore or catch; this does not depend on the plugin.
const CPU_HARD_MARGIN: Duration = Duration::from_secs(1);

/// Starts the supervisor once per host. It ends with the pool.
pub(super) fn ensure(state: &Arc<PoolState>) {
    if state.supervisor_started.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak = Arc::downgrade(state);
    let spawned = std::thread::Builder::new().name("jobhost-supervisor".to_owned()).spawn(move || {
        for tick in 1u32.. {
            std::thread::sleep(SUPERVISOR_TICK);
            let Some(state) = weak.upgrade() else { return };
            supervise(&state);
            if tick % CPU_CHECK_EVERY == 0 {
                limit_cpu(&state);
            }
        }
    });
    if let Err(e) = spawned {
        // Without it no lease is renewed and no timeout enforced: a host cannot run jobs.
        log::error!("cannot start the attempt supervisor: {e}");
        state.supervisor_started.store(false, Ordering::SeqCst);
    }
}

/// One look at every running attempt: past its deadline → timed out (its cancellation flag
/// set); flag set → forwarded to its worker process; still running `kill_grace` after that →
/// its worker process killed (or, in process, reported stuck); lease a third gone → renewed.
fn supervise(state: &PoolState) {
    let now = Instant::now();
    let lease = state.shared.lease_terms();
    let grace = state.shared.config.kill_grace;
    let mut renew = Vec::new();
    let mut cancel = Vec::new();
    let mut kill = Vec::new();
    let mut stuck = Vec::new();
    state.running.for_each(|id, r| {
        if r.renew_at <= now {
            r.renew_at = now + lease.duration / 3;
            renew.push((id, r.token));
        }
        if !r.started {
            // Waiting for a worker: it runs nothing yet (a cancel is seen when it is taken).
            return;
        }
        if r.deadline.is_some_and(|d| d <= now) && !r.timed_out.swap(true, Ordering::Relaxed) {
            r.cancel.store(true, Ordering::Relaxed);
        }
        if r.cancel.load(Ordering::Relaxed) {
            match r.asked_to_stop_at {
                None => {
                    r.asked_to_stop_at = Some(now);
                    if let Some(worker) = &r.worker {
                        cancel.push((id, worker.clone()));
                    }
                }
                Some(asked) if now.duration_since(asked) >= grace => match &r.worker {
                    Some(worker) if !worker.killed_by_host() => kill.push((id, worker.clone())),
                    Some(_) => {}
                    None if !r.stuck => {
                        r.stuck = true;
                        stuck.push((id, r.queue.clone()));
                    }
                    None => {}
                },
                Some(_) => {}
            }
        }
    });
    for (id, worker) in cancel {
        worker.cancel(id.0);
    }
    for (id, worker) in kill {
        log::warn!(
            job = id.0, pid = worker.pid();
            "job {id}: still running {grace:?} after it was asked to stop; killing worker process {}", worker.pid()
        );
        worker.kill();
    }
    for (id, queue) in stuck {
        log::warn!(
            "job {id} (queue '{queue}'): still running {grace:?} after it was asked to stop; with isolation = \"none\" its thread cannot be stopped, so it holds its worker slot until the plugin returns"
        );
    }
    for (id, token) in renew {
        match state.shared.store.heartbeat(id, token, state.shared.now(), lease) {
            Ok(true) => {}
            Ok(false) => log::warn!("job {id}: lease lost; its outcome will be discarded"),
            Err(e) => log::error!("job {id}: could not renew its lease: {e}"),
        }
    }
}

/// The hard side of `worker_limits.cpu_time`: a job whose worker process (with everything it
/// started) used more CPU time since the job began than the limit and [`CPU_HARD_MARGIN`] has
/// its worker process killed, and the job records why.
fn limit_cpu(state: &PoolState) {
    let limit = match &*crate::sync::read(&state.shared.plugins) {
        super::plugins::Plugins::Isolated { spec, .. } => spec.limits.cpu_time,
        super::plugins::Plugins::InProcess { .. } => None,
    };
    let Some(limit) = limit else { return };
    let mut workers = Vec::new();
    state.running.for_each(|_, r| {
        if let (true, Some(worker)) = (r.started, &r.worker) {
            workers.push(worker.pid());
        }
    });
    if workers.is_empty() {
        return;
    }
    let used = crate::workers::cpu_times(&workers);
    let mut kill = Vec::new();
    state.running.for_each(|id, r| {
        let Some(worker) = r.worker.as_ref().filter(|_| r.started) else { return };
        let Some(&now) = used.get(&worker.pid()) else { return };
        let start = *r.cpu_at_start.get_or_insert(now);
        if now.saturating_sub(start) > limit + CPU_HARD_MARGIN && !r.over_cpu.swap(true, Ordering::Relaxed) {
            kill.push((id, worker.clone(), now.saturating_sub(start)));
        }
    });
    for (id, worker, spent) in kill {
        log::warn!(
            job = id.0, pid = worker.pid();
            "job {id}: used {spent:.1?} of CPU time, past worker_limits.cpu_time ({limit:?}); killing worker process {}",
            worker.pid()
        );
        worker.kill();
    }
}
