//! Request extractors whose rejections are the API's JSON errors, not axum's plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;
use crate::service::RequestKey;

/// A JSON body of at most `limits.max_body_bytes`. Malformed JSON is `invalid_json`; valid
/// JSON of the wrong shape (missing or unknown fields, wrong types) is `invalid_request`; a body
/// over the limit is `body_too_large`, refused from its declared length before a byte is read,
/// or as soon as it streams past the limit: a request never holds more than its route's limit.
/// (The content type is checked before, by `guard`.)
pub struct JsonBody<T>(pub T);

/// The slowest a body may arrive, bytes a second, after the first `header_timeout`: a body
/// that stalls or trickles cannot hold a connection longer than its size at this rate.
const MIN_BODY_RATE: u64 = 64 * 1024;

async fn read_body(
    req: Request,
    limit: usize,
    header_timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is over the server's limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let allowed = header_timeout + std::time::Duration::from_secs(limit as u64 / MIN_BODY_RATE + 1);
    let read = tokio::time::timeout(allowed, axum::body::to_bytes(req.into_body(), limit)).await;
    let read = read.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {allowed:?} (at least 64 KiB a second)"),
        )
    })?;
    read.map_err(|e| {
        use std::error::Error;
        let mut source: Option<&(dyn Error + 'static)> = Some(&e);
        while let Some(cause) = source {
            if cause.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = cause.source();
        }
        ApiError::invalid_request(format!("cannot read the request body: {e}"))
    })
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state.limits.max_body_bytes.get(), state.limits.header_timeout).await?;
        parse_off_runtime(bytes).await.map(JsonBody)
    }
}

/// A creating request (`POST /v1/jobs`, `/v1/jobs/batch`, `/v1/schedules`): its JSON body as
/// [`JsonBody`] reads it (with the batch limit when `BATCH`), and its `Idempotency-Key` with
/// the digest of the request a repeat must match.
pub struct Creating<T, const BATCH: bool = false> {
    pub body: T,
    pub key: Option<RequestKey>,
    /// A batch's place among the batches decoded and stored at once (`AppState::batches`),
    /// held until the handler is done with it.
    pub place: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

impl<T: DeserializeOwned + Send + 'static, const BATCH: bool> FromRequest<AppState> for Creating<T, BATCH> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(req.headers())?;
        let target =
            req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |p| p.to_string());
        let method = req.method().clone();
        let limit =
            if BATCH { state.limits.max_batch_body_bytes.get() } else { state.limits.max_body_bytes.get() };
        let bytes = read_body(req, limit, state.limits.header_timeout).await?;
        let key =
            key.map(|key| RequestKey { key, fingerprint: fingerprint(method.as_str(), &target, &bytes) });
        // A batch waits for its place only once its body is read: a client trickling its
        // body holds no place, and one waiting holds its bytes, not their decoded jobs.
        let place = if BATCH {
            // The semaphore is never closed; were it, the batch is refused, not lost.
            let closed = |_| ApiError::internal("no place for a batch: the server is stopping");
            Some(state.batches.clone().acquire_owned().await.map_err(closed)?)
        } else {
            None
        };
        Ok(Creating { body: parse_off_runtime(bytes).await?, key, place })
    }
}

/// The request's `Idempotency-Key`: 1 to 255 visible ASCII characters, bare (as Stripe's) or
/// quoted (a structured-field string, as the IETF draft writes it).
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::invalid_request("Idempotency-Key: give the header once"));
    }
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let visible = text.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(ApiError::invalid_request(format!(
            "Idempotency-Key: use 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (e.g. a UUID)"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// What a repeat must match: SHA-256 of the method, the path and query, and the body bytes.
fn fingerprint(method: &str, target: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for part in [method.as_bytes(), b" ", target.as_bytes(), b"\n", body] {
        digest.update(part);
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `parse_json` on a blocking thread: a body of megabytes takes a while to decode, and the
/// runtime's threads serve every other request meanwhile.
async fn parse_off_runtime<T: DeserializeOwned + Send + 'static>(bytes: Bytes) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || parse_json(&bytes))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("decoding the body failed: {e}"))))
}

/// The one place request JSON is decoded (bodies of single jobs and batches alike).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body is an object, and serde would also fill a struct from an array of its
    // fields in order (`[null, null]`), which the document does not allow.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'[')) {
        return Err(ApiError::invalid_request(
            "invalid request body: a JSON object is expected, not an array",
        ));
    }
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

/// A path segment; one that is not UTF-8 once percent-decoded (`%FF`) is `invalid_request`.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParam(value)),
            Err(rejection) => Err(ApiError::invalid_request(format!("path: {}", rejection.body_text()))),
        }
    }
}

