#![doc = include_str!("../README.md")]
#![allow(non_camel_case_types)] // abi_stable names generated types `Foo_Ref`, `Foo_TO`.

mod context;
mod export;
mod factory;
mod failure;
pub mod ffi;
mod logging;
mod panics;
pub mod testing;

pub use context::{Context, ParentOutcome, CANCEL_POLL_INTERVAL};
pub use factory::Factory;
pub use failure::{Failure, JobResult};
pub use ffi::FailureKind;
/// Re-exported so plugins log through the same `log` the bridge is installed in.
pub use log;
/// Re-exported: input and output types derive `JsonSchema` (add `schemars = "1"` to the
/// plugin's dependencies, as for serde, so the derive finds it).
pub use schemars;
/// Re-exported so plugins can take and return free-form JSON without a dependency of their own.
pub use serde_json;

/// The SDK version a plugin is built against; the host accepts plugins of the same minor
/// version while the SDK is 0.x, and of the same major version from 1.0 on.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin usually needs: `use jobhost_plugin_api::prelude::*;`.
pub mod prelude {
    pub use crate::{export_plugin, log, Context, Factory, Failure, FailureKind, JobResult};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    pub use serde_json::{json, Value};
}

/// Items the [`export_plugin!`] expansion names. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::context::set_parents;
    pub use crate::export::{build_factories, schemas_json, ROOT_SYMBOL};
    pub use crate::ffi::{FfiFactory, HostLogger, LevelFilter, PluginModule, PluginModule_Ref};
    pub use crate::logging::init as init_logging;
    pub use crate::panics::take_for_host as take_panic;
    pub use abi_stable::library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult};
    pub use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::std_types::{RResult, RStr, RString, RVec};
}
