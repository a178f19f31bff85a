//! The claims journal: how an attempt is counted across a host crash without flushing each
//! claim to disk.
//!
//! A claim changes a job's attempt count before its plugin runs. If that change only sat in
//! sled's write buffer (in this process's memory) when a plugin aborted the process, the
//! attempt would never be counted and a poison job would crash the host forever. Flushing each
//! claim costs a disk sync per job. The journal instead appends 16 bytes per claim with one
//! `write(2)`: once `write` returns, the kernel holds the bytes, so they survive the death of
//! this process (not of the machine: the store's flush interval covers that, and losing an
//! attempt count to a power cut only means the job runs again, which at-least-once allows).
//!
//! Each record says "job `id` now has `attempts` attempts" and is appended after the store's
//! transaction commits, for every change of a job's attempt count (claim, release, retry); the
//! last record for a job wins. At open, [`replay`](ClaimJournal::replay) hands the previous
//! process's records to the store, which counts the attempts it lost. A checkpoint (store
//! flush, then truncate, under the journal's lock so no record slips between them) keeps the
//! file small.
//!
//! Record: job id (u64 LE), attempts (u32 LE), CRC-32 of those 12 bytes (u32 LE). A machine
//! crash can leave a torn tail; records that fail their checksum are skipped and reported.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::job::JobId;
use crate::store::error::{StoreError, StoreResult};
use crate::sync;

const RECORD: usize = 16;
/// The journal is checkpointed once it holds this many bytes (65,536 claims): a store flush
/// every few seconds at full speed, and at most 1 MiB to read back at open.
pub const CHECKPOINT_BYTES: u64 = 1 << 20;

/// The file name inside the store's directory.
pub const FILE_NAME: &str = "claims.journal";

pub struct ClaimJournal {
    path: PathBuf,
    /// The file and its length. Appends and checkpoints take this lock, so a checkpoint never
    /// truncates a record whose change it did not flush.
    file: Mutex<(File, u64)>,
}

/// What the previous process left: the last attempt count journaled for each job.
#[derive(Debug, Default, PartialEq)]
pub struct Replay {
    pub attempts: BTreeMap<JobId, u32>,
    /// Records that failed their checksum, plus a torn tail of fewer than 16 bytes.
    pub unreadable_bytes: u64,
}

fn encode(id: JobId, attempts: u32) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..8].copy_from_slice(&id.0.to_le_bytes());
    record[8..12].copy_from_slice(&attempts.to_le_bytes());
    let crc = crc32fast::hash(&record[..12]);
    record[12..].copy_from_slice(&crc.to_le_bytes());
    record
}

/// One record's bytes, for the test that pins the format.
#[cfg(test)]
pub(super) fn golden_record(id: JobId, attempts: u32) -> [u8; RECORD] {
    encode(id, attempts)
}

fn decode(record: &[u8]) -> Option<(JobId, u32)> {
    let (body, crc) = record.split_at(12);
    // Both conversions take slices of exactly the array's length, so they cannot fail.
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some((
        JobId(u64::from_le_bytes(body[..8].try_into().ok()?)),
        u32::from_le_bytes(body[8..].try_into().ok()?),
    ))
}

impl ClaimJournal {
    /// Opens (or creates) the journal in `dir`, keeping what the previous process wrote until
    /// the first checkpoint.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let path = dir.join(FILE_NAME);
        let opened = OpenOptions::new().read(true).append(true).create(true).open(&path);
        let file = opened.and_then(|f| Ok((f.metadata()?.len(), f)));
        match file {
            Ok((len, file)) => Ok(ClaimJournal { path, file: Mutex::new((file, len)) }),
            Err(error) => Err(StoreError::Journal { path, error }),
        }
    }

    fn error(&self, error: std::io::Error) -> StoreError {
        StoreError::Journal { path: self.path.clone(), error }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every record in the file.
    pub fn replay(&self) -> StoreResult<Replay> {
        let mut guard = sync::lock(&self.file);
        let (file, _) = &mut *guard;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| self.error(e))?;
        let mut replay = Replay::default();
        let records = bytes.chunks_exact(RECORD);
        replay.unreadable_bytes = records.remainder().len() as u64;
        for record in records {
            match decode(record) {
                Some((id, attempts)) => {
                    replay.attempts.insert(id, attempts);
                }
                None => replay.unreadable_bytes += RECORD as u64,
            }
        }
        Ok(replay)
    }

    /// Appends "job `id` now has `attempts` attempts" for each record, in one write; returns
    /// the journal's length after it.
    pub fn append(&self, records: &[(JobId, u32)]) -> StoreResult<u64> {
        let bytes: Vec<u8> = records.iter().flat_map(|&(id, attempts)| encode(id, attempts)).collect();
        let mut guard = sync::lock(&self.file);
        let (file, len) = &mut *guard;
        // One `write` of the whole record: a process death cannot tear it. A full disk can
        // (part written, then ENOSPC): cut back to the last whole record, so the records after
        // it stay aligned.
        if let Err(e) = file.write_all(&bytes) {
            let _ = file.set_len(*len);
            return Err(self.error(e));
        }
        *len += bytes.len() as u64;
        Ok(*len)
    }

    /// Runs `flush` (which must make every change the journal records durable in the store),
    /// then empties the journal, with appends held off in between.
    pub fn checkpoint(&self, flush: impl FnOnce() -> StoreResult<()>) -> StoreResult<()> {
        let mut guard = sync::lock(&self.file);
        flush()?;
        let (file, len) = &mut *guard;
        file.set_len(0).map_err(|e| self.error(e))?;
        *len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_record_per_job_wins_and_a_checkpoint_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ClaimJournal::open(dir.path()).unwrap();
        journal.append(&[(JobId(7), 1), (JobId(9), 1)]).unwrap();
        assert_eq!(journal.append(&[(JobId(7), 0)]).unwrap(), 48, "one write for many records");
        drop(journal);

        let journal = ClaimJournal::open(dir.path()).unwrap();
        let replay = journal.replay().unwrap();
        assert_eq!(
            replay,
            Replay { attempts: BTreeMap::from([(JobId(7), 0), (JobId(9), 1)]), unreadable_bytes: 0 }
        );
        journal.checkpoint(|| Ok(())).unwrap();
        assert_eq!(journal.replay().unwrap(), Replay::default());
        assert_eq!(std::fs::metadata(journal.path()).unwrap().len(), 0);
    }

    #[test]
    fn a_failed_flush_keeps_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ClaimJournal::open(dir.path()).unwrap();
        journal.append(&[(JobId(3), 2)]).unwrap();
        let failed = journal.checkpoint(|| Err(StoreError::NotFound(JobId(3))));
        assert!(failed.is_err());
        assert_eq!(journal.replay().unwrap().attempts, BTreeMap::from([(JobId(3), 2)]));
    }

    #[test]
    fn torn_and_corrupt_records_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ClaimJournal::open(dir.path()).unwrap();
        journal.append(&[(JobId(1), 1)]).unwrap();
        journal.append(&[(JobId(2), 1)]).unwrap();
        drop(journal);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xff; // a bit flip in the second record's id
        bytes.extend_from_slice(&[0, 0, 0, 0, 0]); // a torn tail
        bytes.extend_from_slice(&[0; RECORD]); // a page of zeros after a power cut
        std::fs::write(&path, bytes).unwrap();

        let replay = ClaimJournal::open(dir.path()).unwrap().replay().unwrap();
        assert_eq!(replay.attempts, BTreeMap::from([(JobId(1), 1)]));
        assert_eq!(replay.unreadable_bytes, 16 + 16 + 5);
    }
}