/// Two path segments (`/v1/limits/{kind}/{name}`), as [`PathParam`] takes one.
pub struct PathPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path((a, b))) => Ok(PathPair(a, b)),
            Err(rejection) => Err(ApiError::invalid_request(format!("path: {}", rejection.body_text()))),
        }
    }
}

/// Object fields of request bodies: serde fills a struct from an array of its fields too
/// (`"group": [null, null]`), which the document does not allow; these take objects only.
pub mod object {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};

    pub fn opt<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
        let map = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
        map.map(|m| serde_json::from_value(serde_json::Value::Object(m)).map_err(D::Error::custom))
            .transpose()
    }
}

/// Integer fields of request bodies. JSON Schema counts `2.0` as an integer, so a client
/// generated from the document may send it: any number with no fractional part in the
/// field's range is taken.
pub mod integral {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    fn whole<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(
        number: serde_json::Number,
    ) -> Result<T, D::Error> {
        let fits = || D::Error::custom(format!("invalid value: {number}, expected an integer in range"));
        if let Some(n) = number.as_i64() {
            return T::try_from(n).map_err(|_| fits());
        }
        if let Some(n) = number.as_u64() {
            return T::try_from(n).map_err(|_| fits());
        }
        match number.as_f64() {
            // Within ±2^63 every float with no fraction is exactly an i64.
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => T::try_from(f as i64).map_err(|_| fits()),
            _ => Err(fits()),
        }
    }

    /// A number with no fractional part, zero or more and below 2^64, as a `u64` (`7.0` too).
    pub fn u64_of(number: &serde_json::Number) -> Option<u64> {
        number.as_u64().or_else(|| {
            number.as_f64().filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f)).map(|f| f as u64)
        })
    }

    pub fn i32<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
        whole::<D, i32>(serde_json::Number::deserialize(d)?)
    }

    pub fn opt_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?.map(whole::<D, i32>).transpose()
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        whole::<D, u32>(serde_json::Number::deserialize(d)?)
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?.map(whole::<D, u32>).transpose()
    }

    #[cfg(test)]
    mod tests {
        #[derive(serde::Deserialize, Debug)]
        struct Body {
            #[serde(default, deserialize_with = "super::i32")]
            priority: i32,
            #[serde(default, deserialize_with = "super::opt_u32")]
            max_attempts: Option<u32>,
        }

        fn parse(json: &str) -> Result<Body, String> {
            serde_json::from_str(json).map_err(|e| e.to_string())
        }

        #[test]
        fn whole_numbers_in_range_are_taken_in_any_notation() {
            let body = parse(r#"{"priority": 2.0, "max_attempts": 3e0}"#).unwrap();
            assert_eq!((body.priority, body.max_attempts), (2, Some(3)));
            assert_eq!(parse(r#"{"priority": -67108863.0}"#).unwrap().priority, -67_108_863);
            assert_eq!(parse(r#"{"max_attempts": null}"#).unwrap().max_attempts, None);
            assert_eq!(parse("{}").unwrap().priority, 0);
            for bad in [
                r#"{"priority": 2.5}"#,
                r#"{"priority": 3000000000}"#,
                r#"{"max_attempts": -1}"#,
                r#"{"priority": "2"}"#,
            ] {
                assert!(parse(bad).is_err(), "{bad}");
            }
        }
    }
}
