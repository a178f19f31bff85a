//! The real `jobhost serve` in a child process, and a small HTTP client for talking to it over
//! loopback. The server listens on a free port (`--listen 127.0.0.1:0`) and the address is read
//! from the line it prints on stdout.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::jobhost_cmd;

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    token: Option<String>,
    agent: ureq::Agent,
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The `error.code` of an API error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Server {
    /// Starts `jobhost serve` on `data_dir` with `plugin_dir` and `extra` flags, and waits until
    /// it listens.
    pub fn start(data_dir: &Path, plugin_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_token(data_dir, plugin_dir, extra, None)
    }

    pub fn start_with_token(
        data_dir: &Path,
        plugin_dir: &Path,
        extra: &[&str],
        token: Option<&str>,
    ) -> Server {
        let log = data_dir.with_extension(format!("{}.log", std::process::id()));
        let stderr = File::create(&log).expect("server log file");
        let mut child = jobhost_cmd()
            .env("JOBHOST_LOG", "info")
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("jobhost serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("jobhost listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Server {
            child: Some(child),
            url,
            data_dir: data_dir.to_owned(),
            log,
            token: token.map(str::to_owned),
            agent,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).expect("server running")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid, which it cannot outlive (we reap it).
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }

    /// Waits for the server to exit; its exit code (`None` if killed by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("server running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            assert!(Instant::now() < deadline, "server did not exit within {within:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answer(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = result.unwrap_or_else(|e| panic!("request to {} failed: {e}", self.url));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.answer(self.auth(self.agent.get(format!("{}{path}", self.url))).call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.answer(self.auth(self.agent.post(format!("{}{path}", self.url))).send_json(body))
    }

    /// A POST with a raw body (malformed JSON, oversized bodies).
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Answer {
        let request =
            self.auth(self.agent.post(format!("{}{path}", self.url))).content_type("application/json");
        self.answer(request.send(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Answer {
        self.answer(self.auth(self.agent.patch(format!("{}{path}", self.url))).send_json(body))
    }

    pub fn post_empty(&self, path: &str) -> Answer {
        self.answer(self.auth(self.agent.post(format!("{}{path}", self.url))).send_empty())
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.answer(self.auth(self.agent.delete(format!("{}{path}", self.url))).call())
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

    /// The whole stored state as the API shows it (jobs and queue counts), to compare before
    /// and after requests that must change nothing.
    pub fn snapshot(&self) -> Value {
        let jobs = self.get("/v1/jobs?limit=1000");
        let queues = self.get("/v1/queues");
        assert_eq!((jobs.status, queues.status), (200, 200));
        serde_json::json!({"jobs": jobs.body, "queues": queues.body})
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}
