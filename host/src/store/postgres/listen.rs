//! Notices across hosts: a thread with a connection of its own `LISTEN`s on `jobhost_ready`
//! and `jobhost_cancel`, which the `jobs` table's triggers notify at the commit of any
//! statement that leaves due jobs queued (once per queue) or asks a running job to stop.
//! Payloads are `schema|queue` and `schema|job id`: hosts on other schemas of the same
//! database ignore them. A lost connection is retried every second; meanwhile the workers'
//! poll interval is the fallback, and a reconnect wakes every queue in case a notification
//! was missed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::errors::words;
use super::store::PgStore;
use crate::job::JobId;
use crate::store::types::Notice;

/// How often the thread looks up from waiting to see whether its store was dropped.
const TICK: Duration = Duration::from_millis(500);

/// What a notification says to a host on `schema`, if anything.
fn notice(schema: &str, channel: &str, payload: &str) -> Option<Notice> {
    let (theirs, value) = payload.split_once('|')?;
    if theirs != schema {
        return None;
    }
    match channel {
        "jobhost_ready" => Some(Notice::Ready(Some(value.to_owned()))),
        "jobhost_cancel" => value.parse::<u64>().ok().map(|id| Notice::Cancel(JobId(id))),
        _ => None,
    }
}

/// Starts the listener; `tell` is called for every notice meant for this store's schema.
pub fn start(store: &PgStore, tell: Arc<dyn Fn(Notice) + Send + Sync>) {
    let closed = store.closed.clone();
    let config = store.config.clone();
    let tls = store.tls.clone();
    let shown = store.shown.clone();
    let spawned = std::thread::Builder::new().name("jobhost-pg-listen".into()).spawn(move || {
        let mut lost = false;
        while !closed.load(Ordering::SeqCst) {
            let connected = tls.connect(&config).and_then(|mut client| {
                let schema: String = client.query_one("SELECT current_schema()::text", &[])?.get(0);
                client.batch_execute("LISTEN jobhost_ready; LISTEN jobhost_cancel")?;
                Ok((client, schema))
            });
            let (mut client, schema) = match connected {
                Ok(connected) => connected,
                Err(e) => {
                    if !lost {
                        log::warn!(
                            "store: cannot listen for notices from {shown}: {}; polling meanwhile",
                            words(&e)
                        );
                        lost = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            if lost {
                log::info!("store: listening for notices from {shown} again");
                lost = false;
            }
            // Jobs may have become ready while nobody listened.
            tell(Notice::Ready(None));
            while !closed.load(Ordering::SeqCst) {
                let next = client.notifications().timeout_iter(TICK).next();
                match next {
                    Ok(Some(n)) => {
                        if let Some(notice) = notice(&schema, n.channel(), n.payload()) {
                            tell(notice);
                        }
                    }
                    Ok(None) => {
                        if client.is_closed() {
                            break;
                        }
                    }
                    Err(e) => {
                        log::warn!("store: lost the notice connection to {shown}: {}", words(&e));
                        lost = true;
                        break;
                    }
                }
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("store: cannot start the notice listener ({e}); workers poll instead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_read_for_this_schema_only() {
        assert_eq!(notice("a", "jobhost_ready", "a|q1"), Some(Notice::Ready(Some("q1".into()))));
        assert_eq!(notice("a", "jobhost_ready", "b|q1"), None);
        assert_eq!(notice("a", "jobhost_ready", "q1"), None);
        assert_eq!(notice("a", "jobhost_cancel", "a|42"), Some(Notice::Cancel(JobId(42))));
        assert_eq!(notice("a", "jobhost_cancel", "a|x"), None);
        assert_eq!(notice("a", "other", "a|42"), None);
    }
}
