//! Limits on a request's head (its URI and headers), answered as the API's JSON errors.
//!
//! hyper refuses a head it cannot hold itself, with a bare status and no body: a URI over
//! 64 KiB (414) or more headers than its table (431). These limits sit below hyper's, so what
//! a client can reach is refused here, in JSON like every other error: a URI over 16 KiB, more
//! than 100 headers, or over 64 KiB of them.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub const MAX_URI_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// hyper's own table, above [`MAX_HEADERS`] so that the JSON answer is the one clients see.
pub const HYPER_MAX_HEADERS: usize = 1000;

pub async fn check(request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is {uri} bytes; the server takes at most {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} headers of {bytes} bytes; the server takes at most {MAX_HEADERS} of {MAX_HEADER_BYTES}",
                headers.len()
            ),
        )
        .into_response();
    }
    next.run(request).await
}
