//! Conditional reads: every JSON answer to a `GET` under `/v1/` carries an `ETag` (a hash of
//! its bytes), and a request whose `If-None-Match` names it gets `304 Not Modified` with no
//! body. The dashboard asks each view's data again every two seconds; what did not change
//! crosses the wire as a few headers (the answers stay `no-store`: the dashboard keeps the
//! last body itself, a browser's cache never holds the API's data).
//!
//! **Invariant:** a 304 is sent only for the exact bytes the client named; any other answer
//! (an error, another type, a stream) passes untouched.

use std::hash::{Hash, Hasher};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn conditional(request: Request, next: Next) -> Response {
    let tagged =
        matches!(*request.method(), Method::GET | Method::HEAD) && request.uri().path().starts_with("/v1/");
    let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if !tagged || response.status() != StatusCode::OK || !is_json(response.headers()) {
        return response;
    }
    // Only an answer already whole in memory (its exact size known) is tagged: reading it
    // costs nothing more, and a stream passes as it is.
    let Some(size) = axum::body::HttpBody::size_hint(response.body()).exact() else { return response };
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::try_from(size).unwrap_or(usize::MAX)).await {
        Ok(bytes) => bytes,
        Err(e) => {
            log::warn!("an answer could not be read for its ETag: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let tag = format!("\"{:016x}\"", hasher.finish());
    let tag_value = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""));
    if wanted.as_ref().and_then(|v| v.to_str().ok()).is_some_and(|v| matches(v, &tag)) {
        let mut unchanged = StatusCode::NOT_MODIFIED.into_response();
        unchanged.headers_mut().insert(header::ETAG, tag_value);
        return unchanged;
    }
    parts.headers.insert(header::ETAG, tag_value);
    Response::from_parts(parts, Body::from(bytes))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `If-None-Match`: `*`, or a list of tags (weak ones compare by their value, as RFC 9110 says
/// for this header).
fn matches(header: &str, tag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        let tag = "\"0123456789abcdef\"";
        assert!(super::matches(tag, tag));
        assert!(super::matches("\"x\", W/\"0123456789abcdef\"", tag));
        assert!(super::matches("*", tag));
        assert!(!super::matches("\"0123456789abcdee\"", tag));
        assert!(!super::matches("", tag));
    }
}
