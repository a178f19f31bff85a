//! Request extractors whose rejections are the API's JSON errors, not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;

/// A JSON body of at most `limits.max_body_bytes`. Malformed JSON is `invalid_json`; valid
/// JSON of the wrong shape (missing or unknown fields, wrong types) is `invalid_request`; a body
/// over the limit is `body_too_large`. The content type is not checked: `curl -d` sends a form
/// type for JSON.
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], with the batch limit `limits.max_batch_body_bytes`.
pub struct BatchBody<T>(pub T);

async fn read_body(req: Request, state: &AppState, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the server's limit of {limit} bytes"),
        )
    };
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::invalid_request(format!("cannot read the request body: {}", rejection.body_text()))
        }
    })?;
    if bytes.len() > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state, state.limits.max_body_bytes.get()).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for BatchBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state, state.limits.max_batch_body_bytes.get()).await?;
        parse_json(&bytes).map(BatchBody)
    }
}

/// The one place request JSON is decoded (bodies of single jobs and batches alike).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::invalid_request(format!("invalid request body: {e}")),
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            ),
        }
    })
}

/// The longest delay or timeout a request may ask for: ten years. Longer values are refused,
/// not cut.
pub const MAX_SECONDS: f64 = 315_360_000.0;

/// The shortest timeout or schedule delay: what is stored is whole milliseconds, and a value
/// that rounds to none would mean "at once" (every attempt timing out, or firing now).
pub const MIN_SECONDS: f64 = 0.001;

/// A number of seconds from outside: finite, at least `min` (0 or [`MIN_SECONDS`]), at most
/// [`MAX_SECONDS`]; an error names `field`.
pub fn seconds(field: &str, value: f64, min: f64) -> Result<std::time::Duration, ApiError> {
    if value.is_finite() && value >= min && value <= MAX_SECONDS {
        return Ok(std::time::Duration::from_secs_f64(value));
    }
    let floor = if min > 0.0 { format!("{min} (1 ms)") } else { "0".to_owned() };
    Err(ApiError::invalid_request(format!(
        "{field}: must be a number of seconds from {floor} to {MAX_SECONDS} (ten years), not {value}"
    )))
}

/// Query parameters; a bad one is `invalid_request` naming it.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(ApiError::invalid_request(rejection.body_text())),
        }
    }
}
