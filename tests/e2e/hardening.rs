//! The service under faults and hostile input, against the real `jobhost serve`: a thousand
//! queues, a queue that would hog every worker, half-open connections, nonsense settings.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jobhost_tests::{plugin_dir, Server};
use serde_json::{json, Value};
use tempfile::TempDir;

const LONG: Duration = Duration::from_secs(60);

/// A server with `config` (TOML) and the echo and sleep plugins.
fn serve(dir: &TempDir, plugins: &Path, config: &str) -> Server {
    let file = dir.path().join("jobhost.toml");
    fs::write(&file, config).unwrap();
    Server::start(&dir.path().join("data"), plugins, &["--config", file.to_str().unwrap()])
}

/// Asserts `f` answers within `bound`, and returns what it answered.
fn within<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let answer = f();
    assert!(started.elapsed() < bound, "{what} took {:?}", started.elapsed());
    answer
}

#[test]
fn a_thousand_queues_share_max_workers_and_the_api_keeps_answering() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo", "sleep"]);
    let server = serve(&dir, plugins.path(), "max_workers = 4\n[default_queue]\nconcurrency = 2\n");
    // One batch naming a thousand queues: each starts as it is first named.
    let jobs: Vec<Value> =
        (0..1000).map(|n| json!({"job": "echo", "input": n, "queue": format!("q{n}")})).collect();
    let added = within(Duration::from_secs(10), "the batch", || {
        server.post("/v1/jobs/batch", &json!({"jobs": jobs}))
    });
    assert_eq!(added.status, 201, "{}", added.text);
    // Meanwhile requests are answered at once: no handler waits for a worker.
    for n in 0..20 {
        within(Duration::from_secs(5), "GET /v1/jobs", || {
            assert_eq!(server.get("/v1/jobs?limit=5").status, 200)
        });
        let id = within(Duration::from_secs(5), "POST /v1/jobs", || server.add("echo", json!(n)));
        assert!(!id.is_empty());
    }
    let deadline = Instant::now() + LONG;
    loop {
        let queues = server.get("/v1/queues").body;
        let queues = queues.as_array().unwrap();
        let pending: u64 =
            queues.iter().map(|q| q["queued"].as_u64().unwrap() + q["running"].as_u64().unwrap()).sum();
        if queues.len() >= 1000 && pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} jobs still pending");
        std::thread::sleep(Duration::from_millis(100));
    }
    let completed = server.get("/v1/jobs?status=completed&limit=1000").body;
    assert_eq!(completed["jobs"].as_array().unwrap().len(), 1000);
    let workers = server.get("/v1/workers").body;
    let workers = workers.as_array().unwrap();
    assert!(!workers.is_empty() && workers.len() <= 4, "{workers:?}");
    // Each worker has one worker process, however many queues there are.
    let mut pids: Vec<u64> = workers.iter().filter_map(|w| w["pid"].as_u64()).collect();
    pids.dedup();
    assert_eq!(pids.len(), workers.len(), "{workers:?}");
}

#[test]
fn a_queue_that_could_use_every_worker_leaves_room_for_the_others() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo", "sleep"]);
    let config = "max_workers = 2\n[queues.bulk]\nconcurrency = 8\n[queues.urgent]\nconcurrency = 1\n";
    let server = serve(&dir, plugins.path(), config);
    let bulk: Vec<Value> = (0..20).map(|_| json!({"job": "sleep", "input": 0.5, "queue": "bulk"})).collect();
    let batch = server.post("/v1/jobs/batch", &json!({"jobs": bulk}));
    assert_eq!(batch.status, 201, "{batch:?}");
    let bulk_ids: Vec<Value> =
        batch.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].clone()).collect();
    // Both workers busy with bulk work.
    jobhost_tests::wait_for_condition(LONG, "bulk jobs running", || {
        let queues = server.get("/v1/queues").body;
        queues.as_array().unwrap().iter().any(|q| q["name"] == "bulk" && q["running"].as_u64() >= Some(2))
    });
    let urgent = server.post("/v1/jobs", &json!({"job": "echo", "input": "now", "queue": "urgent"}));
    let urgent = urgent.body["id"].as_str().unwrap().to_owned();
    let done = server.wait_finished(&urgent, LONG);
    assert_eq!(done["status"], "completed");
    // Two workers, ten rounds of bulk work queued ahead: it waits for one bulk job, not all
    // ten rounds. Counted in jobs, not seconds, so a slow machine changes nothing.
    let finished_before = |id: &Value| {
        let job = server.job(id.as_str().unwrap());
        job["status"] == "completed" && job["finished_at"].as_str() < done["finished_at"].as_str()
    };
    let ahead = bulk_ids.iter().filter(|id| finished_before(id)).count();
    assert!(ahead <= 10, "{ahead} of 20 bulk jobs finished before the urgent one");
}

