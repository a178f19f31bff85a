//! What every handler can reach.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::auth::Token;
use super::guard::AllowedHosts;
use crate::config::Limits;
use crate::service::Host;

/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub host: Host,
    pub limits: Limits,
    pub token: Option<Token>,
    /// Set once a stop signal arrived: long polls answer at once.
    pub shutting_down: watch::Receiver<bool>,
    /// The OpenAPI document generated from the routes, set once the router is built; served
    /// through `contract::document`.
    pub openapi: Arc<OnceLock<serde_json::Value>>,
    /// Host names requests may carry (`guard`); by default addresses, `localhost` and this
    /// machine's name.
    pub allowed_hosts: Arc<AllowedHosts>,
    /// Places for batches being decoded and stored (`BATCHES_AT_ONCE`).
    pub batches: Arc<tokio::sync::Semaphore>,
}

/// Batches decoded and stored at once. The store writes one batch at a time anyway, and each
/// batch in hand holds its jobs decoded and encoded (tens of MB at 10,000 jobs): eight clients
/// posting 10,000-job batches at once took the host to 224 MB, 190 MB with two places, 171 MB
/// with one, and added 800,000 jobs in 10.2 s in each case.
pub const BATCHES_AT_ONCE: usize = 1;

impl AppState {
    pub fn new(
        host: Host,
        limits: Limits,
        token: Option<Token>,
        shutting_down: watch::Receiver<bool>,
    ) -> Self {
        AppState {
            host,
            limits,
            token,
            shutting_down,
            openapi: Arc::new(OnceLock::new()),
            allowed_hosts: Arc::new(AllowedHosts::new(&[])),
            batches: Arc::new(tokio::sync::Semaphore::new(BATCHES_AT_ONCE)),
        }
    }
}
