//! The dashboard: one HTML page, its script modules and one stylesheet, compiled into the binary and
//! served at `/` and `/assets/…`. They hold no data: the page's script reads everything
//! through the API under `/v1` with the token the operator gives it, so these routes need no
//! token and are not part of the API document.
//!
//! Plain ES modules, no build step: nothing to install to build or run it, nothing fetched at
//! run time (no CDN), and what is served is what is in the repository.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::state::AppState;

const INDEX: &str = include_str!("dashboard/index.html");
const JS: &str = "text/javascript; charset=utf-8";
/// The page's modules (app.js imports the others by relative URL, so they sit side by side
/// under `/assets/`) and its stylesheet.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("dashboard/app.js")),
    ("api.js", JS, include_str!("dashboard/api.js")),
    ("dom.js", JS, include_str!("dashboard/dom.js")),
    ("shell.js", JS, include_str!("dashboard/shell.js")),
    ("overview.js", JS, include_str!("dashboard/overview.js")),
    ("jobs.js", JS, include_str!("dashboard/jobs.js")),
    ("job.js", JS, include_str!("dashboard/job.js")),
    ("group.js", JS, include_str!("dashboard/group.js")),
    ("schedules.js", JS, include_str!("dashboard/schedules.js")),
    ("new.js", JS, include_str!("dashboard/new.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("dashboard/app.css")),
];

/// The page allows only its own script, styles and API: an input a job carries can never run
/// as script there, even if it reached the page as markup.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{file}", get(asset))
}

async fn index(State(state): State<AppState>) -> Response {
    // The page is told whether to ask for a token before its first request, so that a server
    // with one never answers the dashboard's first requests with 401s.
    let auth = if state.token.is_some() { "token" } else { "none" };
    served(INDEX.replace("{{auth}}", auth), "text/html; charset=utf-8")
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => served((*body).to_owned(), kind),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such dashboard file").into_response(),
    }
}

fn served(body: String, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Revalidated each load: a new binary's assets are used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
