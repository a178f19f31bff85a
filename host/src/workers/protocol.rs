//! The host ↔ worker-process protocol over one Unix socket: frames of a `u32` little-endian
//! length and a bincode-encoded message. The worker speaks first (`Hello`: the protocol it
//! speaks, its pid and the catalog of what it loaded); a host refuses a worker of another
//! version. Then the host sends `Run`s and the worker runs them one at a time, in order,
//! answering each with `Progress` frames and one `Done`. The host sends at most one job ahead
//! of the one running, and only under backlog. On the control socket, `Cancel` sets a job's
//! cooperative flag; `Withdraw` takes back a job sent ahead, which the worker answers with
//! `Withdrawn` on the data socket if it had not started it (else with the job's `Done` as
//! usual); `Stop` asks the worker to exit once idle. A closed socket ends the worker at once.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plugins::Catalog;

/// Raised whenever a message changes shape.
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest frame either side reads: more than any job input or result the API accepts.
pub const MAX_FRAME: usize = 256 << 20;

/// Host → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    Run(RunJob),
    /// Set the running job's cancellation flag (a cancel, a timeout, a stopping host).
    Cancel {
        id: u64,
    },
    /// Do not start job `id`, sent ahead, if it has not started: answered `Withdrawn`.
    Withdraw {
        id: u64,
    },
    /// Exit once the running job (if any) is done.
    Stop,
}

/// One attempt of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    pub id: u64,
    pub attempt: u32,
    pub factory: String,
    /// JSON text.
    pub input: String,
    /// Its parents' outcomes (JSON, see `ffi::PARENTS_SYMBOL`), for a job with parents.
    pub parents: Option<String>,
}

/// Worker → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    Hello {
        protocol: u32,
        pid: u32,
        catalog: Catalog,
    },
    Progress {
        id: u64,
        fraction: f64,
        message: String,
    },
    /// Job `id` ran: its result, when it was taken up (see [`monotonic_ns`]), and whether the
    /// worker wrote the job's end marker to its output (some of it was still unread).
    Done {
        id: u64,
        result: Result<String, WireFailure>,
        started_ns: u64,
        marked: bool,
    },
    /// Job `id` was withdrawn before it started: it will not run here.
    Withdrawn {
        id: u64,
    },
}

/// A plugin's failure as it crosses the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireFailure {
    pub permanent: bool,
    pub message: String,
    pub retry_after_ms: Option<u64>,
    /// A panic's location and stack (see `Failure::backtrace`).
    pub backtrace: Option<String>,
}

impl From<jobhost_plugin_api::Failure> for WireFailure {
    fn from(f: jobhost_plugin_api::Failure) -> Self {
        WireFailure {
            permanent: f.kind() == jobhost_plugin_api::FailureKind::Permanent,
            message: f.message().to_owned(),
            retry_after_ms: f.retry_delay().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            backtrace: f.backtrace().map(str::to_owned),
        }
    }
}

impl From<WireFailure> for jobhost_plugin_api::Failure {
    fn from(w: WireFailure) -> Self {
        use jobhost_plugin_api::Failure;
        let mut failure =
            if w.permanent { Failure::permanent(w.message) } else { Failure::retryable(w.message) };
        if let Some(ms) = w.retry_after_ms {
            failure = failure.retry_after(std::time::Duration::from_millis(ms));
        }
        if let Some(backtrace) = w.backtrace {
            failure = failure.with_backtrace(backtrace);
        }
        failure
    }
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: one clock for the host and its workers (the same
/// machine and time namespace), so a worker can say when a job started and the host knows it
/// exactly, however late it reads the answer.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    u64::try_from(now.tv_sec).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec as u64)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Writes one frame with one `write_all` (a small frame is one system call).
pub fn write_frame(to: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut frame = vec![0u8; 4];
    bincode::serde::encode_into_std_write(message, &mut frame, config())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("cannot encode a message: {e}")))?;
    let len = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "message over the frame limit"))?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    to.write_all(&frame)
}

/// Reads one frame; `None` at a clean end of stream (the peer closed between frames).
pub fn read_frame<T: DeserializeOwned>(from: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match from.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    from.read_exact(&mut body)?;
    let (message, used) = bincode::serde::decode_from_slice(&body, config())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("an unreadable message: {e}")))?;
    if used != len {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "trailing bytes in a frame"));
    }
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_closed_stream_between_frames_is_the_end() {
        let mut wire = Vec::new();
        let run = ToWorker::Run(RunJob {
            id: 7,
            attempt: 2,
            factory: "echo".into(),
            input: "{}".into(),
            parents: Some("[]".into()),
        });
        write_frame(&mut wire, &run).unwrap();
        write_frame(&mut wire, &ToWorker::Cancel { id: 7 }).unwrap();
        write_frame(&mut wire, &ToWorker::Withdraw { id: 8 }).unwrap();
        let mut reader = &wire[..];
        assert_eq!(read_frame::<ToWorker>(&mut reader).unwrap(), Some(run));
        assert_eq!(read_frame::<ToWorker>(&mut reader).unwrap(), Some(ToWorker::Cancel { id: 7 }));
        assert_eq!(read_frame::<ToWorker>(&mut reader).unwrap(), Some(ToWorker::Withdraw { id: 8 }));
        assert_eq!(read_frame::<ToWorker>(&mut reader).unwrap(), None);
        // A torn frame is an error, not an end.
        let mut torn = &wire[..wire.len() - 1];
        read_frame::<ToWorker>(&mut torn).unwrap();
        read_frame::<ToWorker>(&mut torn).unwrap();
        assert!(read_frame::<ToWorker>(&mut torn).is_err());
        // So is a length over the limit.
        let huge = u32::MAX.to_le_bytes();
        assert!(read_frame::<ToWorker>(&mut &huge[..]).is_err());
    }

    #[test]
    fn failures_keep_their_kind_message_and_delay_across_the_socket() {
        use jobhost_plugin_api::Failure;
        let failure = Failure::retryable("later").retry_after(std::time::Duration::from_millis(1500));
        let back: Failure = WireFailure::from(failure.clone()).into();
        assert_eq!(back, failure);
        let permanent: Failure = WireFailure::from(Failure::permanent("no")).into();
        assert_eq!(permanent, Failure::permanent("no"));
    }
}
