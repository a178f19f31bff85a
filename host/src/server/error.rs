//! The API's one error type: an HTTP status, a stable machine-readable code and a message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::HostError;

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `invalid_json`, `invalid_request`, `invalid_batch`, `unknown_job`, `unknown_id`,
    /// `unknown_schedule`, `unknown_queue`, `invalid_transition`, `body_too_large`,
    /// `unauthorized`, `not_found`, `method_not_allowed`, `uri_too_long` (414),
    /// `headers_too_large` (431), `host_not_allowed` (421), `cross_site` (403),
    /// `unsupported_media_type` (415), `body_timeout` (408), `store_unavailable` (503: the store cannot write, e.g. a
    /// full disk, or its answer was lost and the outcome is unknown), `unavailable` (503: the
    /// server holds as many connections as it takes), `idempotency_key_reused` (422),
    /// `idempotent_result_gone` (409), `internal`.
    pub code: &'static str,
    /// For people; may change between versions.
    pub message: String,
    /// `invalid_batch` only: what is wrong with each refused job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemError>>,
    /// `invalid_input` only (and its batch items): each field the factory's input schema
    /// refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldErrorView>>,
}

/// One field of an input that the factory's schema refuses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldErrorView {
    /// Where, as a JSON pointer into `input` (`""`: the input itself).
    pub pointer: String,
    /// The rule it breaks.
    pub message: String,
}

/// One refused job of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    /// Its position in `jobs`, from 0.
    pub index: usize,
    pub code: &'static str,
    pub message: String,
    /// `invalid_input`: each field the factory's schema refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldErrorView>>,
}

/// The longest message an error carries.
const MAX_MESSAGE: usize = 2048;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub items: Option<Vec<ItemError>>,
    pub fields: Option<Vec<FieldErrorView>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        // Input is clipped where it is echoed (`crate::text::clip`); this bounds any message
        // that would still carry too much of it.
        if message.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        ApiError { status, code, message, items: None, fields: None }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A batch refused for its `items`: `422` when every one is refused for its dependencies
    /// (which depend on the store and on the batch as a whole), else `400`.
    pub fn invalid_batch(items: Vec<ItemError>, message: impl Into<String>) -> Self {
        let status = if items.iter().all(|i| i.code == DEPENDENCIES) {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError { items: Some(items), ..ApiError::new(status, "invalid_batch", message) }
    }

    pub fn unknown_id(id: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "unknown_id", format!("no job with id {id}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// The code of a refusal for a job's `depends_on` that no schema can state (`422`).
pub const DEPENDENCIES: &str = "invalid_dependencies";

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::UnknownFactory { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_job", e.to_string())
            }
            HostError::Invalid { .. } => ApiError::invalid_request(e.to_string()),
            HostError::InvalidInput { ref errors, .. } => ApiError {
                fields: Some(field_views(errors)),
                ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", e.to_string())
            },
            HostError::NotFound(id) => ApiError::unknown_id(id),
            HostError::LimitNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "unknown_limit", e.to_string()),
            HostError::OperationsBusy(_) => ApiError::new(StatusCode::CONFLICT, "operations_busy", e.to_string()),
            HostError::GroupNotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_group", format!("no group with id {id}"))
            }
            HostError::ScheduleNotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_schedule", format!("no schedule with id {id}"))
            }
            HostError::Refused(_) | HostError::KeyHeld(_) | HostError::Needed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
            HostError::Dependencies(_) | HostError::UnknownParent(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_dependencies", e.to_string())
            }
            HostError::KeyReused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string())
            }
            HostError::InvalidBatch { ref items, .. } => {
                let items = items
                    .iter()
                    .map(|(index, e)| {
                        let (code, fields) = match e {
                            HostError::UnknownFactory { .. } => ("unknown_job", None),
                            HostError::Invalid { .. } => ("invalid_request", None),
                            HostError::InvalidInput { errors, .. } => ("invalid_input", Some(field_views(errors))),
                            HostError::Dependencies(_) | HostError::UnknownParent(_) => (DEPENDENCIES, None),
                            _ => ("internal", None),
                        };
                        ItemError { index: *index, code, message: e.to_string(), fields }
                    })
                    .collect();
                ApiError::invalid_batch(items, e.to_string())
            }
            HostError::NoWorker(_) => {
                log::error!("request failed: {e}");
                ApiError::internal(e.to_string())
            }
            // Sent, and the store's answer lost: it may or may not be saved.
            HostError::Store(_) if e.outcome_unknown() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!(
                    "{e}; the outcome is unknown: the request may have been saved. Repeat it with the same Idempotency-Key header to get its outcome without doing it twice (without a key, look before repeating it)"
                ),
            ),
            // Nothing was changed; the same request succeeds once the store writes again.
            HostError::Store(e) if e.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{e}; the request was not saved, try it again later"),
            ),
            HostError::Store(e) => {
                log::error!("request failed in the store: {e}");
                ApiError::internal(e.to_string())
            }
        }
    }
}

fn field_views(errors: &[crate::service::FieldError]) -> Vec<FieldErrorView> {
    errors.iter().map(|e| FieldErrorView { pointer: e.pointer.clone(), message: e.message.clone() }).collect()
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        log::error!("request task failed: {e}");
        ApiError::internal(format!("the request's task failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                items: self.items,
                fields: self.fields,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
