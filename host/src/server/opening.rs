//! The API while the host is still opening its store and plugins: the port is bound first and
//! every request is answered at once, `503` with `Retry-After`, health as
//! `{"status": "opening"}`, so a supervisor or a load balancer sees a process starting rather
//! than a closed port. One short-lived thread per connection, at most [`MAX_AT_ONCE`]; no
//! request is read past its head, and none is kept open.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections answered at once; more are closed unanswered.
const MAX_AT_ONCE: usize = 64;
/// How long a connection may take to send its request head.
const READ_LIMIT: Duration = Duration::from_millis(500);

/// Answers on a bound listener until [`finish`](Opening::finish) hands it back.
pub struct Opening {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    listener: TcpListener,
}

impl Opening {
    /// Starts answering on `listener`; `what` says what is being opened.
    pub fn start(listener: TcpListener, what: String) -> std::io::Result<Opening> {
        listener.set_nonblocking(true)?;
        let accepting = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let since = Instant::now();
        let thread = std::thread::Builder::new().name("jobhost-opening".into()).spawn(move || {
            let busy = Arc::new(AtomicUsize::new(0));
            while !stopping.load(Ordering::SeqCst) {
                match accepting.accept() {
                    Ok((stream, _)) => {
                        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_AT_ONCE {
                            busy.fetch_sub(1, Ordering::SeqCst);
                            continue;
                        }
                        let (busy, what) = (busy.clone(), what.clone());
                        let answered = std::thread::Builder::new().spawn(move || {
                            answer(stream, &what, since.elapsed());
                            busy.fetch_sub(1, Ordering::SeqCst);
                        });
                        if answered.is_err() {
                            log::warn!("cannot start a thread to answer a connection while opening");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(Opening { stop, thread, listener })
    }

    /// Stops answering; the listener, for the real server.
    pub fn finish(self) -> TcpListener {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        self.listener
    }
}

/// Reads the request head (briefly) and answers 503.
fn answer(mut stream: TcpStream, what: &str, elapsed: Duration) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(READ_LIMIT));
    let _ = stream.set_write_timeout(Some(READ_LIMIT));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let path = head.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let message = format!("the server is starting: {what} ({:.0} s so far)", elapsed.as_secs_f64());
    let body = if path.starts_with(b"/v1/health") {
        serde_json::json!({"status": "opening", "problem": message})
    } else {
        serde_json::json!({"error": {"code": "unavailable", "message": message}})
    }
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
