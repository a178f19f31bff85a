//! `/v1/jobs` one job at a time: add (one or a batch), read (with long poll), start, cancel,
//! retry, remove. Lists and bulk actions are `job_lists`'.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody, ItemError, DEPENDENCIES};
use super::extract::{integral, parse_json, seconds, Creating, PathParam, QueryParams, MIN_SECONDS};
use super::replay::replay;
use super::state::AppState;
use super::types::{
    AddJobRequest, AddedView, BatchAdded, BatchRequest, GroupRequest, JobSummary, JobView, SummaryPage,
};
use crate::clock::{duration_micros, Micros};
use crate::job::{Callback, Job, JobId, NewMembership, NewParent, OnFailure, Upon};
use crate::service::{AddJob, Created, HostError, Keyed, RequestKey};
use crate::text::clip;

fn parse_id(text: &str) -> ApiResult<JobId> {
    text.parse().map_err(|_| ApiError::unknown_id(format!("`{}` (ids are decimal numbers)", clip(text))))
}

/// A request as the service's `AddJob`; an input larger than `max_input` bytes of JSON (the
/// single-job body limit, which a batch would otherwise let one job pass) is refused.
/// `refs`: the names (`ref`) of a batch's jobs, by position; `None` for a single job.
fn to_add_job(req: AddJobRequest, now: Micros, max_input: usize, refs: Option<&Refs>) -> ApiResult<AddJob> {
    if refs.is_none() && req.reference.is_some() {
        return Err(ApiError::invalid_request(
            "ref: names a job for the others of its batch; only in POST /v1/jobs/batch",
        ));
    }
    let depends_on = parse_depends_on(&req.depends_on, refs)?;
    let input = req.input.to_string();
    if input.len() > max_input {
        return Err(ApiError::invalid_request(format!(
            "input: {} bytes of JSON; a job's input is at most {max_input} (limits.max_body_bytes)",
            input.len()
        )));
    }
    let timeout = req.timeout_seconds.map(|s| seconds("timeout_seconds", s, MIN_SECONDS)).transpose()?;
    let run_at = match (req.delay_seconds, req.run_at.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request("give delay_seconds or run_at, not both"))
        }
        (Some(delay), None) => {
            Some(now.saturating_add(duration_micros(seconds("delay_seconds", delay, 0.0)?)))
        }
        (None, Some(at)) => Some(parse_time("run_at", at)?),
        (None, None) => None,
    };
    Ok(AddJob {
        factory: req.job,
        input: Some(input),
        queue: req.queue,
        priority: req.priority,
        max_attempts: req.max_attempts,
        timeout,
        run_at,
        hold: req.hold,
        unique_key: req.unique_key,
        schedule_id: None,
        depends_on,
        group: None,
        limit_key: req.limit_key,
    })
}

/// Longest group name.
const MAX_GROUP_NAME: usize = 200;

/// Makes `adds` (the batch's jobs, all of them members) a group, and appends its callbacks,
/// each depending on every member.
fn grouped(adds: &mut Vec<AddJob>, group: GroupRequest, now: Micros, max_input: usize) -> ApiResult<()> {
    if let Some(name) = &group.name {
        if name.chars().count() > MAX_GROUP_NAME {
            return Err(ApiError::invalid_request(format!(
                "group.name: at most {MAX_GROUP_NAME} characters"
            )));
        }
    }
    let membership = |callback| Some(NewMembership { name: group.name.clone(), callback });
    let members = adds.len();
    for add in adds.iter_mut() {
        add.group = membership(None);
    }
    for (callback, req) in
        [(Callback::OnComplete, group.on_complete), (Callback::OnSuccess, group.on_success)]
    {
        let Some(req) = req else { continue };
        let field = format!("group.{}", callback.as_str());
        if !req.depends_on.is_empty() || req.reference.is_some() {
            return Err(ApiError::invalid_request(format!(
                "{field}: a callback depends on every member; give it no depends_on or ref"
            )));
        }
        if req.hold || req.unique_key.is_some() {
            return Err(ApiError::invalid_request(format!(
                "{field}: a callback runs when the members have finished; give it no hold or unique_key"
            )));
        }
        let mut add = to_add_job(req, now, max_input, None)
            .map_err(|e| ApiError { message: format!("{field}: {}", e.message), ..e })?;
        let on_failure = callback.on_failure();
        add.depends_on = (0..members).map(|i| NewParent { upon: Upon::Item(i), on_failure }).collect();
        add.group = membership(Some(callback));
        adds.push(add);
    }
    Ok(())
}