#[test]
fn per_job_lines_stay_at_debug_failures_are_logged_with_fields_and_a_summary_sums_up() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo", "error"]);
    let server = serve(&dir, plugins.path(), "log_summary_interval = \"1s\"\n");
    let ids: Vec<String> = (0..30).map(|n| server.add("echo", json!(n))).collect();
    let failed = server.add("error", Value::Null);
    for id in ids.iter().chain([&failed]) {
        server.wait_finished(id, LONG);
    }
    let deadline = Instant::now() + LONG;
    while !server.log().contains("queue 'default' in the last 1s: 30 completed, 1 failed") {
        assert!(Instant::now() < deadline, "no summary: {}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(!log.contains("completed in"), "per-job lines at info: {log}");
    assert!(!log.contains(") started, attempt"), "per-job lines at info: {log}");
    let failure = log.lines().find(|l| l.contains(&format!("job {failed} (error) ended in error"))).unwrap();
    assert!(failure.contains("WARN"), "{failure}");
    assert!(failure.contains(&format!("job={failed}")) && failure.contains("factory=error"), "{failure}");
}

#[test]
fn json_log_lines_carry_the_fields_as_keys() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["error"]);
    let server = serve(&dir, plugins.path(), "log_format = \"json\"\n");
    let failed = server.add("error", Value::Null);
    server.wait_finished(&failed, LONG);
    let deadline = Instant::now() + LONG;
    let line = loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| l.contains("ended in error")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let entry: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(entry["level"], "WARN");
    assert_eq!(entry["job"], json!(failed.parse::<u64>().unwrap()));
    assert_eq!((entry["factory"].as_str(), entry["queue"].as_str()), (Some("error"), Some("default")));
    // Every line is JSON, the worker processes' included.
    for line in server.log().lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v["ts"].is_string() && v["message"].is_string()),
            "not a JSON line: {line}"
        );
    }
}

#[test]
fn half_open_connections_neither_starve_requests_nor_stay_open() {
    use std::io::Write;
    use std::net::TcpStream;
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nheader_timeout = \"2s\"\nmax_connections = 600\n");
    let addr = server.url.trim_start_matches("http://").to_owned();
    // 500 connections that start a request and never finish it.
    let mut held: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n").unwrap();
            stream
        })
        .collect();
    within(Duration::from_secs(5), "health beside 500 half-open connections", || {
        assert_eq!(server.get("/v1/health").status, 200)
    });
    within(Duration::from_secs(5), "a request beside them", || {
        assert_eq!(server.get("/v1/jobs").status, 200)
    });
    // The server closes them once the header timeout (2 s) passes: wait for each to close,
    // up to a bound far past it.
    assert_eq!(wait_all_closed(&mut held), 500, "every half-open connection was closed");
}

/// Waits (up to a minute) until the server has closed every one of `streams`: a read gives
/// the end of the stream (or a reset, or an answer before the close); one still open times out.
fn wait_all_closed(streams: &mut [std::net::TcpStream]) -> usize {
    use std::io::Read;
    for stream in streams.iter() {
        stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let total = streams.len();
    let deadline = Instant::now() + LONG;
    let mut open: Vec<&mut std::net::TcpStream> = streams.iter_mut().collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|stream| match stream.read(&mut [0u8; 512]) {
            Ok(_) => false,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        });
    }
    total - open.len()
}

