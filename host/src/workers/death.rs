//! How a worker process died, in words an operator reads in a job's errors (`worker process
//! killed by signal 6 (SIGABRT)`), and its last lines of output, forwarded to the host's stderr
//! as they come and kept to explain the death (a panic message, an allocation failure).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync;

/// Lines of a worker's output kept to explain its death.
const TAIL_LINES: usize = 16;

/// How a worker process ended.
#[derive(Debug, Clone)]
pub struct Death {
    pub status: Option<ExitStatus>,
    /// The host killed it (a timeout past its grace, a cancel, a stop).
    pub killed_by_host: bool,
    /// Its last lines of output.
    pub tail: Vec<String>,
}

impl Death {
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => match (status.code(), status.signal()) {
                (_, Some(signal)) => {
                    write!(f, "worker process killed by signal {signal} ({})", signal_name(signal))
                }
                (Some(code), _) => write!(f, "worker process exited with status {code}"),
                _ => write!(f, "worker process ended ({status})"),
            },
            None => write!(f, "worker process lost"),
        }
    }
}

/// `SIGABRT` for 6, and so on: the names operators know from `kill -l`.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "unknown signal",
    }
}

/// A worker's last lines of output, and whether its output has ended.
#[derive(Default)]
pub(super) struct Tail {
    lines: Mutex<(VecDeque<String>, bool)>,
    ended: std::sync::Condvar,
}

/// What the Rust runtime prints when it ends a process: kept past a backtrace that follows.
const FATAL_LINES: [&str; 3] = ["memory allocation of", "fatal runtime error", "has overflowed its stack"];

impl Tail {
    pub(super) fn push(&self, line: String) {
        let mut state = sync::lock(&self.lines);
        if state.0.len() == TAIL_LINES {
            // Drop the oldest line that is not a fatal message.
            let drop = state.0.iter().position(|l| !FATAL_LINES.iter().any(|f| l.contains(f))).unwrap_or(0);
            state.0.remove(drop);
        }
        state.0.push_back(line);
    }

    pub(super) fn close(&self) {
        sync::lock(&self.lines).1 = true;
        self.ended.notify_all();
    }

    /// The last lines, once the output ended (or `wait` passed).
    pub(super) fn lines_once_closed(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut state = sync::lock(&self.lines);
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = sync::wait_timeout(&self.ended, state, deadline - now);
        }
        state.0.iter().cloned().collect()
    }
}

/// The longest line of a worker's output forwarded whole; the rest of a longer one is
/// dropped, and the line says how much.
pub const MAX_LINE: usize = 16 * 1024;

/// Carries a worker's output (its log records, and whatever its plugins print) into the host's
/// log as it comes, each line a record of the host's own (target `jobhost::worker`, with the
/// worker's pid as a field), keeping the last lines to explain a death. A worker logs JSON
/// lines: one is re-logged at its level with its text; anything else (a plugin's `println!`,
/// a panic message) is logged at info as it is. Control characters are escaped, so no output
/// can forge a host line, rewrite a terminal or break `log_format = "json"`. Bytes that are not UTF-8 are
/// replaced (they never stop the forwarding), and a line is cut at [`MAX_LINE`], so one huge
/// line costs the host no more memory than a short one.
pub(super) fn forward_output(output: std::process::ChildStderr, pid: u32, tail: Arc<Tail>) {
    let forwarded = tail.clone();
    let spawned = std::thread::Builder::new().name(format!("worker-{pid}-output")).spawn(move || {
        let mut lines = Lines { reader: BufReader::new(output), line: Vec::new(), dropped: 0 };
        while let Some(line) = lines.next_line() {
            let said = Said::parse(&line);
            log::log!(
                target: "jobhost::worker", said.level, worker = pid, from = said.from.as_str();
                "{}", said.text
            );
            forwarded.push(said.text);
        }
        forwarded.close();
    });
    if let Err(e) = spawned {
        log::warn!("worker process {pid}: cannot forward its output: {e}");
        tail.close();
    }
}

/// Lines of at most [`MAX_LINE`] bytes from a stream, read without holding more.
struct Lines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    dropped: usize,
}

impl<R: std::io::Read> Lines<R> {
    /// The next line (lossily decoded, cut with a note), or `None` at the end of the stream.
    fn next_line(&mut self) -> Option<String> {
        loop {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return self.finish(),
            };
            if available.is_empty() {
                return self.finish();
            }
            let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.dropped += chunk.len().saturating_sub(room);
            let used = newline.unwrap_or(chunk.len());
            self.reader.consume(used);
            if newline.is_some() {
                return Some(self.take());
            }
        }
    }

    fn finish(&mut self) -> Option<String> {
        (!self.line.is_empty() || self.dropped > 0).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(" … ({} more bytes of this line dropped)", self.dropped));
        }
        self.line.clear();
        self.dropped = 0;
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut lines = Lines { reader: BufReader::with_capacity(64, input), line: Vec::new(), dropped: 0 };
        std::iter::from_fn(|| lines.next_line()).collect()
    }

    #[test]
    fn output_lines_survive_bad_bytes_and_huge_lines_are_cut() {
        let mut input = b"first\nbad \xff\xfe bytes\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nlast without newline");
        let got = lines(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], "first");
        assert_eq!(got[1], "bad \u{fffd}\u{fffd} bytes");
        assert!(
            got[2].starts_with(&"x".repeat(MAX_LINE))
                && got[2].ends_with("(10 more bytes of this line dropped)")
        );
        assert_eq!(got[3], "last without newline");
    }
}

/// One line of a worker's output, as the host logs it.
#[derive(Debug, PartialEq)]
pub(super) struct Said {
    pub level: log::Level,
    /// The target of the worker's record (a plugin's module, `jobhost`), or `output` for
    /// anything printed.
    pub from: String,
    /// Its text, control characters escaped.
    pub text: String,
}

impl Said {
    pub fn parse(line: &str) -> Said {
        let record = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).ok();
        let field = |name: &str| record.as_ref().and_then(|r| r.get(name)).and_then(|v| v.as_str());
        match (field("level").and_then(|l| l.parse::<log::Level>().ok()), field("message")) {
            (Some(level), Some(message)) => Said {
                level,
                from: escape_controls(field("target").unwrap_or("worker")),
                text: escape_controls(message),
            },
            _ => Said { level: log::Level::Info, from: "output".to_owned(), text: escape_controls(line) },
        }
    }
}

/// `text` with control characters (carriage returns, escape sequences, NULs, ...) written as
/// escapes.
pub(super) fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

#[cfg(test)]
mod said_tests {
    use super::*;

    #[test]
    fn a_workers_json_record_keeps_its_level_and_anything_else_is_output_with_controls_escaped() {
        let record = r#"{"ts":"x","level":"WARN","target":"echo","message":"careful","job":3}"#;
        assert_eq!(
            Said::parse(record),
            Said { level: log::Level::Warn, from: "echo".into(), text: "careful".into() }
        );
        let printed = Said::parse("2026-12-03T00:00:00Z ERROR jobhost] fake\r\x1b[2K");
        assert_eq!((printed.level, printed.from.as_str()), (log::Level::Info, "output"));
        assert_eq!(printed.text, "2026-12-03T00:00:00Z ERROR jobhost] fake\\r\\u{1b}[2K");
        // A JSON line that is not a record is output too.
        assert_eq!(Said::parse("[1,2]").from, "output");
    }
}
