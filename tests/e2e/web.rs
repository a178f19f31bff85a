//! What a browser may do for a page that is not the server's own: nothing that changes
//! anything (forms, `no-cors` fetches, other origins), and nothing at all under a name the
//! server does not answer to (DNS rebinding). Against the real `jobhost serve`, with and
//! without a token; `tests/browser` does the same from a real Chromium page.

use std::fs;

use jobhost_tests::{plugin_dir, Server};
use serde_json::json;
use tempfile::TempDir;

/// One open server and one with a token, and a job in queue `q` on each.
fn servers(dir: &TempDir) -> Vec<(Server, String)> {
    let plugins = plugin_dir(&["echo"]);
    let token = dir.path().join("token");
    fs::write(&token, "web-test-token").unwrap();
    fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let open = Server::start(&dir.path().join("open"), plugins.path(), &[]);
    let closed = Server::start_with_token(
        &dir.path().join("closed"),
        plugins.path(),
        &["--token-file", token.to_str().unwrap()],
        Some("web-test-token"),
    );
    let mut servers = Vec::new();
    for server in [open, closed] {
        let answer = server.post("/v1/jobs", &json!({"job": "echo", "queue": "q", "input": 1}));
        assert_eq!(answer.status, 201, "{answer:?}");
        let id = answer.body["id"].as_str().unwrap().to_owned();
        server.wait_finished(&id, std::time::Duration::from_secs(60));
        servers.push((server, id));
    }
    servers
}

#[test]
fn a_name_the_server_does_not_answer_to_gets_421_on_every_route_and_changes_nothing() {
    let dir = TempDir::new().unwrap();
    for (server, id) in servers(&dir) {
        let port = server.url.rsplit(':').next().unwrap().to_owned();
        let evil = format!("evil.example:{port}");
        let json = [("Host", evil.as_str()), ("Content-Type", "application/json")];
        let job = br#"{"job": "echo", "queue": "q"}"#;
        for (method, path, body) in [
            ("GET", "/".to_owned(), None),
            ("GET", "/assets/app.js".to_owned(), None),
            ("GET", "/v1/health".to_owned(), None),
            ("GET", "/v1/backup".to_owned(), None),
            ("GET", format!("/v1/jobs/{id}"), None),
            ("POST", "/v1/jobs".to_owned(), Some(&job[..])),
            ("POST", "/v1/queues/q/stop".to_owned(), None),
            ("DELETE", format!("/v1/jobs/{id}"), None),
        ] {
            let answer = server.send_with(method, &path, &json, body);
            assert_eq!(
                (answer.status, answer.code()),
                (421, "host_not_allowed"),
                "{method} {path}: {answer:?}"
            );
            assert!(answer.text.contains("allowed_hosts"), "{answer:?}");
        }
        // Nothing changed.
        assert_eq!(server.get(&format!("/v1/jobs/{id}")).body["status"], "completed");
        let queues = server.get("/v1/queues").body;
        let q = queues.as_array().unwrap().iter().find(|q| q["name"] == "q").cloned().unwrap();
        assert_eq!(q["processing"], true, "{q}");
        assert_eq!(server.get("/v1/jobs?queue=q").body["jobs"].as_array().unwrap().len(), 1);
        // The names that are the server's: addresses, localhost, this machine's name.
        for host in
            [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("app.localhost:{port}")]
        {
            let answer = server.send_with("GET", "/v1/health", &[("Host", host.as_str())], None);
            assert_eq!(answer.status, 200, "{host}: {answer:?}");
        }
    }
}

#[test]
fn allowed_hosts_lets_a_name_of_the_operators_in() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, "allowed_hosts = [\"jobs.example.com\", \".corp.example\"]\n").unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", file.to_str().unwrap()]);
    for (host, status) in [("jobs.example.com", 200), ("a.corp.example:80", 200), ("example.com", 421)] {
        let answer = server.send_with("GET", "/", &[("Host", host)], None);
        assert_eq!(answer.status, status, "{host}: {answer:?}");
    }
}

/// A request (method, path, headers, body) and the status and code it gets.
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Option<&'a [u8]>, u16, &'a str);

#[test]
fn changes_from_another_site_or_in_a_body_that_is_not_json_are_refused() {
    let dir = TempDir::new().unwrap();
    for (server, id) in servers(&dir) {
        let json_body = br#"{"job": "echo", "queue": "q", "input": "cross"}"#;
        let cases: [Case; 7] = [
            // A form post (text/plain carries JSON as a form can).
            (
                "POST",
                "/v1/jobs".into(),
                vec![("Content-Type", "text/plain")],
                Some(json_body),
                415,
                "unsupported_media_type",
            ),
            (
                "POST",
                "/v1/queues/q/stop".into(),
                vec![("Content-Type", "application/x-www-form-urlencoded")],
                Some(b""),
                415,
                "unsupported_media_type",
            ),
            ("POST", "/v1/jobs".into(), vec![], Some(json_body), 415, "unsupported_media_type"),
            // A fetch from a page elsewhere, as Chromium labels it.
            (
                "POST",
                "/v1/jobs".into(),
                vec![("Content-Type", "application/json"), ("Origin", "http://evil.example")],
                Some(json_body),
                403,
                "cross_site",
            ),
            (
                "POST",
                format!("/v1/jobs/{id}/retry"),
                vec![("Sec-Fetch-Site", "cross-site")],
                None,
                403,
                "cross_site",
            ),
            ("DELETE", format!("/v1/jobs/{id}"), vec![("Origin", "null")], None, 403, "cross_site"),
            (
                "POST",
                "/v1/queues/q/stop".into(),
                vec![("Sec-Fetch-Site", "same-site"), ("Origin", "http://localhost:3000")],
                None,
                403,
                "cross_site",
            ),
        ];
        for (method, path, headers, body, status, code) in &cases {
            let answer = server.send_with(method, path, headers, *body);
            assert_eq!(
                (answer.status, answer.code()),
                (*status, *code),
                "{method} {path} {headers:?}: {answer:?}"
            );
        }
        assert_eq!(server.get(&format!("/v1/jobs/{id}")).body["status"], "completed");
        assert_eq!(server.get("/v1/jobs?queue=q").body["jobs"].as_array().unwrap().len(), 1);
        // The server's own pages, and clients that are not browsers, go on as before.
        let own = server.url.trim_start_matches("http://").to_owned();
        let origin = format!("http://{own}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ];
        let answer = server.send_with("POST", "/v1/jobs", &headers, Some(json_body));
        assert_eq!(answer.status, 201, "{answer:?}");
        let answer = server.send_with("POST", "/v1/queues/q/stop", &[], None);
        assert_eq!(answer.status, 200, "{answer:?}");
    }
}

#[test]
fn answers_say_what_they_are_and_the_apis_are_never_stored() {
    use std::io::{Read, Write};
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &[]);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let head = |path: &str, host: &str| {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
    };
    for (path, host, api) in [
        ("/v1/jobs", addr.as_str(), true),
        ("/v1/jobs/999", addr.as_str(), true),
        ("/metrics", addr.as_str(), true),
        ("/v1/health", "evil.example", true),
        ("/", addr.as_str(), false),
    ] {
        let head = head(path, host);
        assert!(head.contains("x-content-type-options: nosniff"), "{path}: {head}");
        assert_eq!(head.contains("cache-control: no-store"), api, "{path}: {head}");
    }
}
