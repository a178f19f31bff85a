//! Whether the store can write, and the probe that tells when it can again.
//!
//! sled keeps the first I/O error of its log writer (a full disk, a failing device) and fails
//! every later write with it until the database is opened again: it never retries by itself.
//! The store records that reason here when a flush fails; `SledStore::heal` probes the data
//! directory and, once a real write and sync succeed there, reopens the database.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::store::error::{sled_words, StoreError};
use crate::sync;

/// Why the store cannot write, if it cannot.
#[derive(Default)]
pub struct Health {
    /// Read on every claim: an atomic, so a healthy store pays no lock.
    failed: AtomicBool,
    error: Mutex<Option<sled::Error>>,
}

impl Health {
    /// Records a failed write; the first reason is kept (later ones follow from it).
    pub fn fail(&self, e: &sled::Error) {
        if let sled::Error::Io(_) = e {
            let mut error = sync::lock(&self.error);
            if error.is_none() {
                log::error!("the store cannot write: {}; writes are refused until it can", sled_words(e));
                *error = Some(e.clone());
                self.failed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// [`Health::fail`] for the store's own files (the claims journal).
    pub fn fail_store(&self, e: &StoreError) {
        match e {
            StoreError::Journal { error, .. } | StoreError::Io { error, .. } => {
                // Kept as sled keeps its own: kind and text (an io::Error is not Clone).
                self.fail(&sled::Error::Io(std::io::Error::new(error.kind(), error.to_string())));
            }
            StoreError::Sled(e) => self.fail(e),
            _ => {}
        }
    }

    pub fn clear(&self) {
        *sync::lock(&self.error) = None;
        self.failed.store(false, Ordering::SeqCst);
    }

    /// The write error that stopped the store, if one did.
    pub fn error(&self) -> Option<sled::Error> {
        if !self.failed.load(Ordering::SeqCst) {
            return None;
        }
        sync::lock(&self.error).clone()
    }

    pub fn reason(&self) -> Option<String> {
        self.error().map(|e| sled_words(&e))
    }
}

/// The probe file's size: more than sled needs to reopen and write its next log segment
/// (segments are 512 KiB), so a disk with only a few bytes free does not count as writable.
const PROBE_BYTES: usize = 2 * 1024 * 1024;

/// Writes, syncs and removes a file in `dir`: whether the disk takes a write now.
pub fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(".write-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}
