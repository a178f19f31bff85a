//! `/v1/schedules` (cron and delay items) and `/v1/cron/next` (previewing an expression).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use super::extract::{seconds, Creating, JsonBody, PathParam, QueryParams, MIN_SECONDS};
use super::jobs::parse_time;
use super::replay::replay;
use super::state::AppState;
use super::types::{CronCheck, CronTimes, SchedulePatchRequest, ScheduleRequest, ScheduleView};
use crate::clock::rfc3339;
use crate::cron::CronSpec;
use crate::job::ScheduleId;
use crate::service::{Keyed, NewSchedule, SchedulePatch};
use crate::text::clip;

/// Longest list `GET /v1/cron/next` gives.
const MAX_CRON_COUNT: usize = 1000;

fn parse_id(text: &str) -> ApiResult<ScheduleId> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_schedule",
            format!("no schedule with id `{}`", clip(text)),
        )
    })
}

/// Create a schedule: a cron item (`cron`, `timezone`) or a one-shot delay item
/// (`delay_seconds`).
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules",
    request_body = ScheduleRequest,
    responses(
        (status = 201, description = "Stored; `next_run_at` is its first slot", body = ScheduleView),
        (status = 400, description = "`invalid_json`, `invalid_request` (the message names the bad cron field or time zone) or `unknown_job`", body = ErrorBody),
    ))]
pub async fn add_schedule(
    State(state): State<AppState>,
    request: Creating<ScheduleRequest>,
) -> ApiResult<Response> {
    let Creating { body: req, key, place: _ } = request;
    if let Some(created) = super::jobs::repeat_of(&state, &key).await? {
        return replay(&state, created).await;
    }
    let new = NewSchedule {
        factory: req.job,
        input: Some(req.input.to_string()),
        queue: req.queue,
        priority: req.priority,
        max_attempts: req.max_attempts,
        timeout: req.timeout_seconds.map(|s| seconds("timeout_seconds", s, MIN_SECONDS)).transpose()?,
        cron: req.cron,
        timezone: req.timezone,
        delay: req.delay_seconds.map(|s| seconds("delay_seconds", s, MIN_SECONDS)).transpose()?,
        active: req.active,
        missed: req.missed.into(),
    };
    let host = state.host.clone();
    let schedule = match key {
        None => tokio::task::spawn_blocking(move || host.add_schedule(new)).await??,
        Some(key) => match tokio::task::spawn_blocking(move || host.add_schedule_keyed(new, &key)).await?? {
            Keyed::New(schedule) => schedule,
            Keyed::Before(first) => return replay(&state, first.created).await,
        },
    };
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&schedule))).into_response())
}

/// Every schedule, by id.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = Vec<ScheduleView>)))]
pub async fn list_schedules(State(state): State<AppState>) -> ApiResult<Json<Vec<ScheduleView>>> {
    let host = state.host.clone();
    let schedules = tokio::task::spawn_blocking(move || host.list_schedules()).await??;
    Ok(Json(schedules.iter().map(ScheduleView::from).collect()))
}

/// One schedule, with `next_run_at`, `last_run_at` and `last_job_id`.
#[utoipa::path(get, path = "/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, description = "`unknown_schedule`", body = ErrorBody)))]
pub async fn get_schedule(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<ScheduleView>> {
    let id = parse_id(&id)?;
    Ok(Json(ScheduleView::from(&state.host.get_schedule(id)?)))
}

/// Change a schedule (reschedule with a new `cron` or `timezone`; pause with `active: false`).
#[utoipa::path(patch, path = "/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule id")),
    request_body = SchedulePatchRequest,
    responses(
        (status = 200, body = ScheduleView),
        (status = 400, description = "`invalid_json` or `invalid_request`", body = ErrorBody),
        (status = 404, description = "`unknown_schedule`", body = ErrorBody),
    ))]
