//! `/v1/limits`: flow control, set and shown at run time (kept in the store, so every host
//! sharing it claims under the same limits).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, PathPair};
use super::state::AppState;
use super::types::{LimitRequest, LimitView};
use crate::limits::{Limit, Rate, Scope};
use crate::service::MAX_RATE_PER_MS;

/// Every limit.
#[utoipa::path(get, path = "/v1/limits", tag = "queues",
    responses((status = 200, body = Vec<LimitView>)))]
pub async fn list_limits(State(state): State<AppState>) -> ApiResult<Json<Vec<LimitView>>> {
    let host = state.host.clone();
    let limits = tokio::task::spawn_blocking(move || host.limits()).await??;
    Ok(Json(limits.iter().map(LimitView::from).collect()))
}

fn scope(kind: &str, name: &str) -> ApiResult<Scope> {
    Scope::parse(kind, name).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e))
}

/// Set the limit on a queue or a factory (replacing any): how many of its jobs run at once on
/// every host, how many per `limit_key`, how many start per interval. Jobs over a limit stay
/// `queued`, their attempts untouched.
#[utoipa::path(put, path = "/v1/limits/{kind}/{name}", tag = "queues",
    params(("kind" = String, Path, description = "`queue` or `factory`"), ("name" = String, Path, description = "The queue's or factory's name")),
    request_body = LimitRequest,
    responses(
        (status = 200, body = LimitView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`: a kind other than queue or factory", body = ErrorBody),
    ))]
pub async fn set_limit(
    State(state): State<AppState>,
    PathPair(kind, name): PathPair,
    JsonBody(req): JsonBody<LimitRequest>,
) -> ApiResult<Json<LimitView>> {
    let scope = scope(&kind, &name)?;
    let rate = match req.rate {
        None => None,
        Some(r) => {
            let per_ms = r.per_seconds * 1000.0;
            if !(per_ms.is_finite() && per_ms >= 1.0 && per_ms <= MAX_RATE_PER_MS as f64) {
                return Err(ApiError::invalid_request("rate.per_seconds: 0.001 to 86400"));
            }
            Some(Rate { starts: r.starts, per_ms: per_ms.round() as u64 })
        }
    };
    let limit = Limit { scope, concurrency: req.concurrency, per_key: req.per_key, rate };
    let host = state.host.clone();
    let set = tokio::task::spawn_blocking(move || host.set_limit(limit)).await??;
    Ok(Json(LimitView::from(&set)))
}

/// Remove the limit on a queue or a factory.
#[utoipa::path(delete, path = "/v1/limits/{kind}/{name}", tag = "queues",
    params(("kind" = String, Path, description = "`queue` or `factory`"), ("name" = String, Path, description = "The queue's or factory's name")),
    responses(
        (status = 200, description = "The limit removed", body = LimitView),
        (status = 404, description = "`unknown_limit`", body = ErrorBody),
    ))]
pub async fn remove_limit(
    State(state): State<AppState>,
    PathPair(kind, name): PathPair,
) -> ApiResult<Json<LimitView>> {
    let scope = scope(&kind, &name)?;
    let host = state.host.clone();
    let removed = tokio::task::spawn_blocking(move || host.remove_limit(&scope)).await??;
    Ok(Json(LimitView::from(&removed)))
}
