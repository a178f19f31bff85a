//! The jobhost plugin SDK: the only crate a plugin author depends on.
//!
//! A plugin is a `cdylib` that exports one root module through [`export_plugin!`]. Each
//! [`Factory`] in it is an ordinary Rust function over serde types; the SDK decodes the job's
//! JSON input, encodes the result, catches panics inside the plugin (they become retryable
//! failures: nothing unwinds across the ABI) and bridges the plugin's `log` calls to the host.
//!
//! A complete plugin:
//!
//! ```
//! use jobhost_plugin_api::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Greeting {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Greeted {
//!     message: String,
//! }
//!
//! fn greet(input: Greeting, ctx: &Context) -> JobResult<Greeted> {
//!     log::info!("greeting {} (attempt {})", input.name, ctx.attempt());
//!     if input.name.is_empty() {
//!         return Err(Failure::permanent("name is empty"));
//!     }
//!     Ok(Greeted { message: format!("Hello, {}!", input.name) })
//! }
//!
//! export_plugin! {
//!     name: "hello",
//!     factories: [Factory::new("greet", greet).description("Says hello.")],
//! }
//! # let host = jobhost_plugin_api::testing::TestHost::new();
//! # let out = host.run(&Factory::new("greet", greet), r#"{"name":"Ada"}"#).unwrap();
//! # assert_eq!(out["message"], "Hello, Ada!");
//! ```
//!
//! Everything that crosses the ABI lives in [`ffi`] and nowhere else.
#![allow(non_camel_case_types)] // abi_stable names generated types `Foo_Ref`, `Foo_TO`.

mod context;
mod export;
mod factory;
mod failure;
pub mod ffi;
mod logging;
pub mod testing;

pub use context::{Context, CANCEL_POLL_INTERVAL};
pub use factory::Factory;
pub use failure::{Failure, JobResult};
pub use ffi::FailureKind;
/// Re-exported so plugins log through the same `log` the bridge is installed in.
pub use log;

/// The SDK version a plugin is built against; the host accepts plugins of the same minor
/// version while the SDK is 0.x, and of the same major version from 1.0 on.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin usually needs: `use jobhost_plugin_api::prelude::*;`.
pub mod prelude {
    pub use crate::{export_plugin, log, Context, Factory, Failure, JobResult};
    pub use serde::{Deserialize, Serialize};
}

/// Items the [`export_plugin!`] expansion names. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{build_factories, ROOT_SYMBOL};
    pub use crate::ffi::{FfiFactory, HostLogger, LevelFilter, PluginModule, PluginModule_Ref};
    pub use crate::logging::init as init_logging;
    pub use abi_stable::library::{__call_root_module_loader, CheckTypeLayout, LibHeader, RootModuleResult};
    pub use abi_stable::prefix_type::PrefixTypeTrait;
    pub use abi_stable::std_types::{RResult, RStr, RString, RVec};
}
