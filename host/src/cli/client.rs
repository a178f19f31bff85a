//! The HTTP client the job and queue commands share: one place that knows the server's
//! address, the token, and how the API reports errors.

use std::time::Duration;

use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::server::types::JobView;

/// Where the server is, and how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The jobhost server (the token comes from the JOBHOST_TOKEN environment variable).
    #[arg(long, env = "JOBHOST_URL", default_value = "http://127.0.0.1:7878", value_name = "URL")]
    pub server: String,
    /// Print JSON instead of tables and messages.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server answered: the one line a user needs.
    #[error("cannot reach the jobhost server at {url}: {reason} (is `jobhost serve` running? set --server or JOBHOST_URL)")]
    Unreachable { url: String, reason: String },
    /// The server answered with an API error.
    #[error("{message} ({code}){}", if *status == 401 { "; set JOBHOST_TOKEN to the server's bearer token" } else { "" })]
    Api { status: u16, code: String, message: String, items: Option<Vec<ItemErrorBody>> },
    /// The server answered something that is not the API.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// `--server` (or `JOBHOST_URL`) is not a server's address.
    #[error("--server {given:?}: {reason}")]
    BadServer { given: String, reason: String },
}

impl ClientError {
    /// The exit code for this failure: 3 when no request could be made (no server, no valid
    /// token), 1 when the server refused it or answered nonsense.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Api { status: 401, .. }
            | ClientError::Unreachable { .. }
            | ClientError::BadServer { .. } => super::EXIT_USAGE,
            ClientError::Api { .. } | ClientError::Protocol { .. } => super::EXIT_FAILED,
        }
    }
}

pub struct Client {
    /// The server's base URL, or why `--server` is not one.
    base: Result<String, (String, String)>,
    token: Option<String>,
    agent: ureq::Agent,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
    #[serde(default)]
    items: Option<Vec<ItemErrorBody>>,
}

/// One refused job of a batch, as the server reports it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ItemErrorBody {
    pub index: usize,
    pub code: String,
    pub message: String,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        let token =
            std::env::var("JOBHOST_TOKEN").ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        Client { base: server_url(&args.server), token, agent }
    }

    fn url(&self, path: &str) -> Result<String, ClientError> {
        match &self.base {
            Ok(base) => Ok(format!("{base}{path}")),
            Err((given, reason)) => {
                Err(ClientError::BadServer { given: given.clone(), reason: reason.clone() })
            }
        }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(*k, v);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(&url, request.call())
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.post(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let sent = match body {
            Some(body) => request.send_json(body),
            None => request.send_empty(),
        };
        self.answer(&url, sent)
    }

    /// A creating POST made safe to repeat: it carries a fresh `Idempotency-Key`, and when its
    /// answer is lost (the connection broke after it was made, or the server answered 503: its store could not
    /// write, or lost its answer) it is sent again with the same key, up to 5 times over
    /// about 15 s, so that it creates once.
    pub fn create<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let key = new_key();
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=5 {
            let mut request = self.agent.post(&url).header("Idempotency-Key", &key);
            if let Some(token) = &self.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let sent = request.send_json(body);
            // Lost on the way: the request may have arrived (never a refused connection).
            let lost = match &sent {
                Err(ureq::Error::Io(e)) => matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ),
                Ok(response) => response.status() == 503,
                Err(_) => false,
            };
            let result = self.answer(&url, sent);
            if !lost || attempt == 5 {
                return result;
            }
            if let Err(e) = &result {
                eprintln!("note: {e}; sending it again with the same Idempotency-Key in {wait:?}");
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        unreachable!("the last attempt returns")
    }

    pub fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.patch(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(&url, request.send_json(body))
    }

    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.put(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(&url, request.send_json(body))
    }

    pub fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.delete(&url);
        for (k, v) in query {
            request = request.query(*k, v);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(&url, request.call())
    }

    /// Streams the body of `GET path` into `out` (a download, not JSON); how many bytes.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, ClientError> {
        let url = self.url(path)?;
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| self.transport_error(&url, e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return match self.answer::<serde_json::Value>(&url, Ok(response)) {
                Err(e) => Err(e),
                Ok(_) => Err(ClientError::Protocol { url, reason: format!("HTTP {status}") }),
            };
        }
        // Errors if the connection ends before the announced length.
        std::io::copy(&mut response.body_mut().as_reader(), out)
            .map_err(|e| ClientError::Protocol { url, reason: format!("the download broke off: {e}") })
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Io(io) => ClientError::Unreachable {
                url: self.base.clone().unwrap_or_default(),
                reason: io.to_string(),
            },
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) => {
                ClientError::Unreachable { url: self.base.clone().unwrap_or_default(), reason: e.to_string() }
            }
            other => ClientError::Protocol { url: url.to_owned(), reason: other.to_string() },
        }
    }

    /// A job, after waiting up to `wait` for it to finish.
    pub fn job(&self, id: &str, wait: Option<Duration>) -> Result<JobView, ClientError> {
        let query: Vec<(&str, String)> =
            wait.map(|w| ("wait", w.as_secs_f64().to_string())).into_iter().collect();
        self.get(&format!("/v1/jobs/{}", segment(id)), &query)
    }

    fn answer<T: DeserializeOwned>(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, ClientError> {
        let mut response = result.map_err(|e| self.transport_error(url, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| ClientError::Protocol { url: url.to_owned(), reason: e.to_string() })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| ClientError::Protocol {
                url: url.to_owned(),
                reason: format!("HTTP {status}: {e}"),
            });
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api {
                status,
                code: body.error.code,
                message: body.error.message,
                items: body.error.items,
            }),
            Err(_) => Err(ClientError::Protocol {
                url: url.to_owned(),
                reason: format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
            }),
        }
    }
}

/// A key no other request has: 128 random bits in hex.
fn new_key() -> String {
    format!("{:032x}", fastrand::u128(..))
}

/// The server's base URL: `localhost:7878` means `http://localhost:7878` (the server speaks
/// plain HTTP), and a trailing slash is dropped.
/// The base URL of the server `given` names (`http://host:port`, `https://...`, or
/// `host:port`), or why it names none: another scheme, a path, a query.
pub fn server_url(given: &str) -> Result<String, (String, String)> {
    let fail = |reason: &str| Err((given.to_owned(), reason.to_owned()));
    let trimmed = given.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("http".to_owned(), trimmed),
    };
    if scheme != "http" && scheme != "https" {
        return fail("the server speaks http (or https behind a proxy); write e.g. http://127.0.0.1:7878");
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return fail("no host; write e.g. http://127.0.0.1:7878");
    }
    if !path.trim_end_matches('/').is_empty() {
        return fail("give the server's address alone, without a path or query (e.g. http://127.0.0.1:7878)");
    }
    Ok(format!("{scheme}://{authority}"))
}

/// A path segment typed by the user, percent-encoded so it stays one segment.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
