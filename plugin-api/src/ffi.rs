//! Everything that crosses the plugin ABI, and nothing else.
//!
//! The host and every plugin are separate Rust compilations, so only `#[repr(C)]` types with a
//! `StableAbi` layout may pass between them. abi_stable checks the whole graph reachable from
//! [`PluginModule`] when the host loads a plugin; a type changed here without a version bump
//! is refused at load time with a layout error, never misread at run time.
//!
//! Evolution rules (see the crate README, "Compatibility"): [`PluginModule`] and
//! [`FactoryInfo`] are prefix types, but a host checks a plugin's root module against its own
//! layout and refuses one with fewer fields, so appending a field there drops every older
//! plugin: what is new goes in symbols of its own, looked up when present (see
//! [`SCHEMAS_SYMBOL`]). The `#[sabi_trait]` vtables of [`HostJob`] and [`JobRunner`] are prefix
//! types too, with the same limit. [`FfiFactory`], [`FfiFailure`] and [`LogRecord`] are fixed.
//! Changing an existing field or method is a breaking (major) change. (Measured: a plugin built
//! before two fields were appended to `FactoryInfo` was refused by a host that had them: "too
//! many fields, expected 8, found 6".)

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RRef, VersionStrings},
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

/// The root module every plugin exports (through [`export_plugin!`](crate::export_plugin)).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
pub struct PluginModule {
    /// The plugin's name, as shown by `jobhost plugins check`.
    pub name: RStr<'static>,
    /// The plugin's own version (its Cargo package version by default).
    pub version: RStr<'static>,
    /// The SDK version the plugin was built against.
    pub sdk_version: RStr<'static>,
    /// Installs the host's log sink and level; the host calls it once, before `factories`.
    pub init: extern "C" fn(logger: HostLogger, max_level: LevelFilter),
    /// Builds the plugin's factories. An `RErr` carries the reason (a panic while building).
    #[sabi(last_prefix_field)]
    pub factories: extern "C" fn() -> RResult<RVec<FfiFactory>, RString>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "jobhost_plugin";
    const NAME: &'static str = "jobhost_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// One job factory: its description and the object that runs it. Fixed layout; what may grow
/// lives in [`FactoryInfo`].
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiFactory {
    pub info: FactoryInfo_Ref,
    pub runner: JobRunner_TO<'static, RBox<()>>,
}

/// What a factory is called and its defaults.
///
/// Built once per plugin load and leaked: plugins are never unloaded, so the `'static`
/// strings stay valid for the life of the process.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = FactoryInfo_Ref)))]
pub struct FactoryInfo {
    pub name: RStr<'static>,
    pub description: RStr<'static>,
    /// An example input (JSON text), shown to operators.
    pub example: ROption<RStr<'static>>,
    pub max_attempts: ROption<u32>,
    pub timeout_ms: ROption<u64>,
    #[sabi(last_prefix_field)]
    pub retry_delay_ms: ROption<u64>,
}

/// The name of the function a plugin exports beside its root module, from SDK 0.1 with typed
/// inputs on: `extern "C" fn() -> RString`, a JSON object `{"factory": {"input": schema,
/// "output": schema}}`. A separate symbol rather than fields of [`FactoryInfo`]: abi_stable's
/// layout check refuses a root module with fewer prefix fields than the host's, so new fields
/// there would make every plugin built before them unloadable. A plugin without the symbol
/// declares no schemas (its factories take any JSON).
pub const SCHEMAS_SYMBOL: &str = "jobhost_plugin_schemas";

/// The type of [`SCHEMAS_SYMBOL`].
pub type SchemasFn = extern "C" fn() -> RString;

/// The name of the function a plugin exports, from SDK 0.1 with dependencies on, through which
/// the host hands a job its parents' outcomes: `extern "C" fn(RStr)`, called on the job's
/// thread just before [`JobRunner::run`], with a JSON array `[{"id": "12", "status":
/// "completed", "result": …}]` in the order the job named them. The SDK keeps it for that
/// run's [`Context::parents`](crate::Context::parents). A function beside the root module, not
/// a method of [`HostJob`], for the reason given at [`SCHEMAS_SYMBOL`]: a plugin built before
/// it lacks the symbol and its jobs are never told.
pub const PARENTS_SYMBOL: &str = "jobhost_plugin_parents";

/// The type of [`PARENTS_SYMBOL`].
pub type ParentsFn = extern "C" fn(parents: RStr<'_>);

/// The name of the function a plugin exports, from SDK 0.1 with panic backtraces on, through
/// which the host asks, on the job's thread just after [`JobRunner::run`] returned a failure,
/// where the job panicked: `extern "C" fn() -> RString`, `panicked at FILE:LINE:COL` and the
/// stack then (at most 16 KiB), or empty text when the failure was no panic. Taken: a second
/// call answers empty. A function beside the root module for the reason given at
/// [`SCHEMAS_SYMBOL`]; a plugin built before it has none, and its panics keep only their
/// message.
pub const PANIC_SYMBOL: &str = "jobhost_plugin_panic";

/// The type of [`PANIC_SYMBOL`].
pub type PanicFn = extern "C" fn() -> RString;

/// Runs one job. Implemented by the SDK for the author's typed function; the implementation
/// never unwinds (panics are caught inside the plugin and become retryable failures).
#[sabi_trait]
pub trait JobRunner: Send + Sync {
    /// `input` is JSON text; the `ROk` value is JSON text.
    #[sabi(last_prefix_field)]
    fn run<'a>(&self, host: HostJob_TO<'a, RRef<'a, ()>>, input: RStr<'_>) -> RResult<RString, FfiFailure>;
}

/// What the host offers a running job. Implemented by the host, called by plugin code on the
/// job's thread (or any thread the job spawns: hence `Send + Sync`).
#[sabi_trait]
pub trait HostJob: Send + Sync {
    fn job_id(&self) -> u64;
    /// 1 for the first attempt.
    fn attempt(&self) -> u32;
    /// True once the host wants the job to stop (cancel request or timeout).
    fn is_cancelled(&self) -> bool;
    /// `fraction` is clamped by the host to 0.0..=1.0.
    #[sabi(last_prefix_field)]
    fn report_progress(&self, fraction: f64, message: RStr<'_>);
}

/// How a job failed, which decides what the host does next.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Retrying cannot help (bad input, a rejected request): the job ends in `error` at once.
    Permanent,
    /// Worth another attempt (a panic, a timeout, an unavailable service).
    Retryable,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiFailure {
    pub kind: FailureKind,
    pub message: RString,
    /// For a retryable failure: wait at least this long before the next attempt.
    pub retry_after_ms: ROption<u64>,
}

/// The host's log sink. `record` is valid only for the duration of the call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostLogger {
    pub log: extern "C" fn(record: &LogRecord<'_>),
}

#[repr(C)]
#[derive(StableAbi)]
pub struct LogRecord<'a> {
    pub level: Level,
    /// The plugin's name, so the host can tag the line.
    pub plugin: RStr<'a>,
    /// The `log` target inside the plugin (usually its module path).
    pub target: RStr<'a>,
    pub message: RStr<'a>,
    /// The job being run on the logging thread, if any.
    pub job_id: ROption<u64>,
}

/// Mirrors `log::Level` (whose layout is not ABI-stable).
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error = 1,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Mirrors `log::LevelFilter`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelFilter {
    Off = 0,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<log::Level> for Level {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug => Level::Debug,
            log::Level::Trace => Level::Trace,
        }
    }
}

impl From<Level> for log::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
            Level::Trace => log::Level::Trace,
        }
    }
}

impl From<log::LevelFilter> for LevelFilter {
    fn from(filter: log::LevelFilter) -> Self {
        match filter {
            log::LevelFilter::Off => LevelFilter::Off,
            log::LevelFilter::Error => LevelFilter::Error,
            log::LevelFilter::Warn => LevelFilter::Warn,
            log::LevelFilter::Info => LevelFilter::Info,
            log::LevelFilter::Debug => LevelFilter::Debug,
            log::LevelFilter::Trace => LevelFilter::Trace,
        }
    }
}

impl From<LevelFilter> for log::LevelFilter {
    fn from(filter: LevelFilter) -> Self {
        match filter {
            LevelFilter::Off => log::LevelFilter::Off,
            LevelFilter::Error => log::LevelFilter::Error,
            LevelFilter::Warn => log::LevelFilter::Warn,
            LevelFilter::Info => log::LevelFilter::Info,
            LevelFilter::Debug => log::LevelFilter::Debug,
            LevelFilter::Trace => log::LevelFilter::Trace,
        }
    }
}
