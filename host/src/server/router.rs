//! The routes and the OpenAPI document describing exactly them, and the application around
//! them (auth, body limit, JSON fallbacks).

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::state::AppState;
use super::{admin, auth, jobs, schedules};

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
        .routes(routes!(admin::workers))
        .routes(routes!(admin::health))
        .routes(routes!(admin::metrics))
        .routes(routes!(admin::backup))
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
        .layer(axum::middleware::from_fn_with_state(state.token.clone(), auth::require_token))
        // The largest body any route takes; each extractor then applies its route's own limit.
        .layer(DefaultBodyLimit::max(
            state.limits.max_body_bytes.max(state.limits.max_batch_body_bytes).get(),
        ))
        .with_state(state)
}
