//! How a worker process died, in words an operator reads in a job's errors (`worker process
//! killed by signal 6 (SIGABRT)`), and its last lines of output ([`Tail`], filled by `output`),
//! kept to explain the death (a panic message, an allocation failure).

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Mutex;
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
