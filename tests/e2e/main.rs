//! The end-to-end tests: one test binary, one module per area. Helpers live in `src/lib.rs`.
//!
//! - `plugins`: loading the real plugin files, each rejection case, the log bridge, the
//!   `plugins` CLI.
//!
//! New tests go in the module of the area they exercise; a new area gets a new module here.

mod api;
mod crash;
mod plugins;
mod queue;
mod scheduling;
mod service;
