//! jobhost: a job-processing host with a durable embedded queue and native plugins.
//!
//! The binary (`main.rs`) only calls [`cli::main`]; everything else lives here so that tests
//! and other front ends drive the same code. See ARCHITECTURE.md for the map. Data flows one
//! way: `cli` → `runtime` (the composition root) → `server` → `service` (and the `scheduler`
//! loop) → `processor` → `store`, with `job`, `plugins`, `clock` and the other leaves below
//! them; `.ci/layering.py` checks it.

pub mod cli;
pub mod clock;
pub mod config;
pub mod cron;
pub mod durations;
pub mod events;
pub mod history;
pub mod ids;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod plugins;
pub mod processor;
pub mod runtime;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod store;
pub mod sync;
pub mod text;
pub mod workers;
