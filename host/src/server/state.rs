//! What every handler can reach.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::auth::Token;
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
}

impl AppState {
    pub fn new(
        host: Host,
        limits: Limits,
        token: Option<Token>,
        shutting_down: watch::Receiver<bool>,
    ) -> Self {
        AppState { host, limits, token, shutting_down, openapi: Arc::new(OnceLock::new()) }
    }
}
