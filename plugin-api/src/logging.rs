//! The log bridge: a plugin's `log::info!` reaches the host's logger.
//!
//! Each cdylib links its own copy of the `log` crate with its own global logger, so without
//! this bridge a plugin's log calls go nowhere. The SDK installs [`Bridge`] as the plugin's
//! logger when the host calls the root module's `init`; every record is forwarded through the
//! host's [`HostLogger`], tagged with the plugin name and the job running on the calling thread.

use std::cell::Cell;
use std::sync::OnceLock;

use abi_stable::std_types::ROption;

use crate::ffi::{HostLogger, LevelFilter, LogRecord};

struct HostSink {
    plugin: &'static str,
    logger: HostLogger,
}

static SINK: OnceLock<HostSink> = OnceLock::new();
static BRIDGE: Bridge = Bridge;

thread_local! {
    /// The job this thread is running, for tagging log lines. Jobs are synchronous and run on
    /// one host thread each, so a thread-local is exact for everything the job logs itself.
    static CURRENT_JOB: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Called through the root module's `init`. Later calls (a second host in one process) keep
/// the first sink: a plugin's logger can be set only once.
#[doc(hidden)]
pub fn init(plugin: &'static str, logger: HostLogger, max_level: LevelFilter) {
    if SINK.set(HostSink { plugin, logger }).is_ok() {
        // Fails only if the plugin set a logger of its own; then that logger stays.
        let _ = log::set_logger(&BRIDGE);
        log::set_max_level(max_level.into());
        install_panic_hook();
    }
}

/// Sends panic reports to the host's log instead of the plugin's own stderr, with location.
/// The SDK still catches the panic itself and turns it into a retryable failure.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = crate::failure::panic_message(info.payload());
        match info.location() {
            Some(at) => log::error!("job panicked at {}:{}: {message}", at.file(), at.line()),
            None => log::error!("job panicked: {message}"),
        }
    }));
}

/// Marks the current thread as running `job_id` until dropped.
pub(crate) struct JobScope {
    previous: Option<u64>,
}

impl JobScope {
    pub(crate) fn enter(job_id: u64) -> Self {
        let previous = CURRENT_JOB.with(|c| c.replace(Some(job_id)));
        JobScope { previous }
    }
}

impl Drop for JobScope {
    fn drop(&mut self) {
        CURRENT_JOB.with(|c| c.set(self.previous));
    }
}

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(sink) = SINK.get() else { return };
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        let job_id = CURRENT_JOB.with(Cell::get);
        (sink.logger.log)(&LogRecord {
            level: record.level().into(),
            plugin: sink.plugin.into(),
            target: record.target().into(),
            message: message.as_str().into(),
            job_id: ROption::from(job_id),
        });
    }

    fn flush(&self) {}
}