#[test]
fn silent_connections_cannot_lock_clients_out_for_longer_than_the_header_timeout() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    // This process holds 1,100 sockets at once: past the usual soft limit of 1,024 files.
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    if limit.rlim_cur < 1200 {
        eprintln!("SKIPPED silent_connections: this process may open only {} files", limit.rlim_cur);
        return;
    }
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nheader_timeout = \"10s\"\n");
    let addr = server.url.trim_start_matches("http://").to_owned();
    // A job held, for a long poll that outlasts the header timeout.
    let held = server.post("/v1/jobs", &json!({"job": "echo", "hold": true})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An idle keep-alive connection: one request answered, then nothing.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let poll = std::thread::spawn({
        let client = jobhost_tests::Client::new(&server.url, None);
        let path = format!("/v1/jobs/{held}?wait=14");
        move || {
            let started = Instant::now();
            (client.get(&path), started.elapsed())
        }
    });
    // 1,100 connections that never send a byte: more than max_connections (1,024).
    let started = Instant::now();
    let openers: Vec<_> = (0..10)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                (0..110).map(|_| TcpStream::connect(&addr).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut silent: Vec<TcpStream> = openers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    eprintln!("1,100 silent connections opened in {:?}", started.elapsed());
    let health = || jobhost_tests::Client::new(&server.url, None).send_with("GET", "/v1/health", &[], None);
    // They fill the cap: health is refused...
    let refused = jobhost_tests::wait_for_value(LONG, "health refused while the cap is full", || {
        (health().status == 503).then(Instant::now)
    });
    // ...until they are closed, header_timeout (10 s) after each was accepted. (Bounded
    // generously for slow machines; without the quiet limit, never.)
    let answered = jobhost_tests::wait_for_value(LONG, "health answered again", || {
        (health().status == 200).then(Instant::now)
    });
    let locked = answered - refused;
    eprintln!("health refused for {locked:?} (header_timeout 10 s)");
    assert!(locked < Duration::from_secs(20), "health refused for {locked:?}");
    assert_eq!(wait_all_closed(&mut silent), 1100, "every silent connection was closed");
    assert_eq!(wait_all_closed(std::slice::from_mut(&mut idle)), 1, "the idle keep-alive was closed");
    // The long poll was not cut: it waited its 14 s and answered.
    let (answer, took) = poll.join().unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "held");
    assert!(took >= Duration::from_secs(13), "the long poll answered after {took:?}");
}

#[test]
fn a_connection_over_the_cap_is_answered_503_at_once() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nmax_connections = 20\n");
    let addr = server.url.trim_start_matches("http://").to_owned();
    let _held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Once the server has accepted all twenty (which takes it a moment after they connect), the
    // next connection is answered 503 and closed. Until then it may be served: try again.
    let deadline = Instant::now() + LONG;
    let answer = loop {
        let mut extra = TcpStream::connect(&addr).unwrap();
        extra.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        extra.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = extra.read_to_string(&mut answer);
        if answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
}

#[test]
fn a_result_over_max_result_bytes_fails_its_job_saying_so() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nmax_result_bytes = 1000\n");
    let big = server.add("echo", json!("x".repeat(2000)));
    let done = server.wait_finished(&big, LONG);
    assert_eq!(done["status"], "error", "{done}");
    assert_eq!(done["attempts"], 1, "not retried: {done}");
    let error = done["errors"][0].as_str().unwrap();
    assert!(error.contains("result too large (2002 bytes, limit 1000: limits.max_result_bytes)"), "{error}");
    let small = server.add("echo", json!("x".repeat(900)));
    assert_eq!(server.wait_finished(&small, LONG)["status"], "completed");
}

