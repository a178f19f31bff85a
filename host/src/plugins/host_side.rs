//! The host's half of the ABI: the log sink plugins call, and the per-job object a plugin
//! sees as its `Context`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use abi_stable::std_types::RStr;
use jobhost_plugin_api::ffi::{HostJob, HostLogger, LogRecord};

/// Handed to every plugin at load time.
pub(crate) const HOST_LOGGER: HostLogger = HostLogger { log: host_log };

/// Re-emits a plugin's log record through the host's `log` facade, with target
/// `plugin::<name>` and the job id in front of the message.
extern "C" fn host_log(record: &LogRecord<'_>) {
    // This runs inside a plugin's call stack: a panic from the host's logger must not unwind
    // back across the ABI.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let target = format!("plugin::{}", record.plugin);
        let level: log::Level = record.level.into();
        let message = record.message.as_str();
        let emit = |args: std::fmt::Arguments<'_>| {
            log::logger().log(&log::Record::builder().level(level).target(&target).args(args).build());
        };
        match record.job_id.into_option() {
            Some(id) => emit(format_args!("[job {id}] {message}")),
            None => emit(format_args!("{message}")),
        }
    }));
}

/// Receives a running job's progress reports.
pub trait ProgressSink: Send + Sync {
    fn report(&self, fraction: f64, message: &str);
}

/// Discards progress (for one-off runs that do not store it).
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _fraction: f64, _message: &str) {}
}

/// What one job attempt can see of the host. Borrowed for the duration of the call.
pub struct RunContext<'a> {
    pub job_id: u64,
    pub attempt: u32,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn ProgressSink,
    /// The job's parents' outcomes as JSON (`ffi::PARENTS_SYMBOL`), for a job with parents.
    pub parents: Option<&'a str>,
}

impl HostJob for RunContext<'_> {
    fn job_id(&self) -> u64 {
        self.job_id
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn report_progress(&self, fraction: f64, message: RStr<'_>) {
        let fraction = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
        // The sink is host code called from plugin code: keep any panic on this side.
        let _ = catch_unwind(AssertUnwindSafe(|| self.progress.report(fraction, message.as_str())));
    }
}
