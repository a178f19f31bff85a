//! The service: the [`Host`] facade the API, the CLI and the scheduler loop use, over the
//! store and the worker pool.
//!
//! The files: `host` (the struct, reads, cancel, retry, start, remove, queues, shutdown),
//! `admission` (adding jobs and their checks), `schedules` (schedule CRUD and the scheduler's
//! pass), `idempotency` (creations under an Idempotency-Key), `groups`
//! (a batch's group read and cancelled), `maintenance` (the lease reaper and the retention sweeper), `hosts` (this host among
//! those sharing the store), `error` (`HostError`). Opening a store under a host is the
//! composition root's (`runtime`).
//!
//! **Invariant:** nothing above this module (server, CLI, scheduler loop) names the store or
//! the processor's internals; the value types of the service's own API are re-exported here.

mod admission;
mod bulk;
mod error;
mod groups;
mod history;
mod host;
mod hosts;
mod idempotency;
mod limits;
mod maintenance;
mod operations;
mod pauses;
mod schedules;

pub use admission::{AddJob, MAX_PARENTS, MAX_UNIQUE_KEY_LEN};
pub use bulk::{Action, OperationStatus, Phase, Selection, MAX_SELECTED};
pub use error::{FieldError, HostError};
pub use host::Host;
pub use hosts::HostStatus;
pub use idempotency::RequestKey;
pub use limits::MAX_RATE_PER_MS;
pub use schedules::{NewSchedule, SchedulePatch};

pub use crate::events::JobEvent;
pub use crate::processor::{
    ClaimPace, Plugins, ProcessorConfig, QueueConfig, QueueInfo, Shutdown, WorkerState, WorkerStatus,
    DEFAULT_CLAIM_BATCH,
};
pub use crate::store::{
    Added, ClaimDurability, ClaimFilter, Created, Group, GroupState, Keyed, ListFilter, Remembered, Removal,
    StoreOptions,
};
