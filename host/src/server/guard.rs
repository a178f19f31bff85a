//! Who may ask: requests a browser makes on behalf of another site are refused, with or
//! without a token, before auth or routing look at them.
//!
//! - **DNS rebinding.** A page on `evil.example` whose name the attacker points at 127.0.0.1
//!   reaches the server as a same-origin page of `evil.example`. Its requests carry
//!   `Host: evil.example:PORT`, so every route (the dashboard too) answers only a `Host` that
//!   names this server: an IP address (a rebinding needs a name), `localhost` and
//!   `*.localhost`, this machine's host name, or a name in `allowed_hosts` (`"*"`: any).
//!   Anything else is `421 host_not_allowed`.
//! - **Cross-site requests.** A page on any other origin can send a form POST (or a `no-cors`
//!   fetch) to the API without reading the answer: enough to add jobs or stop queues. A
//!   request that changes something (every method but GET, HEAD and OPTIONS) is refused
//!   (`403 cross_site`) when the browser says it comes from another site (`Sec-Fetch-Site`)
//!   or another origin (`Origin` not this `Host`), and its body must be JSON
//!   (`415 unsupported_media_type` for any other `Content-Type`), which no form can send.
//!   Clients that are not browsers send neither header and are unaffected.
//!
//! **Invariant:** a request refused here has changed nothing and reached no handler.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The host names requests may carry beside IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// Lower-case names, without a trailing dot; a leading `.` allows a domain and its
    /// subdomains (`.example.com`).
    names: Vec<String>,
    /// `"*"` was configured: any host.
    any: bool,
}

impl AllowedHosts {
    /// `configured` (the `allowed_hosts` setting; `*.example.com` is `.example.com`) and this
    /// machine's own host name. Empty names allow nothing.
    pub fn new(configured: &[String]) -> AllowedHosts {
        let mut names: Vec<String> = configured
            .iter()
            .map(|n| normalize(n))
            .map(|n| match n.strip_prefix("*.") {
                Some(domain) => format!(".{domain}"),
                None => n,
            })
            .filter(|n| !n.is_empty() && n != ".")
            .collect();
        if let Some(own) = machine_name() {
            names.push(normalize(&own));
        }
        AllowedHosts { any: names.iter().any(|n| n == "*"), names }
    }

    /// Whether `host` (a `Host` header's name, without its port) names this server.
    pub fn allows(&self, host: &str) -> bool {
        let host = normalize(host);
        if host.is_empty() {
            return false;
        }
        if self.any || host.parse::<IpAddr>().is_ok() || is_localhost(&host) {
            return true;
        }
        self.names.iter().any(|name| match name.strip_prefix('.') {
            Some(domain) => host == domain || host.ends_with(name.as_str()),
            None => host == *name,
        })
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn is_localhost(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost")
}

/// This machine's host name, as `gethostname` gives it.
fn machine_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most the buffer's length into the buffer we own.
    let ok = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buffer[..end]).ok()?;
    (ok && !name.is_empty()).then(|| name.to_owned())
}

/// A `Host` header (or an origin's authority) split into its name and port: `[::1]:80`,
/// `example.com`, `127.0.0.1:7878`.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, Some(port)),
        _ => (authority, None),
    }
}

pub async fn check(State(allowed): State<Arc<AllowedHosts>>, request: Request, next: Next) -> Response {
    use axum::body::HttpBody;
    let body_empty = request.body().is_end_stream();
    let authority = request.uri().authority().map(|a| a.as_str());
    match refusal(&allowed, request.method(), request.headers(), authority, body_empty) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

/// The one value of header `name`, if it is there; an error if it is there twice or is not
/// text (a guard that skipped such a header would fail open).
fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::invalid_request(format!("the request has more than one {name} header")));
    }
    first.to_str().map(Some).map_err(|_| ApiError::invalid_request(format!("the {name} header is not text")))
}

fn misdirected(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        format!(
            "this server does not answer to the host name {:?}; add it to allowed_hosts if it is yours",
            crate::text::clip(name)
        ),
    )
}

/// Whether `authority` (`name[:port]`) names this server: an allowed name, and a port of
/// digits if any.
fn names_this_server(allowed: &AllowedHosts, authority: &str) -> Result<(), ApiError> {
    let (name, port) = split_host(authority);
    let bad_port = port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()));
    if bad_port || !allowed.allows(name) {
        return Err(misdirected(authority));
    }
    Ok(())
}

