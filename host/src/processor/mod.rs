//! The processor: per-queue worker pools that claim jobs, run them and report their outcomes.
//!
//! **Invariant:** a job's status changes only through the store, and only the holder of its
//! current lease token can report its outcome. Plugin code runs on blocking threads, never on
//! the runtime's core threads. Stopping a queue stops claiming, never a running job.
//!
//! The files: `config` (settings), `state` (what workers share with the service), `plugins`
//! (where plugin code runs: here or in worker processes), `pool` (start, stop, shutdown),
//! `queue` (one queue's runtime state), `pace` (how many jobs a claim may take), `worker`
//! (the loop, the one place that claims), `recorder` and `outcomes` (outcomes handed over,
//! and the thread that writes many per transaction), `attempt` (one attempt and the outcomes
//! it can come to), `execute` (a slot's executor: in process, or `isolated`, the slot's
//! worker process with its restarts), `parents` (what a dependent is told of its parents),
//! `supervisor` (leases, timeouts, cancels, kills), `running` (the attempts running here),
//! `retry` (backoff).

mod attempt;
mod config;
mod execute;
mod isolated;
mod outcomes;
mod pace;
mod parents;
mod plugins;
mod pool;
mod queue;
mod recorder;
mod retry;
mod running;
mod shared;
mod state;
mod supervisor;
mod worker;

pub use config::{
    ProcessorConfig, QueueConfig, Retention, DEFAULT_CLAIM_BATCH, DEFAULT_IDEMPOTENCY_WINDOW,
    DEFAULT_KILL_GRACE, DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_RESULT_BYTES, DEFAULT_POLL_INTERVAL,
};
pub use isolated::{BACKOFF_FIRST, BACKOFF_MAX};
pub use pace::ClaimPace;
pub use plugins::Plugins;
pub use pool::{Pool, QueueInfo, Shutdown};
pub use retry::{RetryPolicy, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP};
pub use shared::Shared;
pub use state::{Tally, WorkerState, WorkerStatus};
pub use worker::RunError;
