//! `/v1/jobs` as lists: pages of jobs or of their summaries (cursor, filters, order), and the
//! bulk actions over a filter (remove, retry).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::QueryParams;
use super::job_search::{Search, SEARCH_CHUNK, SEARCH_MAX, SEARCH_MAX_BYTES};
use super::state::AppState;
use super::types::{JobCount, JobPage, JobSummary, JobView, Removed, Retried, SummaryPage};
use crate::job::{Job, JobId, Status};
use crate::service::{ListFilter, Removal};
use crate::text::clip;

/// Page size of `GET /v1/jobs` when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// `completed,error` → statuses; an unknown name is `invalid_request` listing the known ones.
fn parse_statuses(text: Option<&str>) -> ApiResult<Vec<Status>> {
    let Some(text) = text.filter(|t| !t.is_empty()) else { return Ok(Vec::new()) };
    text.split(',')
        .map(|s| s.trim().parse::<Status>().map_err(|e| ApiError::invalid_request(format!("status: {e}"))))
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Comma-separated statuses, e.g. `queued,processing`.
    status: Option<String>,
    /// Only jobs of this factory.
    job: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
    /// Page size (default 100, at most the server's `limits.max_page`).
    limit: Option<usize>,
    /// The `next` of the previous page: the jobs after it in this order.
    after: Option<String>,
    /// `oldest` (ascending ids, the default) or `newest` first.
    #[param(inline, value_type = Option<String>, pattern = "^(oldest|newest)$")]
    order: Option<String>,
    /// Only jobs with an error containing this text (any case), at most 200 characters.
    /// Searched, not indexed: a page examines at most 10,000 jobs, or 32 MiB of their data
    /// (`searched` says how many);
    /// `next` goes on from where it stopped.
    #[param(max_length = 200)]
    error: Option<String>,
    /// Only jobs whose input has this top-level field with this value, as `field=value`: a
    /// string field's text, or another value's JSON (`customer=acme`, `n=5`, `urgent=true`).
    /// Searched like `error`.
    #[param(max_length = 200, pattern = r"^([^=]+=[\s\S]*)?$")]
    input: Option<String>,
}

/// List jobs, oldest or newest first, a page at a time. Each filter (status, queue, job, and
/// status with either) is an index range: a page costs the same at any depth.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, body = JobPage),
        (status = 400, description = "`invalid_request`: a bad parameter", body = ErrorBody),
    ))]
pub async fn list_jobs(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<JobPage>> {
    let max_bytes = state.limits.max_page_bytes.get();
    let (jobs, next, searched) =
        page(&state, params, |job| JobView { backtrace: None, ..JobView::from(job) }, Some(max_bytes))
            .await?;
    Ok(Json(JobPage { jobs, next, searched }))
}

/// The same pages as `GET /v1/jobs`, each job without its input, result and error texts: for
/// lists read again every few seconds (the dashboard's), whatever size the jobs' data.
#[utoipa::path(get, path = "/v1/jobs/summaries", tag = "jobs",
    params(ListParams),
    responses(
        (status = 200, body = SummaryPage),
        (status = 400, description = "`invalid_request`: a bad parameter", body = ErrorBody),
    ))]
pub async fn list_summaries(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<SummaryPage>> {
    let (jobs, next, searched) = page(&state, params, |job| JobSummary::from(job), None).await?;
    Ok(Json(SummaryPage { jobs, next, searched }))
}

/// `GET /v1/jobs/count`'s filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CountParams {
    /// The job factory counted.
    job: String,
    /// Comma-separated statuses, e.g. `queued,processing` (default: any).
    status: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
}

/// Counted at most: past it, `at_least` says so.
const COUNT_CAP: u64 = 100_000;

