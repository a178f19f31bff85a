//! The service's configuration: the TOML file `jobhost serve --config` reads, its defaults, and
//! how it becomes the processor's, store's and server's settings.
//!
//! The files: `file` (the `Config` struct, its defaults, reading it), `sections` (the tables
//! and values it is made of), `checks` (the rules across keys), `translate` (the processor's,
//! the worker processes' and the embedded store's settings from it). Which store backend a
//! config selects, and connecting to it, is the composition root's (`runtime`): nothing here
//! knows a backend.
//!
//! **Invariant:** every key has a default documented in `host/jobhost.example.toml` (a test
//! parses that file and compares it with [`Config::default`]); an unknown key or a bad value is
//! an error that names the key, never a silent fallback.

mod checks;
mod file;
mod sections;
mod translate;

pub use file::{
    default_plugin_dirs, Config, ConfigError, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_PLUGIN_DIR,
};
pub use sections::{
    parse_listen, Isolation, Limits, LogFormat, QueueTable, RetryConfig, Role, StoreConfig, StoreUrl,
    WorkerLimits,
};
