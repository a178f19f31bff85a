//! Plugins: loading shared libraries through the stable ABI and registering their factories.
//!
//! **Invariant:** a factory name maps to exactly one loaded factory; a file that cannot be
//! loaded, or would register a name twice, is rejected whole with a one-line reason and never
//! stops the others from loading. Nothing here unwinds into or out of plugin code.

mod error;
mod factory;
mod host_side;
mod loader;
mod registry;
mod security;

pub use error::LoadError;
pub use factory::{Factory, FactoryDefaults, PluginInfo};
pub use host_side::{NoProgress, ProgressSink, RunContext};
pub use loader::LIBRARY_SUFFIX;
pub use registry::{LoadOptions, Registry, Rejection};