/// How many jobs of a factory there are (in statuses, within a queue), counted through an
/// index up to 100,000. Counts by queue and status are `GET /v1/queues`' (from the store's
/// counts, never counted).
#[utoipa::path(get, path = "/v1/jobs/count", tag = "jobs",
    params(CountParams),
    responses(
        (status = 200, body = JobCount),
        (status = 400, description = "`invalid_request`: a bad parameter", body = ErrorBody),
    ))]
pub async fn count_jobs(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CountParams>,
) -> ApiResult<Json<JobCount>> {
    let statuses = parse_statuses(params.status.as_deref())?;
    let host = state.host.clone();
    let count = tokio::task::spawn_blocking(move || {
        host.count_of_factory(&params.job, params.queue.as_deref(), &statuses, COUNT_CAP)
    })
    .await??;
    Ok(Json(JobCount { count, at_least: count >= COUNT_CAP }))
}

/// Jobs read from the store at a time while a page is built: what a page holds in memory
/// beside what it keeps, whatever the size of each job's input and result.
const CHUNK: usize = 8;

/// What a job weighs in a page: its text fields (each may be escaped to twice its length in
/// JSON at most for the text a plugin wrote; names are plain) and the fixed part of its view.
fn weight(job: &Job) -> usize {
    job.input.len()
        + job.result.as_ref().map_or(0, String::len)
        + job.errors.iter().map(|e| e.len() + 4).sum::<usize>()
        + job.factory.len()
        + job.queue.len()
        + job.unique_key.as_ref().map_or(0, String::len)
        + job.limit_key.as_ref().map_or(0, String::len)
        + job.progress.as_ref().map_or(0, |p| p.message.len())
        + 1024
}

/// One page of the list, each job as `view` makes it, the cursor of the next, if any, and
/// with a search how many jobs it examined. Read `CHUNK` jobs at a time; with `max_bytes`,
/// the page ends early (with a cursor) before the jobs' data would pass it, though never
/// before its first job; a search ends it once it examined `SEARCH_MAX`.
async fn page<T>(
    state: &AppState,
    params: ListParams,
    view: fn(&Job) -> T,
    max_bytes: Option<usize>,
) -> ApiResult<(Vec<T>, Option<String>, Option<u64>)> {
    let statuses = parse_statuses(params.status.as_deref())?;
    let search = std::sync::Arc::new(Search::parse(params.error.as_deref(), params.input.as_deref())?);
    let chunk = if search.is_empty() { CHUNK } else { SEARCH_CHUNK };
    let mut searched = 0usize;
    let mut examined = 0usize;
    let shown = |searched: usize| (!search.is_empty()).then_some(searched as u64);
    let after = parse_after(params.after.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 {
        return Err(ApiError::invalid_request("limit: must be at least 1"));
    }
    let limit = limit.min(state.limits.max_page.get());
    let newest_first = match params.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "order: `{}` is not `oldest` or `newest`",
                clip(other)
            )))
        }
    };
    let mut page = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = after;
    loop {
        let wanted = (limit - page.len()).min(CHUNK);
        // A search reads past the jobs it skips; a plain list reads what it keeps.
        let wanted = if search.is_empty() { wanted } else { chunk.min(SEARCH_MAX - searched) };
        // One more than wanted tells whether more follow.
        let filter = ListFilter {
            statuses: statuses.clone(),
            factory: params.job.clone(),
            queue: params.queue.clone(),
            after: cursor,
            limit: wanted + 1,
            newest_first,
        };
        let host = state.host.clone();
        // The matching runs beside the read, off the server's threads: a search through large
        // inputs is CPU work.
        let matcher = search.clone();
        let (jobs, matched) = tokio::task::spawn_blocking(move || {
            let jobs = host.list(&filter)?;
            let matched: Vec<bool> = jobs.iter().map(|job| matcher.matches(job)).collect();
            Ok::<_, crate::service::HostError>((jobs, matched))
        })
        .await??;
        let more = jobs.len() > wanted;
        for (job, &matches) in jobs.iter().zip(&matched).take(wanted) {
            if !matches {
                searched += 1;
                examined += weight(job);
                cursor = Some(job.id);
                if examined >= SEARCH_MAX_BYTES {
                    return Ok((page, cursor.map(|id| id.to_string()), shown(searched)));
                }
                continue;
            }
            let weighs = weight(job);
            if max_bytes.is_some_and(|max| !page.is_empty() && bytes + weighs > max) {
                return Ok((page, cursor.map(|id| id.to_string()), shown(searched)));
            }
            bytes += weighs;
            examined += weighs;
            searched += 1;
            page.push(view(job));
            cursor = Some(job.id);
            if page.len() == limit {
                let next =
                    (more || job.id != jobs[wanted.min(jobs.len()) - 1].id).then(|| job.id.to_string());
                return Ok((page, next, shown(searched)));
            }
        }
        if !more {
            return Ok((page, None, shown(searched)));
        }
        if page.len() == limit || searched >= SEARCH_MAX || examined >= SEARCH_MAX_BYTES {
            return Ok((page, cursor.map(|id| id.to_string()), shown(searched)));
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveParams {
    /// Comma-separated finished statuses (`completed`, `error`, `cancelled`); default all three.
    status: Option<String>,
    /// Only jobs of this factory.
    job: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
}

/// Remove finished jobs (of a queue and factory when given).
#[utoipa::path(delete, path = "/v1/jobs", tag = "jobs",
    params(RemoveParams),
    responses(
        (status = 200, body = Removed),
        (status = 400, description = "`invalid_request`: an unknown or unfinished status", body = ErrorBody),
    ))]
