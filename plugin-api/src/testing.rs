//! A stand-in host for plugin authors' unit tests: runs a [`Factory`] in-process through the
//! same runner (and so the same input decoding and panic capture) the real host calls.
//!
//! ```
//! use jobhost_plugin_api::{prelude::*, testing::TestHost};
//!
//! fn double(n: i64, _ctx: &Context) -> JobResult<i64> { Ok(n * 2) }
//!
//! let host = TestHost::new();
//! assert_eq!(host.run(&Factory::new("double", double), "21").unwrap(), 42);
//! assert!(host.run(&Factory::new("double", double), "\"x\"").unwrap_err()
//!     .message().starts_with("invalid input:"));
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};

use crate::ffi::{HostJob, HostJob_TO};
use crate::{Factory, Failure, JobResult};

/// Plays the host's side of one job: id, attempt, cancellation flag, recorded progress.
pub struct TestHost {
    pub job_id: u64,
    pub attempt: u32,
    cancelled: AtomicBool,
    progress: Mutex<Vec<(f64, String)>>,
}

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHost {
    pub fn new() -> Self {
        TestHost {
            job_id: 1,
            attempt: 1,
            cancelled: AtomicBool::new(false),
            progress: Mutex::new(Vec::new()),
        }
    }

    /// Sets the cancellation flag, as the host does on a cancel request or timeout.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Every progress report so far, oldest first.
    pub fn progress(&self) -> Vec<(f64, String)> {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Runs `factory` as a dependent whose parents ended as `parents` (what
    /// [`Context::parents`](crate::Context::parents) then returns), e.g.
    /// `json!([{"id": "1", "status": "completed", "result": 42}])`.
    pub fn run_after(
        &self,
        factory: &Factory,
        parents: &serde_json::Value,
        input_json: &str,
    ) -> JobResult<serde_json::Value> {
        crate::context::set_parents(&parents.to_string());
        self.run(factory, input_json)
    }

    /// Runs `factory` on `input_json` and parses the result as JSON.
    pub fn run(&self, factory: &Factory, input_json: &str) -> JobResult<serde_json::Value> {
        let host = HostJob_TO::from_ptr(self, TD_Opaque);
        match factory.runner().run(host, input_json.into()).into_result() {
            Ok(json) => serde_json::from_str(&json)
                .map_err(|e| Failure::permanent(format!("result is not JSON: {e}"))),
            // As the host does: a panic's location and stack come with its failure.
            Err(failure) => Err(match crate::panics::take() {
                Some(backtrace) => Failure::from_ffi(failure).with_backtrace(backtrace),
                None => Failure::from_ffi(failure),
            }),
        }
    }
}

impl HostJob for TestHost {
    fn job_id(&self) -> u64 {
        self.job_id
    }
    fn attempt(&self) -> u32 {
        self.attempt
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
    fn report_progress(&self, fraction: f64, message: RStr<'_>) {
        if let Ok(mut p) = self.progress.lock() {
            p.push((fraction.clamp(0.0, 1.0), message.to_string()));
        }
    }
}
