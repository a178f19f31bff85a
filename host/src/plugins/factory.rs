//! A registered job factory of a plugin loaded into this process: its description, and running
//! one attempt of it on the calling thread through the ABI.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RBox;
use jobhost_plugin_api::ffi::{FfiFactory, JobRunner_TO, PanicFn, ParentsFn};
use jobhost_plugin_api::Failure;

use super::catalog::{FactoryDefaults, FactoryInfo, PluginInfo};
use super::host_side::{NoProgress, RunContext};

/// Cheap to clone, callable from any thread.
#[derive(Clone)]
pub struct Factory(Arc<FactoryInner>);

struct FactoryInner {
    info: FactoryInfo,
    runner: JobRunner_TO<'static, RBox<()>>,
    /// The plugin's `ffi::PARENTS_SYMBOL`, if it exports one.
    parents: Option<ParentsFn>,
    /// The plugin's `ffi::PANIC_SYMBOL`, if it exports one.
    panic: Option<PanicFn>,
}

impl Factory {
    /// `input_schema` and `output_schema` (JSON text) as the plugin declared them, if it did.
    pub(super) fn new(
        plugin: &PluginInfo,
        ffi: FfiFactory,
        input_schema: Option<String>,
        output_schema: Option<String>,
        parents: Option<ParentsFn>,
        panic: Option<PanicFn>,
    ) -> Self {
        let info = ffi.info;
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        let info = FactoryInfo {
            name: info.name().to_string(),
            description: info.description().to_string(),
            example: info.example().into_option().map(|e| e.to_string()),
            plugin: plugin.name.clone(),
            plugin_version: plugin.version.clone(),
            path: plugin.path.clone(),
            defaults: FactoryDefaults {
                max_attempts: info.max_attempts().into_option(),
                timeout: ms(info.timeout_ms().into_option()),
                retry_delay: ms(info.retry_delay_ms().into_option()),
            },
            input_schema,
            output_schema,
        };
        Factory(Arc::new(FactoryInner { info, runner: ffi.runner, parents, panic }))
    }

    pub fn name(&self) -> &str {
        &self.0.info.name
    }

    pub fn info(&self) -> &FactoryInfo {
        &self.0.info
    }

    pub fn defaults(&self) -> FactoryDefaults {
        self.0.info.defaults
    }

    /// Runs one attempt on the calling thread (blocking: call it from a blocking thread).
    /// `input` and the `Ok` value are JSON text.
    pub fn run(&self, ctx: &RunContext<'_>, input: &str) -> Result<String, Failure> {
        use abi_stable::sabi_trait::TD_Opaque;
        use jobhost_plugin_api::ffi::HostJob_TO;
        let host = HostJob_TO::from_ptr(ctx, TD_Opaque);
        // On this thread, just before the run: the plugin keeps it for this run's context.
        if let (Some(parents), Some(tell)) = (ctx.parents, self.0.parents) {
            tell(parents.into());
        }
        match self.0.runner.run(host, input.into()).into_result() {
            Ok(json) => Ok(json.into_string()),
            Err(failure) => {
                let failure = Failure::from_ffi(failure);
                // On this thread, just after the run: where it panicked, if it did.
                let panicked = self.0.panic.map(|take| take().into_string()).filter(|t| !t.is_empty());
                Err(match panicked {
                    Some(backtrace) => failure.with_backtrace(backtrace),
                    None => failure,
                })
            }
        }
    }

    /// Runs one attempt with no cancellation or progress (for `plugins run` and tests).
    pub fn run_once(&self, input: &str) -> Result<String, Failure> {
        let cancel = AtomicBool::new(false);
        self.run(
            &RunContext { job_id: 0, attempt: 1, cancel: &cancel, progress: &NoProgress, parents: None },
            input,
        )
    }
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory").field("name", &self.0.info.name).field("path", &self.0.info.path).finish()
    }
}
