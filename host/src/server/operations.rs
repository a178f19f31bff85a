//! `/v1/operations`: bulk retry and removal run in the background, with progress and cancel.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, PathParam};
use super::state::AppState;
use super::types::{OperationRequest, OperationView};
use crate::service::{OperationStatus, Selection};

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_operation",
        format!(
            "no operation {}: operations are kept by the host that started them, in memory, the latest 50",
            crate::text::clip(id)
        ),
    )
}

fn operation_id(id: &str) -> ApiResult<u64> {
    id.parse::<u64>().ok().filter(|n| *n > 0 && !id.starts_with('0')).ok_or_else(|| unknown(id))
}

/// Start retrying, removing or cancelling every job the filter matches (or those of `ids` it
/// matches), a page at a time in the background: poll `GET /v1/operations/{id}` for its
/// progress.
#[utoipa::path(post, path = "/v1/operations", tag = "jobs",
    request_body = OperationRequest,
    responses(
        (status = 202, body = OperationView),
        (status = 400, description = "`invalid_request`: a status the action cannot take, a bad name or id, more than 1,000 ids", body = ErrorBody),
        (status = 409, description = "`operations_busy`: 4 are running on this host already", body = ErrorBody),
    ))]
pub async fn start_operation(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<OperationRequest>,
) -> ApiResult<(StatusCode, Json<OperationView>)> {
    for (field, name) in [("queue", &req.queue), ("job", &req.job)] {
        if let Some(name) = name.as_deref().filter(|n| !crate::job::is_valid_name(n)) {
            return Err(ApiError::invalid_request(format!(
                "{field}: {:?} is not a name (1 to {} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`)",
                crate::text::clip(name),
                crate::job::MAX_NAME_LEN
            )));
        }
    }
    let ids_given = req.ids.is_some();
    let named = req.ids.unwrap_or_default();
    if req.status.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::invalid_request(
            "status: an empty list selects nothing; leave it out to take every status the action can",
        ));
    }
    if named.is_empty() && ids_given {
        return Err(ApiError::invalid_request(
            "ids: an empty list selects nothing; name at least one job, or leave ids out to take every job the filter matches",
        ));
    }
    if named.len() > crate::service::MAX_SELECTED {
        return Err(ApiError::invalid_request(format!(
            "ids: at most {} jobs one by one, not {}: select by filter instead",
            crate::service::MAX_SELECTED,
            named.len()
        )));
    }
    let mut ids = Vec::with_capacity(named.len());
    for (i, id) in named.iter().enumerate() {
        let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
        match id.parse::<u64>().ok().filter(|_| digits) {
            // A repeat counts once.
            Some(n) if !ids.contains(&crate::job::JobId(n)) => ids.push(crate::job::JobId(n)),
            Some(_) => {}
            None => {
                return Err(ApiError::invalid_request(format!(
                    "ids[{i}]: {:?} is not a job id (a decimal number)",
                    crate::text::clip(id)
                )))
            }
        }
    }
    let statuses = req.status.unwrap_or_default();
    let selection = Selection { statuses, queue: req.queue, factory: req.job, ids };
    let host = state.host.clone();
    let started = tokio::task::spawn_blocking(move || host.start_operation(req.action, selection)).await??;
    Ok((StatusCode::ACCEPTED, Json(started.into())))
}

/// The operations this host started (the latest 50), oldest first.
#[utoipa::path(get, path = "/v1/operations", tag = "jobs",
    responses((status = 200, body = Vec<OperationView>)))]
pub async fn list_operations(State(state): State<AppState>) -> Json<Vec<OperationView>> {
    Json(state.host.operations().into_iter().map(OperationView::from).collect())
}

/// One operation and how far it got.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The operation's id")),
    responses(
        (status = 200, body = OperationView),
        (status = 404, description = "`unknown_operation`", body = ErrorBody),
    ))]
pub async fn get_operation(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<OperationView>> {
    found(&id, |n| state.host.operation(n))
}

/// Stop an operation after the page it is on (what it changed stays changed).
#[utoipa::path(post, path = "/v1/operations/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The operation's id")),
    responses(
        (status = 200, body = OperationView),
        (status = 404, description = "`unknown_operation`", body = ErrorBody),
    ))]
pub async fn cancel_operation(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<OperationView>> {
    found(&id, |n| state.host.cancel_operation(n))
}

/// Operation `id` as `look` finds it by number; `unknown_operation` for an id that is not one
/// or names none.
fn found(id: &str, look: impl FnOnce(u64) -> Option<OperationStatus>) -> ApiResult<Json<OperationView>> {
    let n = operation_id(id)?;
    look(n).map(|o| Json(o.into())).ok_or_else(|| unknown(id))
}
