//! Serving the HTTP API over a host it is handed, until told to stop. Nothing here starts or
//! stops the host's queues, upkeep or scheduler: `runtime::run` assembles the service around
//! this and owns the stop.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::auth::Token;
use super::guard::AllowedHosts;
use super::http;
use super::router::app;
use super::state::AppState;
use crate::config::Limits;
use crate::service::Host;

/// How the HTTP API is served.
#[derive(Clone)]
pub struct Settings {
    pub limits: Limits,
    pub token: Option<Token>,
    /// Host names beside addresses and `localhost` (`guard`).
    pub allowed_hosts: Vec<String>,
}

/// Serves the API for `host` on `listener` until `stopping` turns true; then long polls
/// answer at once, in-flight requests get two seconds, and no new connection is accepted.
/// An error if the HTTP server itself fails.
pub async fn run(
    listener: TcpListener,
    host: Host,
    settings: Settings,
    stopping: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut state = AppState::new(host, settings.limits, settings.token, stopping.clone());
    state.allowed_hosts = std::sync::Arc::new(AllowedHosts::new(&settings.allowed_hosts));
    let drain = Duration::from_secs(2);
    http::serve(listener, app(state), settings.limits, stopping, drain)
        .await
        .map_err(|e| format!("the HTTP server failed: {e}"))
}
