//! What a store call can fail with.

use std::path::PathBuf;

use super::sled::codec::{CodecError, FORMAT_VERSION};
use crate::job::{JobId, Refused, ScheduleId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {0} is in use by another process (only one process can open an embedded store)")]
    Locked(PathBuf),
    #[error("the store at {path} was written by a newer jobhost (format {found}; this build reads {FORMAT_VERSION})")]
    NewerFormat { path: PathBuf, found: u8 },
    #[error("stored record {what} is unreadable: {error}")]
    Corrupt { what: String, error: CodecError },
    #[error("no job with id {0}")]
    NotFound(JobId),
    #[error("no schedule with id {0}")]
    ScheduleNotFound(ScheduleId),
    /// The job's status does not allow the change asked for.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Retrying the job would make a second pending job with the same unique key.
    #[error(
        "job {id} cannot be retried: job {holder} holds its unique key `{}` while it is pending",
        crate::text::clip(key)
    )]
    KeyHeld { id: JobId, key: String, holder: JobId },
    #[error("claims journal {path}: {error}")]
    Journal { path: PathBuf, error: std::io::Error },
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot start the store's flush thread: {0}")]
    Flusher(std::io::Error),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

pub type StoreResult<T> = Result<T, StoreError>;
