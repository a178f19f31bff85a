//! A small HTTP client for the API over loopback, shared by the in-process app (`app.rs`) and
//! the real binary (`server.rs`), and the table-driven `check(request, expected)` helper: one
//! line per case, and a mismatch names the case.

use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Client {
    pub url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub content_type: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an API error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One request of a table of cases.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    Get(&'a str),
    Post(&'a str, Value),
    PostEmpty(&'a str),
    /// A POST with a raw body (malformed JSON, oversized bodies).
    Raw(&'a str, Vec<u8>),
    Patch(&'a str, Value),
    Put(&'a str, Value),
    Delete(&'a str),
}

/// What a case expects.
#[derive(Debug, Clone)]
pub enum Expect<'a> {
    /// This status, any body.
    Status(u16),
    /// An API error: this status and stable code, with a message.
    Error(u16, &'a str),
    /// An API error whose message contains this text.
    ErrorSaying(u16, &'a str, &'a str),
    /// This status and exactly this JSON body.
    Json(u16, Value),
}

impl Client {
    pub fn new(url: &str, token: Option<&str>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client { url: url.to_owned(), token: token.map(str::to_owned), agent }
    }

    /// The same server, with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token)
    }

    fn answer(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = result.unwrap_or_else(|e| panic!("request to {} failed: {e}", self.url));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text, content_type, headers }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn send(&self, request: &Request<'_>) -> Answer {
        let url = |path: &str| format!("{}{path}", self.url);
        match request {
            Request::Get(path) => self.answer(self.auth(self.agent.get(url(path))).call()),
            Request::Post(path, body) => self.answer(self.auth(self.agent.post(url(path))).send_json(body)),
            Request::PostEmpty(path) => self.answer(self.auth(self.agent.post(url(path))).send_empty()),
            Request::Raw(path, body) => self.answer(
                self.auth(self.agent.post(url(path))).content_type("application/json").send(&body[..]),
            ),
            Request::Patch(path, body) => self.answer(self.auth(self.agent.patch(url(path))).send_json(body)),
            Request::Put(path, body) => self.answer(self.auth(self.agent.put(url(path))).send_json(body)),
            Request::Delete(path) => self.answer(self.auth(self.agent.delete(url(path))).call()),
        }
    }

    /// A request with the headers given (a browser's `Origin`, a forged `Host`) and a raw body.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Answer {
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.unwrap_or_default().to_vec()).expect("a valid request");
        self.answer(self.agent.run(request))
    }

    /// A JSON POST with an `Idempotency-Key`.
    pub fn post_keyed(&self, path: &str, key: &str, body: &Value) -> Answer {
        let body = serde_json::to_vec(body).unwrap();
        let headers = [("content-type", "application/json"), ("idempotency-key", key)];
        self.send_with("POST", path, &headers, Some(&body))
    }

    /// Sends `request` and asserts the answer is `expected`; a mismatch names the request.
    pub fn check(&self, request: Request<'_>, expected: Expect<'_>) -> Answer {
        let answer = self.send(&request);
        let ok = match &expected {
            Expect::Status(status) => answer.status == *status,
            Expect::Error(status, code) => {
                answer.status == *status
                    && answer.code() == *code
                    && answer.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty())
            }
            Expect::ErrorSaying(status, code, text) => {
                answer.status == *status
                    && answer.code() == *code
                    && answer.body["error"]["message"].as_str().is_some_and(|m| m.contains(text))
            }
            Expect::Json(status, body) => answer.status == *status && answer.body == *body,
        };
        assert!(ok, "{request:?}\n  expected {expected:?}\n  got {} {}", answer.status, answer.text);
        answer
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send(&Request::Get(path))
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(&Request::Post(path, body.clone()))
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> Answer {
        self.send(&Request::Raw(path, body.to_vec()))
    }

    pub fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(&Request::Put(path, body.clone()))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(&Request::Patch(path, body.clone()))
    }

    pub fn post_empty(&self, path: &str) -> Answer {
        self.send(&Request::PostEmpty(path))
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.send(&Request::Delete(path))
    }

    /// Adds a job; panics unless the server answers 201. Returns the id.
    pub fn add(&self, job: &str, input: Value) -> String {
        let answer = self.post("/v1/jobs", &serde_json::json!({"job": job, "input": input}));
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().expect("id").to_owned()
    }

    pub fn job(&self, id: &str) -> Value {
        let answer = self.get(&format!("/v1/jobs/{id}"));
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }

    /// Long-polls until the job is finished (panics after `within`).
    pub fn wait_finished(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let answer = self.get(&format!("/v1/jobs/{id}?wait=5"));
            assert_eq!(answer.status, 200, "{answer:?}");
            if matches!(answer.body["status"].as_str(), Some("completed" | "error" | "cancelled")) {
                return answer.body;
            }
            assert!(Instant::now() < deadline, "job {id} not finished within {within:?}: {}", answer.text);
        }
    }

    /// Polls until `f(job)` holds (panics after `within`).
    pub fn wait_until(&self, id: &str, within: Duration, mut f: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let job = self.job(id);
            if f(&job) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id}: condition not met within {within:?}: {job}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole stored state as the API shows it (jobs and queue counts, not the queues'
    /// worker processes), to compare before and after requests that must change nothing.
    pub fn snapshot(&self) -> Value {
        let jobs = self.get("/v1/jobs?limit=1000");
        let mut queues = self.get("/v1/queues");
        assert_eq!((jobs.status, queues.status), (200, 200));
        for queue in queues.body.as_array_mut().into_iter().flatten() {
            if let Some(queue) = queue.as_object_mut() {
                queue.retain(|key, _| {
                    matches!(key.as_str(), "name" | "queued" | "processing" | "concurrency")
                });
            }
        }
        serde_json::json!({"jobs": jobs.body, "queues": queues.body})
    }
}
