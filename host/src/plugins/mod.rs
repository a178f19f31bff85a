//! Plugins: loading shared libraries through the stable ABI, registering their factories, and
//! the catalog that describes them without their code.
//!
//! **Invariant:** a factory name maps to exactly one loaded factory; a file that cannot be
//! loaded is rejected whole with a one-line reason and never stops the others from loading;
//! a name two files provide is a recorded conflict, decided by a pin, by the loaded owner on a
//! reload, or by the operator. Nothing here unwinds into or out of plugin code.

mod catalog;
mod error;
mod factory;
mod host_side;
mod image;
mod loader;
mod registry;
mod schemas;
mod security;

pub use catalog::{Catalog, Conflict, FactoryDefaults, FactoryInfo, PluginInfo, Rejected, Resolution};
pub use error::LoadError;
pub use factory::Factory;
pub use host_side::{NoProgress, ProgressSink, RunContext};
pub use image::Image;
pub use loader::{scan_dir, LIBRARY_SUFFIX};
pub use registry::{LoadOptions, Registry, Rejection};
pub use schemas::{describe as describe_fields, narrows, FieldError, Schemas};
