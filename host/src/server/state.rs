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
}

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
        }
    }
}
