//! What a service call can fail with, in the terms its callers (the API, the CLI) answer in:
//! bad input, an unknown job or schedule, a refused transition, or a storage failure.

use crate::job::{JobId, Refused, ScheduleId};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("unknown job factory `{}`; known factories: {}", crate::text::clip(name), known.join(", "))]
    UnknownFactory { name: String, known: Vec<String> },
    #[error("invalid {field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The input does not match its factory's schema: each failing field.
    #[error("invalid input for `{factory}`: {}", crate::plugins::describe_fields(errors))]
    InvalidInput { factory: String, errors: Vec<FieldError> },
    /// Some jobs of a batch are invalid (by index); nothing was added.
    #[error("{} of {total} jobs are invalid; nothing was added", items.len())]
    InvalidBatch { total: usize, items: Vec<(usize, HostError)> },
    /// A job's parents cannot be: one does not exist, one is named twice, a batch's jobs wait
    /// for each other in a cycle, too many.
    #[error("invalid depends_on: {0}")]
    Dependencies(String),
    /// A parent named by id is not stored (the store's check, in the transaction that adds).
    #[error("invalid depends_on: no job with id {0} (it never existed, or was removed)")]
    UnknownParent(JobId),
    #[error("no job with id {0}")]
    NotFound(JobId),
    #[error("no schedule with id {0}")]
    ScheduleNotFound(ScheduleId),
    #[error("no group with id {0}")]
    GroupNotFound(JobId),
    #[error("no limit on {0}")]
    LimitNotFound(String),
    /// As many bulk operations as a host runs at once are running (each reads and writes the
    /// store flat out): one more waits until one ends.
    #[error("{0} bulk operations are running on this host, the most it runs at once: wait for one to end (GET /v1/operations) or cancel one")]
    OperationsBusy(usize),
    /// The job's status does not allow what was asked.
    #[error(transparent)]
    Refused(Refused),
    /// The job cannot be removed: a job that depends on it has not finished (it reads the
    /// job's outcome when it runs).
    #[error("job {id} cannot be removed: job {dependent} ({status}) depends on it")]
    Needed { id: JobId, dependent: JobId, status: crate::job::Status },
    /// Retrying would duplicate a pending job's unique key.
    #[error(transparent)]
    KeyHeld(StoreError),
    /// The store failed: not the caller's fault.
    #[error(transparent)]
    Store(StoreError),
    /// An Idempotency-Key came again with a different request.
    #[error("the Idempotency-Key {:?} was used for a different request (another method, path or body) within its window; use a new key for a new request", crate::text::clip(.0))]
    KeyReused(String),
    /// No worker process could be started to run jobs.
    #[error("no worker process: {0}")]
    NoWorker(String),
}

pub use crate::plugins::FieldError;

impl From<StoreError> for HostError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => HostError::NotFound(id),
            StoreError::ScheduleNotFound(id) => HostError::ScheduleNotFound(id),
            StoreError::Refused(refused) => HostError::Refused(refused),
            held @ StoreError::KeyHeld { .. } => HostError::KeyHeld(held),
            StoreError::UnknownParent(id) => HostError::UnknownParent(id),
            other => HostError::Store(other),
        }
    }
}

impl HostError {
    /// The store was asked to change and its answer was lost: the change may or may not be
    /// kept (a repeat with the same idempotency key finds out).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, HostError::Store(StoreError::OutcomeUnknown(_)))
    }

    pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        HostError::Invalid { field, message: message.into() }
    }
}
