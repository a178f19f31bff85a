//! The state file beside the store (`store.state`): how far the store is known to have got.
//!
//! sled recovers from a torn or truncated log by dropping what it cannot read, silently: a
//! `db` file cut short opens as an older store, one cut to under a segment or replaced opens
//! empty, and ids would be issued again. So the store writes down, after every flush that
//! covered them (at most once a second) and at every clean stop, three values that only grow:
//! the last job id, the last schedule id and the latest finish (time and id, kept through
//! removals and retries by a high-water mark). At open, a store whose values are below the
//! file's has lost data, and the host refuses it unless the operator accepts the loss.
//!
//! The file is small JSON, replaced atomically (written aside, synced, renamed, directory
//! synced), so it is either the old or the new one after a crash.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::error::{StoreError, StoreResult};

pub const FILE_NAME: &str = "store.state";

/// How far a store has got: every field only grows as the store is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// The highest job id stored or ever deleted.
    pub last_job_id: u64,
    /// The highest schedule id issued.
    pub last_schedule_id: u64,
    /// The latest finish, as `[finished at (µs), job id]`, including finished jobs removed or
    /// retried since.
    pub last_finish: (i64, u64),
}

impl Progress {
    /// What `recorded` has that this store does not, in words; `None` if it has everything.
    pub fn missing(&self, recorded: &Progress) -> Option<String> {
        let mut missing = Vec::new();
        if self.last_job_id < recorded.last_job_id {
            missing.push(format!(
                "job ids up to {} were issued, it holds ids up to {}",
                recorded.last_job_id, self.last_job_id
            ));
        }
        if self.last_schedule_id < recorded.last_schedule_id {
            missing.push(format!(
                "schedule ids up to {} were issued, it holds ids up to {}",
                recorded.last_schedule_id, self.last_schedule_id
            ));
        }
        if self.last_finish < recorded.last_finish {
            missing.push(format!(
                "job {} finished at {}, and its outcome is gone",
                recorded.last_finish.1,
                crate::clock::rfc3339(recorded.last_finish.0)
            ));
        }
        (!missing.is_empty()).then(|| missing.join("; "))
    }

    /// The larger of each value: what a store that accepted a loss continues from.
    pub fn max(self, other: Progress) -> Progress {
        Progress {
            last_job_id: self.last_job_id.max(other.last_job_id),
            last_schedule_id: self.last_schedule_id.max(other.last_schedule_id),
            last_finish: self.last_finish.max(other.last_finish),
        }
    }
}

/// The file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub progress: Progress,
    /// When it was written (RFC 3339), for the operator reading an error.
    pub written_at: String,
}

pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> StateFile {
        StateFile { path: dir.join(FILE_NAME) }
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file says; `None` if there is none (a new store, or one from before the file).
    pub fn read(&self) -> StoreResult<Option<Recorded>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(self.error("cannot read", error)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            StoreError::Unusable(format!(
                "the state file {} is unreadable ({e}); move it away to start without the check",
                self.path.display()
            ))
        })
    }

    /// Replaces the file with `progress`, atomically.
    pub fn write(&self, progress: Progress) -> StoreResult<()> {
        let recorded =
            Recorded { progress, written_at: crate::clock::rfc3339(crate::clock::SystemClock.now_micros()) };
        let aside = self.path.with_extension("state.new");
        let written = (|| {
            let mut file = File::create(&aside)?;
            file.write_all(serde_json::to_string_pretty(&recorded).unwrap_or_default().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&aside, &self.path)?;
            // The rename is durable once the directory is.
            File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
        })();
        written.map_err(|e| self.error("cannot write", e))
    }

    fn error(&self, what: &str, error: std::io::Error) -> StoreError {
        StoreError::Io { what: format!("{what} the state file {}", self.path.display()), error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_behind_its_file_is_told_what_it_lacks() {
        let recorded = Progress { last_job_id: 3300, last_schedule_id: 2, last_finish: (1_000_000, 3299) };
        let same = recorded;
        assert_eq!(same.missing(&recorded), None);
        let ahead = Progress { last_job_id: 3400, ..recorded };
        assert_eq!(ahead.missing(&recorded), None);
        let truncated = Progress { last_job_id: 3210, last_schedule_id: 2, last_finish: (900_000, 3100) };
        let missing = truncated.missing(&recorded).unwrap();
        assert!(missing.contains("job ids up to 3300 were issued, it holds ids up to 3210"), "{missing}");
        assert!(missing.contains("job 3299 finished"), "{missing}");
        assert_eq!(Progress::default().missing(&Progress::default()), None);
        assert_eq!(truncated.max(recorded).last_job_id, 3300);
    }

    #[test]
    fn the_file_is_replaced_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert!(file.read().unwrap().is_none());
        let progress = Progress { last_job_id: 7, last_schedule_id: 1, last_finish: (5, 6) };
        file.write(progress).unwrap();
        assert_eq!(file.read().unwrap().unwrap().progress, progress);
        assert!(!dir.path().join("store.state.new").exists());
        std::fs::write(file.path(), "{not json").unwrap();
        let err = file.read().unwrap_err().to_string();
        assert!(err.contains("store.state is unreadable"), "{err}");
    }
}
