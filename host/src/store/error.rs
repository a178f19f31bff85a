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
    #[error(
        "the store at {} is damaged: {detail}. Restore a backup (`jobhost store restore FILE --data-dir DIR`, into an empty directory), or move the directory away to start with an empty store",
        path.display()
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the store at {} has lost data: {missing} (its state file, written {written_at}, says so; a truncated or replaced `db` file, or an older copy put in its place, does this). Restore a backup, or start with --accept-data-loss to go on with what is left (ids continue after the highest ever issued)",
        path.display()
    )]
    Behind { path: PathBuf, missing: String, written_at: String },
    #[error(
        "the store at {} opens empty although its `db` file held data (sled dropped what it could not read: a damaged or zeroed block), and its state file, which would say what it held, is missing. Restore a backup, or start with --accept-data-loss to begin again from an empty store (job ids start over at 1)",
        path.display()
    )]
    Wiped { path: PathBuf },
    #[error("stored record {what} is unreadable: {error}")]
    Corrupt { what: String, error: CodecError },
    #[error("no job with id {0}")]
    NotFound(JobId),
    #[error("no schedule with id {0}")]
    ScheduleNotFound(ScheduleId),
    /// A new job names a parent that does not exist (never did, or was removed).
    #[error("depends_on: no job with id {0}")]
    UnknownParent(JobId),
    /// The job's status does not allow the change asked for.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Retrying the job would make a second pending job with the same unique key.
    #[error(
        "job {id} cannot be retried: job {holder} holds its unique key `{}` while it is pending",
        crate::text::clip(key)
    )]
    KeyHeld { id: JobId, key: String, holder: JobId },
    #[error("claims journal {path}: {}", io_words(error))]
    Journal { path: PathBuf, error: std::io::Error },
    #[error("storage error: {}", sled_words(.0))]
    Sled(#[from] sled::Error),
    /// The store stopped writing (see [`StoreError::is_unavailable`]) and is being reopened.
    #[error("the store cannot write now: {0}")]
    Unavailable(String),
    /// The change was sent, and the answer lost: the connection broke at commit, or the
    /// flush after it failed. It may or may not be kept.
    #[error("the store's answer was lost: {0}")]
    OutcomeUnknown(String),
    /// A file that is not what it should be (a backup, the state file), or a place it cannot
    /// go; the message says which and why.
    #[error("{0}")]
    Unusable(String),
    #[error("cannot start the store's flush thread: {0}")]
    Flusher(std::io::Error),
    #[error("{what}: {}", io_words(error))]
    Io { what: String, error: std::io::Error },
    /// The database refused a statement (its message); not a lost connection, which is
    /// `Unavailable`.
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// The store could not write (a full disk, a failing device) or is reopening after that:
    /// the call may succeed later, nothing it was asked to change was acknowledged.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_))
                | StoreError::Journal { .. }
                | StoreError::Unavailable(_)
                | StoreError::OutcomeUnknown(_)
        )
    }
}

/// What a sled error means, in words: sled wraps the I/O errors it keeps in a debug dump
/// (`Custom { kind: StorageFull, ... }`), so they are named from their kind.
pub fn sled_words(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => match io_words(io) {
            // Not one of the named kinds: still a debug dump inside.
            words if io.get_ref().is_some() && words == io.to_string() => format!("I/O error: {}", io.kind()),
            words => words,
        },
        other => other.to_string(),
    }
}

/// An I/O error in words an operator acts on: a full disk says "disk full".
pub fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull => "disk full (no space left on device)".to_owned(),
        ErrorKind::QuotaExceeded => "disk quota exceeded".to_owned(),
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
        _ => e.to_string(),
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_full_disk_is_named_in_words_however_sled_wrapped_it() {
        let enospc = Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(io_words(&enospc), "disk full (no space left on device)");
        // sled's clone of an error: a debug dump inside a custom error of the same kind.
        let cloned = sled::Error::Io(Error::new(enospc.kind(), format!("{enospc:?}")));
        assert_eq!(
            StoreError::Sled(cloned).to_string(),
            "storage error: disk full (no space left on device)"
        );
        let other = sled::Error::Io(Error::new(ErrorKind::PermissionDenied, "Os { code: 13 }"));
        assert_eq!(sled_words(&other), "I/O error: permission denied");
        assert!(StoreError::Sled(other).is_unavailable());
        assert_eq!(io_words(&Error::from_raw_os_error(libc::EIO)), "Input/output error (os error 5)");
    }
}
