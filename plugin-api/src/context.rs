//! The author-facing view of a running job: who it is, whether to stop, how far it got.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use abi_stable::sabi_types::RRef;

use crate::ffi::HostJob_TO;
use crate::Failure;

/// How often [`Context::sleep`] looks at the cancellation flag.
pub const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(25);

thread_local! {
    /// What the host handed over for the next job run on this thread (see
    /// `ffi::PARENTS_SYMBOL`): taken by that run's context, so no job sees another's.
    static NEXT_PARENTS: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Called through the plugin's exported `jobhost_plugin_parents` just before a job runs on this
/// thread.
#[doc(hidden)]
pub fn set_parents(json: &str) {
    NEXT_PARENTS.with(|next| *next.borrow_mut() = Some(json.to_owned()));
}

/// How a job this one depends on ended, as [`Context::parents`] tells it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParentOutcome {
    /// The parent's job id.
    pub id: String,
    /// `completed`, `error` or `cancelled` (a dependent runs after a failed parent only when
    /// its edge says `on_failure: "run"`); the parent may have been removed since (`removed`).
    pub status: String,
    /// Its factory's result when it completed, else `None`.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

impl ParentOutcome {
    /// The result decoded as `T`; a failure (permanent) naming the parent if it has none or
    /// it does not decode.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let value = self.result.clone().ok_or_else(|| {
            Failure::permanent(format!("parent job {} has no result (it is {})", self.id, self.status))
        })?;
        serde_json::from_value(value)
            .map_err(|e| Failure::permanent(format!("parent job {}'s result does not decode: {e}", self.id)))
    }
}

/// Handed to every job function. Cheap to use from the job's thread; it borrows the host's
/// per-job state for the duration of the call only.
pub struct Context<'a> {
    host: HostJob_TO<'a, RRef<'a, ()>>,
    /// The parents' outcomes as the host sent them (JSON), if it did.
    parents: Option<String>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(host: HostJob_TO<'a, RRef<'a, ()>>) -> Self {
        let parents = NEXT_PARENTS.with(|next| next.borrow_mut().take());
        Context { host, parents }
    }

    /// How each job this one depends on (`depends_on`) ended, in the order they were named;
    /// empty for a job without dependencies (or under a host that does not send them). A group's
    /// callback gets every member here.
    pub fn parents(&self) -> Vec<ParentOutcome> {
        self.parents.as_deref().and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default()
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
