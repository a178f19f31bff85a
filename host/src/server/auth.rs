//! Optional bearer-token auth: every route but `GET /v1/health` and the dashboard's files needs
//! `Authorization: Bearer <token>` when the server has a token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Below this a token is logged as weak.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The shared secret, read from `token_file`.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// The file's content with surrounding whitespace trimmed. Refused, as ssh refuses a
    /// private key others can read: an empty file, and a file that anyone but its owner and
    /// group can read or write. A token shorter than 16 bytes is logged as weak.
    pub fn from_file(path: &std::path::Path) -> Result<Token, String> {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let mode = meta.mode() & 0o777;
        if mode & 0o007 != 0 || mode & 0o020 != 0 {
            return Err(format!(
                "token file {} is open to others (mode {mode:04o}); make it readable by its owner (and the service's group) only: chmod 600, or 640 with group jobhost",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        let token = Token::new(&text).map_err(|_| format!("token file {} is empty", path.display()))?;
        if token.0.len() < MIN_TOKEN_BYTES {
            log::warn!(
                "the token in {} is {} bytes long; use at least {MIN_TOKEN_BYTES} random ones (e.g. `openssl rand -hex 32`)",
                path.display(),
                token.0.len()
            );
        }
        Ok(token)
    }

    /// `text` with surrounding whitespace trimmed; empty is an error.
    pub fn new(text: &str) -> Result<Token, &'static str> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the token is empty");
        }
        Ok(Token(token.into()))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

pub async fn require_token(State(token): State<Option<Token>>, request: Request, next: Next) -> Response {
    let Some(token) = &token else { return next.run(request).await };
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    // The scheme is case-insensitive (RFC 7235): `bearer x` is `Bearer x`.
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credentials)| credentials);
    match offered {
        Some(offered) if token.matches(offered.trim()) => next.run(request).await,
        Some(_) => unauthorized("wrong bearer token"),
        None => unauthorized("this server needs `Authorization: Bearer <token>`"),
    }
}

/// Liveness, and the dashboard's page and assets (`dashboard.rs`), which hold no data: its
/// script asks for the token and sends it with every API call.
fn is_open(path: &str) -> bool {
    path == "/v1/health" || path == "/" || path.starts_with("/assets/")
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}