/// A batch's job names (`ref`) → their positions.
type Refs = std::collections::HashMap<String, usize>;

/// Longest `ref`.
const MAX_REF_LEN: usize = 64;

/// `depends_on` as sent: each a job id (a decimal string or a number), or `{"id": …}` or,
/// in a batch, `{"ref": …}`, with an optional `on_failure`.
fn parse_depends_on(values: &[serde_json::Value], refs: Option<&Refs>) -> ApiResult<Vec<NewParent>> {
    use serde_json::Value;
    let bad = |i: usize, what: String| ApiError::invalid_request(format!("depends_on[{i}]: {what}"));
    let id_of = |i: usize, v: &Value| -> ApiResult<JobId> {
        match v {
            Value::String(s) => {
                s.parse().map_err(|_| bad(i, format!("`{}` is not a job id (a decimal number)", clip(s))))
            }
            Value::Number(n) => {
                integral::u64_of(n).map(JobId).ok_or_else(|| bad(i, format!("{n} is not a job id")))
            }
            other => Err(bad(i, format!("a job id is a string or a number, not {other}"))),
        }
    };
    let mut parents = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let parent = match value {
            Value::Object(edge) => {
                if let Some(unknown) =
                    edge.keys().find(|k| !matches!(k.as_str(), "id" | "ref" | "on_failure"))
                {
                    return Err(bad(
                        i,
                        format!(
                            "unknown field `{}`; expected `id` or `ref`, and `on_failure`",
                            clip(unknown)
                        ),
                    ));
                }
                let on_failure = match edge.get("on_failure") {
                    None | Some(Value::Null) => OnFailure::Cancel,
                    Some(Value::String(s)) if s == "cancel" => OnFailure::Cancel,
                    Some(Value::String(s)) if s == "run" => OnFailure::Run,
                    Some(other) => {
                        return Err(bad(
                            i,
                            format!("on_failure: `{}`; expected `cancel` or `run`", clip(&other.to_string())),
                        ))
                    }
                };
                let upon =
                    match (edge.get("id").filter(|v| !v.is_null()), edge.get("ref").filter(|v| !v.is_null()))
                    {
                        (Some(id), None) => Upon::Job(id_of(i, id)?),
                        (None, Some(Value::String(name))) => {
                            let Some(refs) = refs else {
                                return Err(bad(
                                    i,
                                    "a `ref` names a job of the same batch: only in POST /v1/jobs/batch"
                                        .into(),
                                ));
                            };
                            match refs.get(name) {
                                Some(&index) => Upon::Item(index),
                                None => {
                                    let message = format!(
                                        "depends_on[{i}]: no job of the batch has the ref `{}`",
                                        clip(name)
                                    );
                                    return Err(ApiError::new(
                                        StatusCode::UNPROCESSABLE_ENTITY,
                                        DEPENDENCIES,
                                        message,
                                    ));
                                }
                            }
                        }
                        (None, Some(other)) => return Err(bad(i, format!("ref: a string, not {other}"))),
                        (Some(_), Some(_)) => return Err(bad(i, "give `id` or `ref`, not both".into())),
                        (None, None) => {
                            return Err(bad(
                                i,
                                "give `id` (a stored job) or `ref` (a job of the batch)".into(),
                            ))
                        }
                    };
                NewParent { upon, on_failure }
            }
            other => NewParent { upon: Upon::Job(id_of(i, other)?), on_failure: OnFailure::Cancel },
        };
        parents.push(parent);
    }
    Ok(parents)
}

/// An RFC 3339 time from outside.
pub fn parse_time(field: &str, text: &str) -> ApiResult<Micros> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_micros()).map_err(|e| {
        ApiError::invalid_request(format!(
            "{field}: `{text}` is not an RFC 3339 time ({e}), e.g. 2026-11-22T16:40:00Z"
        ))
    })
}

/// Add a job. It is on disk before the answer is sent.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body = AddJobRequest,
    responses(
        (status = 201, description = "Stored (queued, scheduled or held)", body = AddedView),
        (status = 200, description = "A pending job with the same factory and `unique_key` exists: that job, `existing: true`", body = AddedView),
        (status = 400, description = "`invalid_json`, `invalid_request` or `unknown_job` (the message lists the known ones)", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
    ))]
