//! The scheduler loop, separate from the workers (m01.remote's separation of scheduling from
//! working): `serve --role scheduler` runs only this loop, `--role worker` only the queues. The
//! pass it runs (firing due slots, promoting due jobs) is the service's `Host::run_due`.
//!
//! **Invariant:** time comes only from the host's clock, so tests drive month-long schedules
//! with a `ManualClock` in milliseconds; `poll` bounds every sleep.

use std::time::Duration;

use tokio::sync::watch;

use crate::service::Host;

/// Runs scheduler passes until `stop` turns true: one pass, then sleep until the next schedule
/// or scheduled job is due, a schedule changes, or `poll` passes (which also bounds how late a
/// slot fires when the clock is moved by hand).
pub async fn run(host: Host, poll: Duration, mut stop: watch::Receiver<bool>) {
    log::info!("scheduler started");
    loop {
        let changed = host.schedule_changed();
        tokio::pin!(changed);
        // Register for the wake-up before the pass, so a change during it is not missed.
        changed.as_mut().enable();
        let pass = host.clone();
        // While the store cannot write, a pass would only fail (the slots fire once it heals:
        // a schedule's next run stays due until fired).
        if host.store_problem().is_none() {
            match tokio::task::spawn_blocking(move || pass.run_due()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => log::error!("scheduler pass failed: {e}"),
                Err(e) => log::error!("scheduler pass task failed: {e}"),
            }
        }
        let wait = match host.next_due_at() {
            Some(at) => {
                let until = at.saturating_sub(host.clock().now());
                Duration::from_micros(u64::try_from(until).unwrap_or(0)).min(poll)
            }
            None => poll,
        };
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    log::info!("scheduler stopped");
}
