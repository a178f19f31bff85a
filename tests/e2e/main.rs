//! The end-to-end tests: one test binary, one module per area. Helpers live in `src/lib.rs`
//! (and the server harness in `src/server.rs`).
//!
//! - `plugins`: loading the real plugin files, each rejection case, the log bridge, the
//!   `plugins` CLI.
//! - `queue`: m01.remote's documented scenarios in process, workers, cancel, timeout, leases, retention.
//! - `scheduling`: delayed, held and unique jobs, schedules, racing scheduler loops, restarts.
//! - `crash`: SIGKILL and aborting plugins against `run-once`.
//! - `api`: the HTTP API of the real `jobhost serve`, every error code, auth, OpenAPI.
//! - `dashboard`: the dashboard in Debian's Chromium (Playwright tests in `tests/browser`).
//! - `service`: the CLI client, signals, config errors, scheduling commands, roles.
//! - `hardening`: faults and hostile input: many queues, connection floods, nonsense
//!   settings, the API's contract.
//! - `disk`: the store's disk going wrong: full (a real tmpfs, and a fault-injecting layer),
//!   damaged.
//! - `dispatch`: how jobs reach workers: fairness, bursts, stops giving back, real start times.
//! - `isolation`: plugins in worker processes: hangs, crashes, exits, limits, shutdown, reloads
//!   and duplicate factory names, with a plugin that misbehaves on purpose.
//!
//! - `inputs`: typed inputs: factories' schemas published and checked at every submission.
//! - `idempotency`: `Idempotency-Key` on creating requests over HTTP.
//! - `triage`: finding why jobs fail: latest errors in lists, searching by error and input.
//! - `pauses`: queue pauses kept in the store, across restarts and hosts.
//! - `history`: throughput history kept in the store, across restarts and hosts.
//! - `web`: what a browser on another site, or under a rebound name, may do: nothing.
//!
//! New tests go in the module of the area they exercise; a new area gets a new module here.

mod api;
mod crash;
mod dashboard;
mod disk;
mod dispatch;
mod hardening;
mod history;
mod idempotency;
mod inputs;
mod isolation;
mod layering;
mod pauses;
mod plugins;
mod postgres;
mod queue;
mod scheduling;
mod service;
mod stores;
mod triage;
mod web;
mod workflows;
