//! The attempt supervisor: one task per host that renews the leases of running attempts and
//! enforces their timeouts, so the thread running a job never waits on the async runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::PoolState;

/// How often the supervisor looks at the running attempts: the resolution of timeouts.
const SUPERVISOR_TICK: Duration = Duration::from_millis(25);

/// Starts the supervisor once per host (needs a Tokio runtime). It ends with the pool.
pub(super) fn ensure(state: &Arc<PoolState>) {
    if state.supervisor_started.swap(true, Ordering::SeqCst) {
        return;
    }
    let weak = Arc::downgrade(state);
    tokio::runtime::Handle::current().spawn(async move {
        let mut tick = tokio::time::interval(SUPERVISOR_TICK);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { return };
            supervise(&state);
        }
    });
}

/// One look at every running attempt: past its deadline → timed out (its cancellation flag
/// set); lease a third gone → renewed.
fn supervise(state: &PoolState) {
    let now = Instant::now();
    let lease = state.shared.lease_terms();
    let mut renew = Vec::new();
    state.running.for_each(|id, r| {
        if r.deadline.is_some_and(|d| d <= now) && !r.timed_out.swap(true, Ordering::Relaxed) {
            r.cancel.store(true, Ordering::Relaxed);
        }
        if r.renew_at <= now {
            r.renew_at = now + lease.duration / 3;
            renew.push((id, r.token));
        }
    });
    for (id, token) in renew {
        match state.shared.store.heartbeat(id, token, state.shared.now(), lease) {
            Ok(true) => {}
            Ok(false) => log::warn!("job {id}: lease lost; its outcome will be discarded"),
            Err(e) => log::error!("job {id}: could not renew its lease: {e}"),
        }
    }
}
