//! The HTTP API (`/v1`, JSON in and out) over the [`Host`]: routes, auth, limits, and the
//! OpenAPI document generated from the same route declarations.
//!
//! **Invariant:** every response to bad input is a JSON error with a stable code (see
//! [`error`]), never a 500, and is decided before anything is stored. Blocking store calls run
//! on blocking threads.

mod admin;
mod auth;
pub mod error;
mod extract;
mod jobs;
mod schedules;
pub mod types;

use std::sync::{Arc, OnceLock};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use tokio::sync::watch;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Limits;
use crate::processor::Host;
use crate::scheduler::Scheduler;
use error::ApiError;

pub use auth::Token;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub host: Host,
    pub scheduler: Scheduler,
    pub limits: Limits,
    pub token: Option<Token>,
    /// Set once a stop signal arrived: long polls answer at once.
    pub shutting_down: watch::Receiver<bool>,
    /// The OpenAPI document, serialized once the router is built.
    openapi: Arc<OnceLock<String>>,
}

impl AppState {
    pub fn new(
        scheduler: Scheduler,
        limits: Limits,
        token: Option<Token>,
        shutting_down: watch::Receiver<bool>,
    ) -> Self {
        AppState {
            host: scheduler.host().clone(),
            scheduler,
            limits,
            token,
            shutting_down,
            openapi: Arc::new(OnceLock::new()),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "jobhost", description = "A job-processing host: durable queue, worker pools, native plugins."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "jobs", description = "Add, read, cancel, retry and remove jobs"),
        (name = "schedules", description = "Cron and delay schedules, and cron previews"),
        (name = "queues", description = "Queues and their processors"),
        (name = "plugins", description = "Loaded plugins and their job factories"),
        (name = "service", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and the OpenAPI document describing exactly them.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(jobs::add_job, jobs::list_jobs, jobs::remove_jobs))
        .routes(routes!(jobs::add_batch))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::start_job))
        .routes(routes!(schedules::add_schedule, schedules::list_schedules))
        .routes(routes!(schedules::get_schedule, schedules::update_schedule, schedules::remove_schedule))
        .routes(routes!(schedules::cron_next))
        .routes(routes!(admin::factories))
        .routes(routes!(admin::plugins))
        .routes(routes!(admin::queues))
        .routes(routes!(admin::start_queue))
        .routes(routes!(admin::stop_queue))
        .routes(routes!(admin::health))
        .routes(routes!(admin::metrics))
        .routes(routes!(admin::openapi))
        .split_for_parts()
}

/// The complete application: routes, auth, body limit, JSON fallbacks.
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let _ = state.openapi.set(doc.to_pretty_json().unwrap_or_default());
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        // The largest body any route takes; each extractor then applies its route's own limit.
        .layer(DefaultBodyLimit::max(
            state.limits.max_body_bytes.max(state.limits.max_batch_body_bytes).get(),
        ))
        .with_state(state)
}
