//! The routes and the OpenAPI document describing exactly them, and the application around
//! them (auth, body limit, JSON fallbacks).

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::state::AppState;
use super::{
    admin, auth, dashboard, etag, groups, guard, head, job_lists, jobs, limits, operations, schedules,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "jobhost", description = "A job-processing host: durable queue, worker pools, native plugins."),
    tags(
        (name = "jobs", description = "Add, read, cancel, retry and remove jobs"),
        (name = "schedules", description = "Cron and delay schedules, and cron previews"),
        (name = "queues", description = "Queues and their processors"),
        (name = "plugins", description = "Loaded plugins and their job factories"),
        (name = "service", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

/// The routes and the OpenAPI document generated from their declarations (`contract` makes
/// it exact for the running server: security, factories, limits).
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(jobs::add_job, job_lists::list_jobs, job_lists::remove_jobs))
        .routes(routes!(jobs::add_batch))
        .routes(routes!(job_lists::retry_jobs))
        .routes(routes!(job_lists::list_summaries))
        .routes(routes!(job_lists::count_jobs))
        .routes(routes!(jobs::get_job, jobs::remove_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::start_job))
        .routes(routes!(jobs::get_dependents))
        .routes(routes!(groups::get_group))
        .routes(routes!(groups::cancel_group))
        .routes(routes!(operations::start_operation, operations::list_operations))
        .routes(routes!(operations::get_operation))
        .routes(routes!(operations::cancel_operation))
        .routes(routes!(schedules::add_schedule, schedules::list_schedules))
        .routes(routes!(schedules::get_schedule, schedules::update_schedule, schedules::remove_schedule))
        .routes(routes!(schedules::cron_next))
        .routes(routes!(schedules::cron_check))
        .routes(routes!(admin::factories))
        .routes(routes!(admin::factory))
        .routes(routes!(admin::plugins))
        .routes(routes!(admin::queues))
        .routes(routes!(limits::list_limits))
        .routes(routes!(limits::set_limit, limits::remove_limit))
        .routes(routes!(admin::start_queue))
        .routes(routes!(admin::stop_queue))
        .routes(routes!(admin::workers))
        .routes(routes!(admin::stats))
        .routes(routes!(admin::hosts))
        .routes(routes!(admin::health))
        .routes(routes!(admin::metrics))
        .routes(routes!(admin::backup))
        .routes(routes!(admin::openapi))
        .split_for_parts()
}

/// The complete application: routes, auth, body limit, JSON fallbacks.
pub fn app(state: AppState) -> Router {
    let (router, doc) = routes();
    let _ = state.openapi.set(serde_json::to_value(&doc).unwrap_or_default());
    router
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        // Inside auth: only an answer the caller may read is compared with its tag.
        .layer(axum::middleware::from_fn(etag::conditional))
        .layer(axum::middleware::from_fn_with_state(state.token.clone(), auth::require_token))
        // Before auth: a request a browser makes for another site is refused, token or not.
        .layer(axum::middleware::from_fn_with_state(state.allowed_hosts.clone(), guard::check))
        // Before the guard and auth: an oversized head is refused before anything reads it.
        .layer(axum::middleware::from_fn(head::check))
        // Around everything, so refusals carry the headers too.
        .layer(axum::middleware::from_fn(no_sniff_no_store))
        // The largest body any route takes; each extractor then applies its route's own limit.
        .layer(DefaultBodyLimit::max(
            state.limits.max_body_bytes.max(state.limits.max_batch_body_bytes).get(),
        ))
        .with_state(state)
}

/// Every answer says what it is, so a browser never guesses (`nosniff`), and the API's answers
/// (jobs, the backup) are never kept by a browser or a proxy (`no-store`); the dashboard's
/// files set their own caching.
async fn no_sniff_no_store(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = request.uri().path().starts_with("/v1/") || request.uri().path() == "/metrics";
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
