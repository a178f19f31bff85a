//! The author-facing failure type: a message plus whether retrying can help.

use std::any::Any;
use std::fmt;
use std::time::Duration;

use crate::ffi::{FailureKind, FfiFailure};

/// Why a job did not produce a result.
///
/// The kind steers the host, never the message: a [`permanent`](Failure::permanent) failure
/// ends the job in `error` at once; a [`retryable`](Failure::retryable) one is attempted again
/// with backoff until the job's attempts are spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
    retry_after: Option<Duration>,
    backtrace: Option<String>,
}

/// What a job function returns.
pub type JobResult<T> = Result<T, Failure>;

impl Failure {
    /// Retrying cannot help: bad input, a refused request.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Failure {
            kind: FailureKind::Permanent,
            message: message.to_string(),
            retry_after: None,
            backtrace: None,
        }
    }

    /// Another attempt may succeed: a timeout, a service that is down.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Failure {
            kind: FailureKind::Retryable,
            message: message.to_string(),
            retry_after: None,
            backtrace: None,
        }
    }

    /// The job stopped because the host asked it to (cancel or timeout). The host records the
    /// job as `cancelled` (or timed out) whatever the kind, so this is only a convenience.
    pub fn cancelled() -> Self {
        Failure::permanent("cancelled")
    }

    /// For a retryable failure: do not try again before `delay` has passed.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_delay(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Where the panic this failure stands for happened, and the stack then (`panicked at
    /// src/lib.rs:12:5` and the frames), for a failure the SDK made of a caught panic. The host
    /// keeps it with the job (`backtrace` in the API, shown on the dashboard's job page); the
    /// message stays the panic's own.
    pub fn backtrace(&self) -> Option<&str> {
        self.backtrace.as_deref()
    }

    /// This failure with a panic's location and stack (see [`backtrace`](Self::backtrace)).
    pub fn with_backtrace(mut self, backtrace: impl Into<String>) -> Self {
        self.backtrace = Some(backtrace.into());
        self
    }

    pub(crate) fn into_ffi(self) -> FfiFailure {
        FfiFailure {
            kind: self.kind,
            message: self.message.into(),
            retry_after_ms: self.retry_after.map(duration_ms).into(),
        }
    }

    /// Rebuilds the author-facing value from what crossed the ABI (used by the host and by
    /// [`testing`](crate::testing)).
    pub fn from_ffi(failure: FfiFailure) -> Self {
        Failure {
            kind: failure.kind,
            message: failure.message.into_string(),
            retry_after: failure.retry_after_ms.into_option().map(Duration::from_millis),
            backtrace: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FailureKind::Permanent => "permanent",
            FailureKind::Retryable => "retryable",
        };
        write!(f, "{kind} failure: {}", self.message)
    }
}

impl std::error::Error for Failure {}

/// Milliseconds, saturating: a duration too long for `u64` ms is "forever" in practice.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The text of a panic: `panic!("...")` payloads are `&str` or `String`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the job panicked with a non-string payload".to_owned()
    }
}