pub async fn add_job(State(state): State<AppState>, request: Creating<AddJobRequest>) -> ApiResult<Response> {
    let Creating { body: req, key, place: _ } = request;
    if let Some(created) = repeat_of(&state, &key).await? {
        return replay(&state, created).await;
    }
    let add = to_add_job(req, state.host.clock().now(), state.limits.max_body_bytes.get(), None)?;
    let host = state.host.clone();
    let added = match key {
        None => tokio::task::spawn_blocking(move || host.add(add)).await??,
        Some(key) => match tokio::task::spawn_blocking(move || host.add_keyed(add, &key)).await?? {
            Keyed::New(added) => added,
            Keyed::Before(first) => return replay(&state, first.created).await,
        },
    };
    let status = if added.existing { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(AddedView { job: JobView::from(&added.job), existing: added.existing })).into_response())
}

/// What an earlier request with this key created, if the request sent a live key.
pub async fn repeat_of(state: &AppState, key: &Option<RequestKey>) -> ApiResult<Option<Created>> {
    let Some(key) = key.clone() else { return Ok(None) };
    let host = state.host.clone();
    Ok(tokio::task::spawn_blocking(move || host.repeat_of(&key)).await??)
}

/// Add up to 10,000 jobs in one request: all are checked first (per-job errors, nothing added
/// if any is refused), then stored in one transaction and one flush.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All stored, in order", body = BatchAdded),
        (status = 400, description = "`invalid_batch` with `items`: each refused job's index, code and message; or `invalid_json`, `invalid_request`", body = ErrorBody),
        (status = 413, description = "`body_too_large` (over `limits.max_batch_body_bytes`)", body = ErrorBody),
    ))]
pub async fn add_batch(
    State(state): State<AppState>,
    request: Creating<BatchRequest, true>,
) -> ApiResult<Response> {
    // `_place` (not `_`): the batch keeps its place until it is stored.
    let Creating { body: req, key, place: _place } = request;
    if let Some(created) = repeat_of(&state, &key).await? {
        return replay(&state, created).await;
    }
    let max = state.limits.max_batch_jobs.get();
    if req.jobs.is_empty() || req.jobs.len() > max {
        return Err(ApiError::invalid_request(format!("jobs: give 1 to {max} jobs, not {}", req.jobs.len())));
    }
    let now = state.host.clock().now();
    let max_input = state.limits.max_body_bytes.get();
    let mut adds = Vec::with_capacity(req.jobs.len());
    let mut items = Vec::new();
    let item_error =
        |index: usize, e: ApiError| ItemError { index, code: e.code, message: e.message, fields: e.fields };
    let submitted = req.jobs.len();
    // Every job read first, for the names (`ref`) the others' `depends_on` may give.
    let mut parsed = Vec::with_capacity(req.jobs.len());
    let mut refs = Refs::new();
    for (index, value) in req.jobs.into_iter().enumerate() {
        match parse_json::<AddJobRequest>(value.get().as_bytes()) {
            Ok(r) => {
                if let Some(name) = &r.reference {
                    if name.is_empty() || name.chars().count() > MAX_REF_LEN {
                        let e = ApiError::invalid_request(format!(
                            "ref: must be 1 to {MAX_REF_LEN} characters long"
                        ));
                        items.push(item_error(index, e));
                    } else if let Some(first) = refs.insert(name.clone(), index) {
                        let message = format!("ref: `{}` is already the ref of jobs[{first}]", clip(name));
                        let e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, DEPENDENCIES, message);
                        items.push(item_error(index, e));
                    }
                }
                parsed.push((index, r));
            }
            Err(e) => items
                .push(item_error(index, ApiError { message: format!("invalid job: {}", e.message), ..e })),
        }
    }
    for (index, r) in parsed {
        match to_add_job(r, now, max_input, Some(&refs)) {
            Ok(add) => adds.push((index, add)),
            Err(e) => items.push(item_error(index, e)),
        }
    }
    let total = submitted;
    if !items.is_empty() {
        // Report every refused job at once: the ones that parsed are checked too.
        // Without their edges: positions in this subset are not the batch's.
        let parsed: Vec<AddJob> =
            adds.iter().map(|(_, add)| AddJob { depends_on: Vec::new(), ..add.clone() }).collect();
        if let Err(e) = state.host.add_batch_check(parsed) {
            if let ApiError { items: Some(more), .. } = ApiError::from(e) {
                items.extend(more.into_iter().map(|i| ItemError { index: adds[i.index].0, ..i }));
            }
        }
        items.sort_by_key(|i| i.index);
        let message = format!("{} of {total} jobs are invalid; nothing was added", items.len());
        return Err(ApiError::invalid_batch(items, message));
    }
    let host = state.host.clone();
    let mut adds: Vec<AddJob> = adds.into_iter().map(|(_, add)| add).collect();
    let callbacks = match &req.group {
        Some(group) => [(Callback::OnComplete, &group.on_complete), (Callback::OnSuccess, &group.on_success)]
            .into_iter()
            .filter_map(|(callback, req)| req.as_ref().map(|_| callback))
            .collect(),
        None => Vec::new(),
    };
    // Which job names which stored parent: a parent the store does not hold is told by the
    // index of the first job naming it.
    let named: Vec<(usize, JobId)> = adds
        .iter()
        .enumerate()
        .flat_map(|(index, add)| {
            add.depends_on.iter().filter_map(move |p| {
                if let Upon::Job(id) = p.upon {
                    Some((index, id))
                } else {
                    None
                }
            })
        })
        .collect();
    if let Some(group) = req.group {
        grouped(&mut adds, group, now, max_input)?;
    }
    let added = match key {
        None => tokio::task::spawn_blocking(move || host.add_batch(adds)).await?.map(Keyed::New),
        Some(key) => tokio::task::spawn_blocking(move || host.add_batch_keyed(adds, &key)).await?,
    };
    let jobs = match added.map_err(|e| batch_error(e, total, &callbacks, &named))? {
        Keyed::New(jobs) => jobs,
        Keyed::Before(first) => return replay(&state, first.created).await,
    };
    Ok((StatusCode::CREATED, Json(BatchAdded::of(&jobs))).into_response())
}

