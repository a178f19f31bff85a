//! Answers to repeated creating requests (same `Idempotency-Key`, same request): what the
//! first request created, as it is now, with the first answer's status and an
//! `Idempotent-Replayed: true` header; a conflict if what it created has been deleted since.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use super::types::{AddedView, BatchAdded, JobView, ScheduleView};
use crate::job::{JobId, ScheduleId};
use crate::service::{Created, HostError};

/// Marks an answer as the replay of an earlier one.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The answer to a repeat of the request that created `created`.
pub async fn replay(state: &AppState, created: Created) -> ApiResult<Response> {
    let host = state.host.clone();
    let gone = |what: String| {
        ApiError::new(
            StatusCode::CONFLICT,
            "idempotent_result_gone",
            format!(
                "the request with this Idempotency-Key was carried out, and {what} has been deleted since"
            ),
        )
    };
    let mut answer = tokio::task::spawn_blocking(move || -> ApiResult<Response> {
        Ok(match created {
            Created::Job { id, existing } => {
                let job = host.get(JobId(id))?.ok_or_else(|| gone(format!("job {id}")))?;
                let status = if existing { StatusCode::OK } else { StatusCode::CREATED };
                (status, Json(AddedView { job: JobView::from(&job), existing })).into_response()
            }
            Created::Batch { ids } => {
                let mut jobs = Vec::with_capacity(ids.len());
                for id in ids {
                    jobs.push(host.get(JobId(id))?.ok_or_else(|| gone(format!("its job {id}")))?);
                }
                (StatusCode::CREATED, Json(BatchAdded::of(&jobs))).into_response()
            }
            Created::Schedule { id } => {
                let schedule = host.get_schedule(ScheduleId(id)).map_err(|e| match e {
                    HostError::ScheduleNotFound(_) => gone(format!("schedule {id}")),
                    other => ApiError::from(other),
                })?;
                (StatusCode::CREATED, Json(ScheduleView::from(&schedule))).into_response()
            }
        })
    })
    .await??;
    answer.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(answer)
}