#[test]
fn a_page_of_jobs_ends_before_max_page_bytes_and_its_cursor_goes_on() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nmax_page_bytes = 10000\n");
    let ids: Vec<String> = (0..7)
        .map(|i| {
            let answer = server.post(
                "/v1/jobs",
                &json!({"job": "echo", "hold": true, "input": format!("{i}{}", "p".repeat(4000))}),
            );
            answer.body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = server.get(&format!("/v1/jobs?limit=100&after={after}")).body;
        let jobs = page["jobs"].as_array().unwrap();
        assert!(!jobs.is_empty() && jobs.len() <= 2, "{} jobs of 4 KB on a 10 KB page", jobs.len());
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every job once, in order");
    // Summaries carry no data: one page.
    let summaries = server.get("/v1/jobs/summaries?limit=100").body;
    assert_eq!(summaries["jobs"].as_array().unwrap().len(), 7);
    assert!(summaries["next"].is_null());

    // Long names and keys count too: every page's answer stays within the bound.
    let queue = "q".repeat(64);
    for i in 0..12 {
        let job = json!({"job": "echo", "hold": true, "queue": queue, "input": "i".repeat(1000),
            "unique_key": format!("{i}{}", "u".repeat(250)), "limit_key": "l".repeat(256)});
        assert_eq!(server.post("/v1/jobs", &job).status, 201);
    }
    let mut after = String::new();
    let mut listed = 0;
    loop {
        let page = server.get(&format!("/v1/jobs?queue={queue}&limit=100&after={after}"));
        assert!(page.text.len() <= 10000, "a page of {} bytes on a 10,000-byte bound", page.text.len());
        listed += page.body["jobs"].as_array().unwrap().len();
        match page.body["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(listed, 12);
}

#[test]
fn a_body_over_its_routes_limit_is_refused_before_it_is_read_whole() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "");
    let addr = server.url.trim_start_matches("http://").to_owned();
    let answer = |stream: &mut TcpStream| {
        stream.set_read_timeout(Some(LONG)).unwrap();
        let mut text = Vec::new();
        let mut buffer = [0u8; 4096];
        while !text.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buffer[..n]),
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    // A declared 15 MB to a 1 MiB route: refused from its length, no byte of it sent.
    let mut declared = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 15000000\r\n\r\n"
    );
    declared.write_all(head.as_bytes()).unwrap();
    let text = answer(&mut declared);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Streamed without a length: refused once past the limit, long before 16 MiB (the largest
    // limit of any route) have been sent.
    let mut streamed = TcpStream::connect(&addr).unwrap();
    let head =
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    streamed.write_all(head.as_bytes()).unwrap();
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let writer = std::thread::spawn({
        let mut stream = streamed.try_clone().unwrap();
        let sent = sent.clone();
        move || {
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
            while sent.load(Ordering::SeqCst) < 32 << 20 {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
                sent.fetch_add(64 * 1024, Ordering::SeqCst);
            }
        }
    });
    let text = answer(&mut streamed);
    let at = sent.load(Ordering::SeqCst);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(at < 12 << 20, "answered after {at} bytes were sent");
    drop(streamed);
    writer.join().unwrap();
}

#[test]
fn a_batch_cannot_carry_an_input_larger_than_a_single_job_may() {
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nmax_body_bytes = 10000\n");
    let jobs = json!({"jobs": [
        {"job": "echo", "input": "small"},
        {"job": "echo", "input": "x".repeat(20_000)},
    ]});
    let answer = server.post("/v1/jobs/batch", &jobs);
    assert_eq!((answer.status, answer.code()), (400, "invalid_batch"), "{answer:?}");
    let item = &answer.body["error"]["items"][0];
    assert_eq!(item["index"], 1, "{answer:?}");
    assert!(item["message"].as_str().unwrap().contains("limits.max_body_bytes"), "{answer:?}");
    assert!(server.get("/v1/jobs").body["jobs"].as_array().unwrap().is_empty(), "nothing added");
}

#[test]
fn a_body_that_stalls_is_refused_and_its_connection_freed() {
    use std::io::{Read, Write};
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = serve(&dir, plugins.path(), "[limits]\nheader_timeout = \"1s\"\n");
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"job\""
    );
    stream.write_all(head.as_bytes()).unwrap();
    // Then nothing: at 64 KiB a second after header_timeout, 1,000 bytes are due within 2 s.
    let started = Instant::now();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(30), "answered after {:?}", started.elapsed());
    // Nothing was added.
    assert!(server.get("/v1/jobs").body["jobs"].as_array().unwrap().is_empty());
}