/// A batch's refusal in the batch's own terms: a group callback's errors (appended after the
/// `total` jobs sent) named by their field, not by an index the batch does not have; a stored
/// parent that does not exist by the index of the job naming it.
fn batch_error(e: HostError, total: usize, callbacks: &[Callback], named: &[(usize, JobId)]) -> ApiError {
    match e {
        HostError::InvalidBatch { items, .. } if items.iter().any(|(index, _)| *index >= total) => {
            let (members, of_callbacks): (Vec<_>, Vec<_>) =
                items.into_iter().partition(|(index, _)| *index < total);
            if !members.is_empty() {
                return HostError::InvalidBatch { total, items: members }.into();
            }
            let (index, e) = of_callbacks.into_iter().next().expect("a callback's error");
            let field = callbacks.get(index - total).map_or("group", |c| c.as_str());
            let e = ApiError::from(e);
            ApiError { message: format!("group.{field}: {}", e.message), ..e }
        }
        HostError::UnknownParent(id) => match named.iter().find(|(_, parent)| *parent == id) {
            Some(&(index, _)) => {
                HostError::InvalidBatch { total, items: vec![(index, HostError::UnknownParent(id))] }.into()
            }
            None => HostError::UnknownParent(id).into(),
        },
        e => e.into(),
    }
}

/// Dependents listed on one page.
const DEPENDENTS_PAGE: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DependentsParams {
    /// The `next` of the previous page.
    after: Option<String>,
}

/// The jobs that wait for this one (or did, if they were added while it was pending), oldest
/// first, 1,000 a page (`next` gives the rest).
#[utoipa::path(get, path = "/v1/jobs/{id}/dependents", tag = "jobs",
    params(("id" = String, Path, description = "The job id"), DependentsParams),
    responses(
        (status = 200, body = SummaryPage),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
    ))]
pub async fn get_dependents(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(params): QueryParams<DependentsParams>,
) -> ApiResult<Json<SummaryPage>> {
    let id = parse_id(&id)?;
    let after = super::job_lists::parse_after(params.after.as_deref())?;
    let host = state.host.clone();
    let (jobs, next) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<Job>, Option<JobId>), HostError> {
            host.get(id)?.ok_or(HostError::NotFound(id))?;
            let children = host.dependents(id, after, DEPENDENTS_PAGE)?;
            let next = children.last().copied().filter(|_| children.len() == DEPENDENTS_PAGE);
            let mut jobs = Vec::new();
            for child in children {
                jobs.extend(host.get(child)?);
            }
            Ok((jobs, next))
        })
        .await??;
    Ok(Json(SummaryPage {
        jobs: jobs.iter().map(JobSummary::from).collect(),
        next: next.map(|n| n.to_string()),
        searched: None,
    }))
}