pub async fn update_schedule(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<SchedulePatchRequest>,
) -> ApiResult<Json<ScheduleView>> {
    let id = parse_id(&id)?;
    let patch = SchedulePatch {
        input: req.input.map(|v| v.to_string()),
        queue: req.queue,
        priority: req.priority,
        max_attempts: req.max_attempts,
        cron: req.cron,
        timezone: req.timezone,
        active: req.active,
        missed: req.missed.map(Into::into),
    };
    let host = state.host.clone();
    let schedule = tokio::task::spawn_blocking(move || host.update_schedule(id, patch)).await??;
    Ok(Json(ScheduleView::from(&schedule)))
}

/// Delete a schedule; the jobs it made stay. Answers with the schedule as it was.
#[utoipa::path(delete, path = "/v1/schedules/{id}", tag = "schedules",
    params(("id" = String, Path, description = "The schedule id")),
    responses((status = 200, body = ScheduleView), (status = 404, description = "`unknown_schedule`", body = ErrorBody)))]
pub async fn remove_schedule(
    State(state): State<AppState>,
    PathParam(id): PathParam,
) -> ApiResult<Json<ScheduleView>> {
    let id = parse_id(&id)?;
    let host = state.host.clone();
    let schedule = tokio::task::spawn_blocking(move || host.remove_schedule(id)).await??;
    Ok(Json(ScheduleView::from(&schedule)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CronParams {
    /// A five-field cron expression.
    expr: String,
    /// RFC 3339; the times listed are strictly after it (default: now).
    after: Option<String>,
    /// How many times (default 5, at most 1000).
    count: Option<usize>,
    /// IANA time zone the expression is read in (default UTC).
    tz: Option<String>,
}

/// The next `count` fire times, or why there are none (the message names the field).
fn upcoming(state: &AppState, params: &CronParams) -> ApiResult<Vec<String>> {
    let spec = CronSpec::parse(&params.expr, params.tz.as_deref())
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let after = match params.after.as_deref() {
        Some(text) => parse_time("after", text)?,
        None => state.host.clock().now(),
    };
    let count = params.count.unwrap_or(5);
    if count == 0 || count > MAX_CRON_COUNT {
        return Err(ApiError::invalid_request(format!("count: must be 1 to {MAX_CRON_COUNT}, not {count}")));
    }
    let times = spec.upcoming(after, count);
    if times.is_empty() {
        // As creating a schedule with it says.
        return Err(ApiError::invalid_request(
            "invalid cron: the expression never matches a date (e.g. 30 February)",
        ));
    }
    Ok(times.into_iter().map(rfc3339).collect())
}

/// The next fire times of a cron expression.
#[utoipa::path(get, path = "/v1/cron/next", tag = "schedules",
    params(CronParams),
    responses(
        (status = 200, body = CronTimes),
        (status = 400, description = "`invalid_request`: the message names the bad field or zone", body = ErrorBody),
    ))]
pub async fn cron_next(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CronParams>,
) -> ApiResult<Json<CronTimes>> {
    Ok(Json(CronTimes { times: upcoming(&state, &params)? }))
}

/// What `GET /v1/cron/next` would answer, always as a 200: the times, or the error it would
/// give (the same code and message) with no times. For editors that check an expression as
/// the operator types it: a browser logs every 4xx answer as an error.
#[utoipa::path(get, path = "/v1/cron/check", tag = "schedules",
    params(CronParams),
    responses(
        (status = 200, body = CronCheck),
        (status = 400, description = "`invalid_request`: a parameter of the wrong type (a `count` that is not a number)", body = ErrorBody),
    ))]
pub async fn cron_check(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CronParams>,
) -> Json<CronCheck> {
    Json(match upcoming(&state, &params) {
        Ok(times) => CronCheck { times, error: None },
        Err(e) => CronCheck {
            times: Vec::new(),
            error: Some(ErrorDetail { code: e.code, message: e.message, items: None, fields: None }),
        },
    })
}