/// A field of `/proc/PID/status` in MiB (`VmHWM`: the most ever resident).
fn memory_mib(pid: i32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field}"));
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

#[test]
fn bursts_of_large_batches_leave_no_garbage_behind() {
    // Each 10,000-job batch is one store transaction of ~50,000 tree writes, and every write
    // replaces a node. Unless the replaced nodes are freed as the writes go, they pile up: the
    // host reached 325 MB after 200,000 jobs so added, most of it freed nodes not yet
    // reclaimed, and kept ~30 MB of written log buffers after the burst. Now 1,000,000 jobs
    // so added peak at ~160 MB (README, Performance).
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let server = Server::start(&dir.path().join("data"), plugins.path(), &["--paused"]);
    // Five clients at once: each batch in hand holds its jobs decoded, so the host takes one
    // batch at a time (`BATCHES_AT_ONCE`).
    let jobs: Vec<Value> = (0..10_000).map(|n| json!({"job": "echo", "input": {"n": n}})).collect();
    let batch = json!({ "jobs": jobs });
    std::thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                for _ in 0..2 {
                    let added = server.post("/v1/jobs/batch", &batch);
                    assert_eq!(added.status, 201, "{}", added.text);
                }
            });
        }
    });
    assert_eq!(server.get("/v1/queues").body[0]["queued"], 100_000);
    let peak = memory_mib(server.pid(), "VmHWM");
    assert!(peak < 200, "100,000 jobs in 10 batches from 5 clients took the host to {peak} MiB");
}

#[test]
fn a_page_cache_evicting_during_transactions_never_waits_on_them() {
    // A store transaction writes its atomicity marker into the log buffer its own writes go
    // to, and that buffer cannot be written before the transaction ends (see
    // `vendor/README.md`). A page it changed, evicted by a small cache and read back during
    // the transaction, would wait for that buffer forever: the store keeps pages with a part
    // not yet on disk in memory. Without that rule this load hung the host on its first run
    // (1 MiB cache: batches, single adds, claims and readers at once).
    let dir = TempDir::new().unwrap();
    let plugins = plugin_dir(&["echo"]);
    let config = dir.path().join("jobhost.toml");
    fs::write(&config, "[store]\ncache_bytes = 1048576\n[queues.default]\nconcurrency = 2\n").unwrap();
    let server =
        Server::start(&dir.path().join("data"), plugins.path(), &["--config", config.to_str().unwrap()]);
    let jobs: Vec<Value> =
        (0..5_000).map(|n| json!({"job": "echo", "input": {"n": n, "pad": "x".repeat(200)}})).collect();
    let batch = json!({ "jobs": jobs });
    let writing = AtomicUsize::new(3);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..2 {
                    let added = server.post("/v1/jobs/batch", &batch);
                    assert_eq!(added.status, 201, "{}", added.text);
                    for n in 0..30 {
                        let added = server.post("/v1/jobs", &json!({"job": "echo", "input": n}));
                        assert_eq!(added.status, 201, "{}", added.text);
                    }
                }
                writing.fetch_sub(1, Ordering::SeqCst);
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                while writing.load(Ordering::SeqCst) > 0 {
                    assert_eq!(server.get("/v1/jobs?status=completed&limit=50").status, 200);
                    assert_eq!(server.get("/v1/queues").status, 200);
                }
            });
        }
    });
    jobhost_tests::wait_for_condition(Duration::from_secs(300), "every job completed", || {
        server.get("/v1/queues").body[0]["jobs"]["completed"] == 30_180
    });
}