/// Why a request is refused, if it is.
fn refusal(
    allowed: &AllowedHosts,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    body_empty: bool,
) -> Option<ApiError> {
    check_headers(allowed, method, headers, authority, body_empty).err()
}

fn check_headers(
    allowed: &AllowedHosts,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    body_empty: bool,
) -> Result<(), ApiError> {
    // HTTP/1.1 names the host in the Host header, HTTP/2 in the URI's authority, and an
    // absolute-form request line in both: every one given must name this server, and one
    // must be given (a browser always sends it).
    let host = single(headers, &header::HOST)?;
    if host.is_none() && authority.is_none() {
        return Err(ApiError::invalid_request("the request has no Host header"));
    }
    for named in host.iter().chain(authority.iter()) {
        names_this_server(allowed, named)?;
    }
    let host = host.or(authority);
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cross_site = |why: String| Err(ApiError::new(StatusCode::FORBIDDEN, "cross_site", why));
    if let Some(site) = single(headers, &header::HeaderName::from_static("sec-fetch-site"))? {
        if !matches!(site, "same-origin" | "none") {
            return cross_site(format!(
                "the browser says this request comes from another site (Sec-Fetch-Site: {site}); the API takes changes only from its own pages or from clients that are not browsers"
            ));
        }
    }
    if let Some(origin) = single(headers, &header::ORIGIN)? {
        if !same_origin(origin, host) {
            return cross_site(format!(
                "the request comes from another origin ({}); the API takes changes only from its own pages or from clients that are not browsers",
                crate::text::clip(origin)
            ));
        }
    }
    // A body needs a JSON type (a form cannot send one); no body, no type needed. A body is
    // empty only when it is known to be (HTTP/2 may send one with no length).
    let has_body = !body_empty
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|length| length.trim() != "0");
    let kind = single(headers, &header::CONTENT_TYPE)?;
    if kind.is_some() || has_body {
        let kind = kind.unwrap_or("");
        let essence = kind.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                if kind.is_empty() {
                    "the body must be JSON sent as Content-Type: application/json; the request has no Content-Type".to_owned()
                } else {
                    format!(
                        "the body must be JSON sent as Content-Type: application/json, not {:?}",
                        crate::text::clip(kind)
                    )
                },
            ));
        }
    }
    Ok(())
}

