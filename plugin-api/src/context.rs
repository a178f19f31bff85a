//! The author-facing view of a running job: who it is, whether to stop, how far it got.

use std::time::{Duration, Instant};

use abi_stable::sabi_types::RRef;

use crate::ffi::HostJob_TO;
use crate::Failure;

/// How often [`Context::sleep`] looks at the cancellation flag.
pub const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Handed to every job function. Cheap to use from the job's thread; it borrows the host's
/// per-job state for the duration of the call only.
pub struct Context<'a> {
    host: HostJob_TO<'a, RRef<'a, ()>>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(host: HostJob_TO<'a, RRef<'a, ()>>) -> Self {
        Context { host }
    }

    /// The job's id in the host's store.
    pub fn job_id(&self) -> u64 {
        self.host.job_id()
    }

    /// Which attempt this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.host.attempt()
    }

    /// True once the host wants the job to stop (a cancel request or the job's timeout).
    /// Long-running jobs should poll this and return early.
    pub fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }

    /// `Err(Failure::cancelled())` once cancelled, so a loop can use `ctx.check_cancelled()?`.
    pub fn check_cancelled(&self) -> Result<(), Failure> {
        if self.is_cancelled() {
            Err(Failure::cancelled())
        } else {
            Ok(())
        }
    }

    /// Reports progress: `fraction` from 0.0 to 1.0 (clamped), with a short message.
    pub fn progress(&self, fraction: f64, message: &str) {
        self.host.report_progress(fraction, message.into());
    }

    /// Sleeps for `duration`, waking at least every [`CANCEL_POLL_INTERVAL`] to look at the
    /// cancellation flag. Returns `Err(Failure::cancelled())` if the job was cancelled.
    pub fn sleep(&self, duration: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + duration;
        loop {
            self.check_cancelled()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            std::thread::sleep((deadline - now).min(CANCEL_POLL_INTERVAL));
        }
    }
}