/// Queue a `held` job (or a `scheduled` one, now).
#[utoipa::path(post, path = "/v1/jobs/{id}/start", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the job is not held or scheduled", body = ErrorBody),
    ))]
pub async fn start_job(State(state): State<AppState>, PathParam(id): PathParam) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let host = state.host.clone();
    let job = tokio::task::spawn_blocking(move || host.start(id)).await??;
    Ok(Json(JobView::from(&job)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Long poll: answer as soon as the job is finished (completed, error, cancelled) or after
    /// this many seconds (0 to ten years; waits at most the server's `limits.max_wait`),
    /// whichever comes first.
    #[param(minimum = 0, maximum = 315_360_000)]
    wait: Option<f64>,
}

/// Read a job; with `wait`, a long poll for its end.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id"), GetParams),
    responses(
        (status = 200, body = JobView),
        (status = 400, description = "`invalid_request`: a bad `wait`", body = ErrorBody),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    PathParam(id): PathParam,
    QueryParams(params): QueryParams<GetParams>,
) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let wait = match params.wait {
        None => Duration::ZERO,
        Some(s) => seconds("wait", s, 0.0)?.min(state.limits.max_wait),
    };
    let job = wait_for_end(&state, id, wait).await?;
    Ok(Json(JobView::from(&job)))
}

/// How often a long poll reads its job again (see `wait_for_end`).
const RECHECK: Duration = Duration::from_millis(100);

/// The job once it is finished, or as it is when `wait` runs out or the server stops.
async fn wait_for_end(state: &AppState, id: JobId, wait: Duration) -> ApiResult<Job> {
    // Subscribe before reading, so an end between the read and the wait is not missed.
    let mut events = state.host.subscribe();
    let read = || state.host.get(id)?.ok_or_else(|| ApiError::unknown_id(id));
    let job = read()?;
    if job.status.is_finished() || wait.is_zero() {
        return Ok(job);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut stopping = state.shutting_down.clone();
    // Events are this host's: a job another host sharing the store finishes is seen by
    // reading it again, this often.
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = recheck.tick() => {
                let job = read()?;
                if job.status.is_finished() {
                    return Ok(job);
                }
            }
            event = events.recv() => match event {
                Ok(e) if e.id == id && e.status.is_finished() => return read(),
                Ok(_) => {}
                // Missed events: one of them may have been ours.
                Err(RecvError::Lagged(_)) => {
                    let job = read()?;
                    if job.status.is_finished() {
                        return Ok(job);
                    }
                }
                Err(RecvError::Closed) => return read(),
            },
            _ = tokio::time::sleep_until(deadline) => return read(),
            _ = stopping.wait_for(|s| *s) => return read(),
        }
    }
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the job already finished", body = ErrorBody),
    ))]
pub async fn cancel_job(State(state): State<AppState>, PathParam(id): PathParam) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let host = state.host.clone();
    let job = tokio::task::spawn_blocking(move || host.cancel(id)).await??;
    Ok(Json(JobView::from(&job)))
}

/// Remove one finished job (`completed`, `error` or `cancelled`). Answers with the job as it
/// was.
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the job is not finished", body = ErrorBody),
    ))]
pub async fn remove_job(State(state): State<AppState>, PathParam(id): PathParam) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let host = state.host.clone();
    let job = tokio::task::spawn_blocking(move || host.remove_job(id)).await??;
    Ok(Json(JobView::from(&job)))
}

/// Run a job that ended in `error` or `cancelled` again, with fresh attempts (its error
/// history is kept).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "`unknown_id`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`: the job is not in `error` or `cancelled`", body = ErrorBody),
    ))]
pub async fn retry_job(State(state): State<AppState>, PathParam(id): PathParam) -> ApiResult<Json<JobView>> {
    let id = parse_id(&id)?;
    let host = state.host.clone();
    let job = tokio::task::spawn_blocking(move || host.retry(id)).await??;
    Ok(Json(JobView::from(&job)))
}
