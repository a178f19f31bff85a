//! Operators' routes: factories, plugins, queues, health, metrics and the API description.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use std::io::Seek;

use super::contract::{self, Served};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{PathParam, QueryParams};
use super::state::AppState;
use super::types::{
    ConflictView, FactoryView, Health, HostView, PluginView, PluginsView, QueueView, RejectionView,
    StatsView, WorkerView,
};

/// The registered job factories, by name.
#[utoipa::path(get, path = "/v1/factories", tag = "plugins",
    responses((status = 200, body = Vec<FactoryView>)))]
pub async fn factories(State(state): State<AppState>) -> Json<Vec<FactoryView>> {
    Json(state.host.catalog().factories.values().map(FactoryView::from).collect())
}

/// One factory, with the JSON Schema its input must match.
#[utoipa::path(get, path = "/v1/factories/{name}", tag = "plugins",
    params(("name" = String, Path, description = "The factory's name")),
    responses(
        (status = 200, body = FactoryView),
        (status = 404, description = "`unknown_job`: no factory of that name (the message lists the known ones)", body = ErrorBody),
    ))]
pub async fn factory(
    State(state): State<AppState>,
    PathParam(name): PathParam,
) -> ApiResult<Json<FactoryView>> {
    let catalog = state.host.catalog();
    match catalog.factory(&name) {
        Some(info) => Ok(Json(FactoryView::from(info))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_job",
            format!(
                "no factory `{}`; known factories: {}",
                crate::text::clip(&name),
                catalog.factory_names().join(", ")
            ),
        )),
    }
}

/// The loaded plugins with their paths, the files the last scan rejected with the reason, and
/// factory names two files provide.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginsView)))]
pub async fn plugins(State(state): State<AppState>) -> Json<PluginsView> {
    let catalog = state.host.catalog();
    Json(PluginsView {
        plugins: catalog.plugins.iter().map(PluginView::from).collect(),
        rejected: catalog.rejected.iter().map(RejectionView::from).collect(),
        conflicts: catalog.conflicts.iter().map(ConflictView::from).collect(),
        isolation: if state.host.isolated() { "process" } else { "none" }.to_owned(),
    })
}

/// Every queue that is configured, in use, or holds jobs.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = Vec<QueueView>)))]
pub async fn queues(State(state): State<AppState>) -> ApiResult<Json<Vec<QueueView>>> {
    Ok(Json(state.host.queues()?.into_iter().map(QueueView::from).collect()))
}

/// A queue the host knows (configured, in use, or holding jobs); `unknown_queue` (404)
/// otherwise, so that no request creates a queue by naming it.
fn known_queue(state: &AppState, name: &str) -> ApiResult<()> {
    check_queue_name(name)?;
    if state.host.queues()?.iter().any(|q| q.name == name) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_queue",
        format!(
            "no queue {:?}: it is not configured and holds no jobs (configure it, with autostart = false, to have it stopped before its first job)",
            crate::text::clip(name)
        ),
    ))
}

fn queue_view(state: &AppState, name: &str) -> ApiResult<QueueView> {
    let info = state.host.queues()?.into_iter().find(|q| q.name == name);
    info.map(QueueView::from).ok_or_else(|| ApiError::internal(format!("queue `{name}` vanished")))
}

fn check_queue_name(name: &str) -> ApiResult<()> {
    if crate::job::is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!(
            "queue: {:?} is not a queue name (1 to {} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`)",
            crate::text::clip(name),
            crate::job::MAX_NAME_LEN
        )))
    }
}

/// Start processing a queue, ending its pause: this host starts it at once, every other host
/// that stopped it for the pause within a second.
#[utoipa::path(post, path = "/v1/queues/{name}/start", tag = "queues",
    params(("name" = String, Path, description = "The queue name")),
    responses(
        (status = 200, body = QueueView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`unknown_queue`: not configured and holding no jobs", body = ErrorBody),
    ))]
pub async fn start_queue(
    State(state): State<AppState>,
    PathParam(name): PathParam,
) -> ApiResult<Json<QueueView>> {
    known_queue(&state, &name)?;
    state.host.resume_queue(&name)?;
    Ok(Json(queue_view(&state, &name)?))
}

/// Pause a queue: no host claims jobs from it (this one at once, every other host sharing the
/// store within a second) until it is started again, restarts included. Running jobs finish;
/// it keeps accepting jobs. Who paused it and when shows in `paused`.
#[utoipa::path(post, path = "/v1/queues/{name}/stop", tag = "queues",
    params(("name" = String, Path, description = "The queue name")),
    responses(
        (status = 200, body = QueueView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`unknown_queue`: not configured and holding no jobs", body = ErrorBody),
    ))]
pub async fn stop_queue(
    State(state): State<AppState>,
    PathParam(name): PathParam,
) -> ApiResult<Json<QueueView>> {
    known_queue(&state, &name)?;
    state.host.pause_queue(&name)?;
    Ok(Json(queue_view(&state, &name)?))
}

