//! Running the whole service on a listener until a shutdown future resolves: the host's upkeep
//! and queues, the scheduler loop (by role), the HTTP API, then the graceful stop. The shape of
//! mini-redis's `server::run`: the caller owns the listener and the shutdown signal, so a test
//! starts a service in process on port 0 with a shutdown of its own, and `jobhost serve` passes
//! one made of SIGTERM and SIGINT.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Limits, Role};
use crate::server::{self, Token};
use crate::service::Host;

/// How the service runs.
#[derive(Clone)]
pub struct Settings {
    /// Which loops run here: the queues, the scheduler, or both.
    pub role: Role,
    pub limits: Limits,
    pub token: Option<Token>,
    /// `allowed_hosts` from the configuration.
    pub allowed_hosts: Vec<String>,
    /// How long the stop waits for running jobs before releasing them.
    pub shutdown_timeout: Duration,
    /// The scheduler's longest sleep.
    pub poll_interval: Duration,
}

/// What a graceful stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Running jobs that did not finish in time and went back to `queued`.
    pub released: usize,
}

/// Runs the service for `host` on `listener` until `shutdown` resolves, then stops gracefully:
/// no new requests or claims, long polls answered, running jobs given `shutdown_timeout`, the
/// rest released, the store flushed. An error if the HTTP server itself fails.
pub async fn run(
    listener: TcpListener,
    host: Host,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<Stopped, String> {
    host.start_upkeep();
    host.start_queues();
    let (stopping, stopping_rx) = watch::channel(false);
    let scheduler = settings.role.runs_scheduler().then(|| {
        tokio::spawn(crate::scheduler::run(host.clone(), settings.poll_interval, stopping_rx.clone()))
    });
    let http_settings = server::Settings {
        limits: settings.limits,
        token: settings.token,
        allowed_hosts: settings.allowed_hosts,
    };
    let mut http = tokio::spawn(server::run(listener, host.clone(), http_settings, stopping_rx));
    tokio::select! {
        _ = shutdown => {}
        ended = &mut http => {
            return Err(match ended {
                Ok(Ok(())) => "the HTTP server stopped unexpectedly".to_owned(),
                Ok(Err(e)) => e,
                Err(e) => format!("the HTTP server task failed: {e}"),
            });
        }
    }
    log::info!(
        "shutting down; waiting up to {:?} for {} running job(s)",
        settings.shutdown_timeout,
        host.running_count()
    );
    stopping.send_replace(true);
    let done = host.shutdown(settings.shutdown_timeout).await.map_err(|e| format!("shutdown failed: {e}"))?;
    if let Some(task) = scheduler {
        // It stops at once; a pass in flight finishes first (its firings are transactions).
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), http).await;
    log::info!("stopped; {} job(s) released back to queued", done.released);
    Ok(Stopped { released: done.released })
}