/// Whether `origin` (`http://localhost:7878`) is the origin of a page served by `host`
/// (the request's Host): the same name and the same port (the scheme's default if none).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (origin_name, origin_port) = split_host(authority);
    let (host_name, host_port) = split_host(host);
    // Behind a TLS proxy the page is https on 443 while the Host it forwards may name no port.
    let ports_match = match (origin_port, host_port) {
        (Some(a), Some(b)) => a == b,
        (Some(a), None) | (None, Some(a)) => a == default || a == "80" || a == "443",
        (None, None) => true,
    };
    normalize(origin_name) == normalize(host_name) && ports_match
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedHosts {
        AllowedHosts { names: vec!["jobs.example.com".into(), ".corp.example".into()], any: false }
    }

    fn request(method: Method, pairs: &[(&str, &str)]) -> Option<&'static str> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        let body_empty = headers.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0");
        refusal(&allowed(), &method, &headers, None, body_empty).map(|e| e.code)
    }

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let hosts = allowed();
        for host in
            ["127.0.0.1", "::1", "10.1.2.3", "localhost", "LOCALHOST.", "app.localhost", "jobs.example.com"]
        {
            assert!(hosts.allows(host), "{host}");
        }
        for host in ["a.corp.example", "corp.example"] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in ["evil.example", "localhost.evil.example", "jobs.example.com.evil", "xcorp.example", ""] {
            assert!(!hosts.allows(host), "{host}");
        }
        assert!(AllowedHosts { names: vec!["*".into()], any: true }.allows("anything.example"));
    }

    #[test]
    fn a_host_named_twice_or_not_as_text_or_with_a_junk_port_or_not_at_all_is_refused() {
        let hosts = allowed();
        let mut twice = HeaderMap::new();
        twice.append(header::HOST, "127.0.0.1".parse().unwrap());
        twice.append(header::HOST, "evil.example".parse().unwrap());
        assert!(refusal(&hosts, &Method::GET, &twice, None, true).is_some());
        let mut bytes = HeaderMap::new();
        bytes.insert(header::HOST, header::HeaderValue::from_bytes(b"ev\xffil.example").unwrap());
        assert!(refusal(&hosts, &Method::POST, &bytes, None, true).is_some());
        for junk in ["127.0.0.1:7990@evil.example", "127.0.0.1:evil", "localhost:"] {
            let mut one = HeaderMap::new();
            one.insert(header::HOST, junk.parse().unwrap());
            assert_eq!(
                refusal(&hosts, &Method::GET, &one, None, true).map(|e| e.code),
                Some("host_not_allowed"),
                "{junk}"
            );
        }
        assert_eq!(
            refusal(&hosts, &Method::GET, &HeaderMap::new(), None, true).map(|e| e.code),
            Some("invalid_request")
        );
        // An absolute-form URI or HTTP/2 authority must name the server too.
        let mut good = HeaderMap::new();
        good.insert(header::HOST, "127.0.0.1".parse().unwrap());
        assert!(refusal(&hosts, &Method::GET, &good, Some("evil.example"), true).is_some());
        assert!(refusal(&hosts, &Method::GET, &HeaderMap::new(), Some("127.0.0.1:7878"), true).is_none());
        // HTTP/2 may carry a body with no length: it still needs its JSON type.
        assert_eq!(
            refusal(&hosts, &Method::POST, &good, None, false).map(|e| e.code),
            Some("unsupported_media_type")
        );
        // `*.domain` takes the domain's subdomains; an empty entry allows nothing.
        let wild = AllowedHosts::new(&["*.corp.example".into(), "".into(), ".".into()]);
        assert!(wild.allows("a.corp.example") && !wild.allows("") && !wild.allows("evil.example"));
    }

    #[test]
    fn host_headers_split_into_name_and_port() {
        assert_eq!(split_host("[::1]:7878"), ("::1", Some("7878")));
        assert_eq!(split_host("::1"), ("::1", None));
        assert_eq!(split_host("localhost:80"), ("localhost", Some("80")));
        assert_eq!(split_host("example.com"), ("example.com", None));
    }

    #[test]
    fn a_rebound_name_is_refused_on_every_method() {
        assert_eq!(request(Method::GET, &[("host", "evil.example:7878")]), Some("host_not_allowed"));
        assert_eq!(request(Method::POST, &[("host", "evil.example")]), Some("host_not_allowed"));
        assert_eq!(request(Method::GET, &[("host", "127.0.0.1:7878")]), None);
    }

    #[test]
    fn changes_from_another_site_or_origin_or_not_json_are_refused() {
        let host = ("host", "127.0.0.1:7878");
        // What a cross-site form or fetch carries.
        assert_eq!(request(Method::POST, &[host, ("sec-fetch-site", "cross-site")]), Some("cross_site"));
        assert_eq!(request(Method::POST, &[host, ("sec-fetch-site", "same-site")]), Some("cross_site"));
        assert_eq!(request(Method::DELETE, &[host, ("origin", "http://evil.example")]), Some("cross_site"));
        assert_eq!(request(Method::POST, &[host, ("origin", "null")]), Some("cross_site"));
        assert_eq!(request(Method::POST, &[host, ("origin", "http://127.0.0.1:3000")]), Some("cross_site"));
        assert_eq!(
            request(Method::POST, &[host, ("content-type", "text/plain")]),
            Some("unsupported_media_type")
        );
        assert_eq!(
            request(Method::POST, &[host, ("content-type", "application/x-www-form-urlencoded")]),
            Some("unsupported_media_type")
        );
        // Its own pages, and clients that are not browsers.
        let own = [host, ("origin", "http://127.0.0.1:7878"), ("sec-fetch-site", "same-origin")];
        assert_eq!(request(Method::POST, &own), None);
        assert_eq!(request(Method::POST, &[host, ("content-type", "application/json; charset=utf-8")]), None);
        assert_eq!(request(Method::POST, &[host]), None);
        assert_eq!(request(Method::POST, &[host, ("content-length", "0")]), None);
        assert_eq!(request(Method::POST, &[host, ("content-length", "12")]), Some("unsupported_media_type"));
        // Reading is never a change.
        assert_eq!(request(Method::GET, &[host, ("origin", "http://evil.example")]), None);
        // Behind a TLS proxy.
        let proxied = [("host", "jobs.example.com"), ("origin", "https://jobs.example.com")];
        assert_eq!(request(Method::POST, &proxied), None);
    }
}
