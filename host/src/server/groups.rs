//! `/v1/groups`: a batch's group, its progress and its cancel.

use axum::extract::State;
use axum::Json;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::PathParam;
use super::state::AppState;
use super::types::{GroupCancelled, GroupView};
use crate::job::JobId;
use crate::text::clip;

fn parse_group(text: &str) -> ApiResult<JobId> {
    text.parse().map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_group",
            format!("no group with id `{}` (ids are decimal numbers)", clip(text)),
        )
    })
}

/// A group's progress: its members per status and its callbacks.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The group id (its first job's)")),
    responses(
        (status = 200, body = GroupView),
        (status = 404, description = "`unknown_group`", body = ErrorBody),
    ))]
pub async fn get_group(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<GroupView>> {
    let id = parse_group(&id)?;
    let host = state.host.clone();
    let group = tokio::task::spawn_blocking(move || host.group(id)).await??;
    Ok(Json(GroupView::from(&group)))
}

/// Cancel every pending member of a group (a running one when it returns). Its `on_complete`
/// callback then runs, its `on_success` is cancelled.
#[utoipa::path(post, path = "/v1/groups/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The group id (its first job's)")),
    responses(
        (status = 200, body = GroupCancelled),
        (status = 404, description = "`unknown_group`", body = ErrorBody),
    ))]
pub async fn cancel_group(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<GroupCancelled>> {
    let id = parse_group(&id)?;
    let host = state.host.clone();
    let (cancelled, group) = tokio::task::spawn_blocking(move || host.cancel_group(id)).await??;
    Ok(Json(GroupCancelled { cancelled, group: GroupView::from(&group) }))
}