pub async fn remove_jobs(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<RemoveParams>,
) -> ApiResult<Json<Removed>> {
    let statuses = parse_statuses(params.status.as_deref())?;
    let host = state.host.clone();
    let requested = if statuses.is_empty() { Status::FINISHED.to_vec() } else { statuses.clone() };
    let which = Removal {
        statuses: statuses.clone(),
        queue: params.queue,
        factory: params.job,
        ..Removal::default()
    };
    let counts = tokio::task::spawn_blocking(move || host.remove(&which)).await??;
    let mut removed: BTreeMap<Status, u64> = requested.into_iter().map(|s| (s, 0)).collect();
    removed.extend(counts);
    Ok(Json(Removed { removed }))
}

/// Cancel a job: a waiting one at once; a running one is asked to stop and ends `cancelled`
/// when its factory returns.

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RetryAllParams {
    /// `error` (the default), `cancelled`, or both (`error,cancelled`).
    #[param(inline, value_type = Option<String>)]
    status: Option<String>,
    /// Only jobs of this factory.
    job: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
}

/// Retry every failed (or cancelled) job, of a queue and factory when given: each runs again
/// with fresh attempts, as `POST /v1/jobs/{id}/retry` would.
#[utoipa::path(post, path = "/v1/jobs/retry", tag = "jobs",
    params(RetryAllParams),
    responses(
        (status = 200, body = Retried),
        (status = 400, description = "`invalid_request`: a status other than `error` or `cancelled`", body = ErrorBody),
    ))]
pub async fn retry_jobs(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<RetryAllParams>,
) -> ApiResult<Json<Retried>> {
    let mut statuses = parse_statuses(params.status.as_deref())?;
    if statuses.is_empty() {
        statuses.push(Status::Error);
    }
    let host = state.host.clone();
    let retried =
        tokio::task::spawn_blocking(move || host.retry_all(&statuses, params.queue, params.job)).await??;
    Ok(Json(Retried { retried }))
}

/// A page's `after` cursor (the `next` of the page before): a job id, or none if absent or
/// empty.
pub(super) fn parse_after(after: Option<&str>) -> ApiResult<Option<JobId>> {
    match after.filter(|a| !a.is_empty()) {
        None => Ok(None),
        Some(a) => a
            .parse::<JobId>()
            .map(Some)
            .map_err(|_| ApiError::invalid_request(format!("after: `{}` is not a job id", clip(a)))),
    }
}