/// The hosts using the store: with a PostgreSQL store every host sharing it (alive or not,
/// by its last heartbeat), with the embedded store this one.
#[utoipa::path(get, path = "/v1/hosts", tag = "queues",
    responses((status = 200, body = Vec<HostView>), (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn hosts(State(state): State<AppState>) -> ApiResult<Json<Vec<HostView>>> {
    let host = state.host.clone();
    let hosts = tokio::task::spawn_blocking(move || host.hosts()).await??;
    Ok(Json(hosts.iter().map(HostView::from).collect()))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Seconds of history, whole minutes, up to 7 days (60 to 604800; default 3600).
    #[param(minimum = 60, maximum = 604800, multiple_of = 60)]
    window: Option<i64>,
    /// Seconds per point of the series, whole minutes dividing the window (default: about 120
    /// points).
    #[param(minimum = 60, maximum = 604800, multiple_of = 60)]
    step: Option<i64>,
}

/// Throughput and latency from the store's history (every host sharing it, restarts
/// included; kept 7 days): completed and failed jobs per second, per queue totals, and run and
/// wait time percentiles of every attempt that ended in the window.
#[utoipa::path(get, path = "/v1/stats", tag = "queues",
    params(StatsParams),
    responses((status = 200, body = StatsView),
        (status = 400, description = "`invalid_request`: a bad `window` or `step`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<StatsParams>,
) -> ApiResult<Json<StatsView>> {
    let max = crate::history::MAX_WINDOW_SECONDS;
    let window = params.window.unwrap_or(3600);
    if !(60..=max).contains(&window) || window % 60 != 0 {
        return Err(ApiError::invalid_request(format!(
            "window: give whole minutes in seconds, 60 to {max}, not {window}"
        )));
    }
    // About 120 points: the smallest whole number of minutes per point, at least window/120,
    // that divides the window.
    let step = params.step.unwrap_or_else(|| {
        let minutes = window / 60;
        (((window / 120 + 59) / 60).max(1)..=minutes).find(|m| minutes % m == 0).unwrap_or(minutes) * 60
    });
    if !(60..=window).contains(&step) || step % 60 != 0 || window % step != 0 {
        return Err(ApiError::invalid_request(format!(
            "step: give whole minutes in seconds that divide the window ({window}), not {step}"
        )));
    }
    let host = state.host.clone();
    let snap = tokio::task::spawn_blocking(move || host.history(window, step)).await??;
    Ok(Json(StatsView::new(snap)))
}

/// The host's workers (at most `max_workers`, shared by every queue): each one's worker
/// process, state, job and restarts.
#[utoipa::path(get, path = "/v1/workers", tag = "queues",
    responses((status = 200, body = Vec<WorkerView>)))]
pub async fn workers(State(state): State<AppState>) -> Json<Vec<WorkerView>> {
    Json(state.host.workers().iter().map(WorkerView::from).collect())
}

/// Liveness; needs no token.
#[utoipa::path(get, path = "/v1/health", tag = "service", security(()),
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "The store cannot write (e.g. the disk is full): reads work, writes are refused until it can", body = Health),
    ))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    if let Some(reason) = state.host.store_problem() {
        let problem = Some(format!("the store cannot write: {reason}"));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "unavailable".to_owned(), version, problem }),
        );
    }
    let status = if *state.shutting_down.borrow() { "shutting_down" } else { "ok" };
    (StatusCode::OK, Json(Health { status: status.to_owned(), version, problem: None }))
}

/// A consistent backup of the whole store, as a file for `jobhost store restore FILE
/// --data-dir DIR`. Writes wait while the copy is taken (reads go on); the file is then sent.
#[utoipa::path(get, path = "/v1/backup", tag = "service",
    responses(
        (status = 200, description = "The backup file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 503, description = "The store cannot be read or written now", body = ErrorBody),
    ))]
pub async fn backup(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let host = state.host.clone();
    let (file, summary) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
        // Copied to a private temporary file first: writes wait only for the copy, never for
        // a slow client.
        let mut file = tempfile::tempfile()
            .map_err(|e| ApiError::internal(format!("cannot create a temporary file for the backup: {e}")))?;
        let summary = host.backup(&mut file)?;
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| ApiError::internal(format!("cannot read the backup back: {e}")))?;
        Ok((file, summary))
    })
    .await??;
    let taken = crate::clock::to_datetime(state.host.clock().now());
    let name = format!("jobhost-{}.backup", taken.format("%Y%m%dT%H%M%SZ"));
    let body =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, summary.bytes.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    ))
}

/// Metrics in the Prometheus text format: jobs by queue and status, attempt outcomes and
/// durations per factory, plugin load failures.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let text = state.host.render_metrics()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

/// This document: OpenAPI 3, generated from the routes themselves.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "service",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    let served = Served {
        factories: state.host.catalog().factory_names().iter().map(|n| n.to_string()).collect(),
        input_schemas: state
            .host
            .catalog()
            .factories
            .values()
            .map(|f| (f.name.clone(), f.input_schema.clone()))
            .collect(),
        token: state.token.is_some(),
        max_batch_jobs: state.limits.max_batch_jobs.get(),
    };
    let base = state.openapi.get().cloned().unwrap_or_default();
    let doc = serde_json::to_string_pretty(&contract::document(&base, &served)).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], doc)
}
