//! Wake-ups across hosts: a thread with a connection of its own `LISTEN`s on
//! `jobhost_ready`, which the `jobs` table's triggers notify (once per queue, at the commit
//! of any statement that leaves due jobs queued), and wakes this host's workers for that
//! queue. A lost connection is retried every second; meanwhile the workers' poll interval
//! is the fallback, and a reconnect wakes every queue in case a notification was missed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::errors::words;
use super::store::PgStore;

const CHANNEL: &str = "jobhost_ready";
/// How often the thread looks up from waiting to see whether its store was dropped.
const TICK: Duration = Duration::from_millis(500);

/// Starts the listener; `wake(queue)` is called for every notification (`""`: any queue).
pub fn start(store: &PgStore, wake: Arc<dyn Fn(&str) + Send + Sync>) {
    let closed = store.closed.clone();
    let config = store.config.clone();
    let shown = store.shown.clone();
    let spawned = std::thread::Builder::new().name("jobhost-pg-listen".into()).spawn(move || {
        let mut lost = false;
        while !closed.load(Ordering::SeqCst) {
            let mut client = match config.connect(postgres::NoTls) {
                Ok(client) => client,
                Err(e) => {
                    if !lost {
                        log::warn!(
                            "store: cannot listen for wake-ups from {shown}: {}; polling meanwhile",
                            words(&e)
                        );
                        lost = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
                log::warn!("store: LISTEN on {shown} failed: {}", words(&e));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            if lost {
                log::info!("store: listening for wake-ups from {shown} again");
                lost = false;
            }
            // Jobs may have become ready while nobody listened.
            wake("");
            while !closed.load(Ordering::SeqCst) {
                let next = client.notifications().timeout_iter(TICK).next();
                match next {
                    Ok(Some(n)) => wake(n.payload()),
                    Ok(None) => {
                        if client.is_closed() {
                            break;
                        }
                    }
                    Err(e) => {
                        log::warn!("store: lost the wake-up connection to {shown}: {}", words(&e));
                        lost = true;
                        break;
                    }
                }
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("store: cannot start the wake-up listener ({e}); workers poll instead");
    }
}
