//! Backups of the embedded store, and restoring one into a new store.
//!
//! A backup copies every tree while transactions wait (`Trees::pause_writes`): one consistent
//! state however busy the store is, with writes held for as long as the copy takes (reads go
//! on). The file is self-describing and checked whole before anything is restored:
//!
//! ```text
//! "jobhost-backup\n\0\0"   16 bytes
//! format                   u32 LE (1)
//! header                   u32 LE length + JSON: jobhost version, store format, time, progress
//! entries                  per key: tree (u8, an index into TREES), key and value (u32 LE
//!                          length + bytes each)
//! 0xFF                     end of entries
//! trailer                  u32 LE length + JSON: entries per tree
//! CRC-32                   u32 LE, of every byte before it
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::FORMAT_VERSION;
use super::keys::META_FORMAT;
use super::options::StoreOptions;
use super::state_file::{Progress, StateFile};
use super::store::{open_db, SledStore};
use super::tx::Trees;
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::BackupSummary;

const MAGIC: &[u8; 16] = b"jobhost-backup\n\0";
const BACKUP_FORMAT: u32 = 1;
const END: u8 = 0xFF;
/// No key or value of the store comes near this; a larger length means a damaged file.
const MAX_LEN: u32 = 1 << 30;

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    jobhost: String,
    store_format: u8,
    created_at: String,
    progress: Progress,
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Trailer {
    entries: BTreeMap<String, u64>,
}

impl SledStore {
    /// Writes a backup of the whole store to `out` (see the module header).
    pub fn backup_to(&self, out: &mut dyn Write) -> StoreResult<BackupSummary> {
        let live = self.live()?;
        let trees = &live.trees;
        let mut out = Crc::new(BufWriter::new(out));
        let io = |e| StoreError::Io { what: "cannot write the backup".to_owned(), error: e };
        let _writes_wait = trees.pause_writes();
        let header = Header {
            jobhost: env!("CARGO_PKG_VERSION").to_owned(),
            store_format: FORMAT_VERSION,
            created_at: crate::clock::rfc3339(crate::clock::SystemClock.now_micros()),
            progress: trees.progress()?,
        };
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&BACKUP_FORMAT.to_le_bytes()).map_err(io)?;
        write_block(&mut out, &serde_json::to_vec(&header).unwrap_or_default()).map_err(io)?;
        let mut trailer = Trailer::default();
        for (number, (name, tree)) in trees.all().into_iter().enumerate() {
            let mut count = 0;
            for entry in tree.iter() {
                let (key, value) = entry?;
                out.write_all(&[number as u8]).map_err(io)?;
                write_block(&mut out, &key).map_err(io)?;
                write_block(&mut out, &value).map_err(io)?;
                count += 1;
            }
            trailer.entries.insert(name.to_owned(), count);
        }
        out.write_all(&[END]).map_err(io)?;
        write_block(&mut out, &serde_json::to_vec(&trailer).unwrap_or_default()).map_err(io)?;
        let crc = out.hasher.clone().finalize();
        out.write_all(&crc.to_le_bytes()).map_err(io)?;
        out.inner.flush().map_err(io)?;
        Ok(summary(&trailer, out.bytes))
    }
}

fn summary(trailer: &Trailer, bytes: u64) -> BackupSummary {
    let count = |name: &str| trailer.entries.get(name).copied().unwrap_or(0);
    BackupSummary {
        jobs: count("jobs"),
        schedules: count("schedules"),
        entries: trailer.entries.values().sum(),
        bytes,
    }
}

/// Reads a whole backup file without restoring it: what it holds, or what is wrong with it.
pub fn inspect(file: &Path) -> StoreResult<BackupSummary> {
    let contents = read(file, &mut |_, _, _| Ok(()))?;
    Ok(summary(&contents.trailer, contents.bytes))
}

/// Restores the backup `file` into a new store at `dir`, which must not exist or be empty.
/// The whole file is checked (format, lengths, checksum) before anything is written.
pub fn restore(file: &Path, dir: &Path) -> StoreResult<BackupSummary> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(StoreError::Unusable(format!(
            "cannot restore into {}: it is not empty (move the store there away first)",
            dir.display()
        )));
    }
    // First pass: the file is whole and well-formed.
    let checked = read(file, &mut |_, _, _| Ok(()))?;
    if checked.header.store_format > FORMAT_VERSION {
        return Err(StoreError::NewerFormat { path: file.to_owned(), found: checked.header.store_format });
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Io { what: format!("cannot create {}", dir.display()), error: e })?;
    let db = open_db(dir, StoreOptions::default())?;
    let trees = Trees::open(&db, Default::default(), super::tx::unmoved())?;
    let all = trees.all();
    let mut batches: Vec<sled::Batch> = all.iter().map(|_| sled::Batch::default()).collect();
    let mut pending = 0;
    read(file, &mut |number, key, value| {
        batches[number].insert(key, value);
        pending += 1;
        if pending >= 10_000 {
            for (batch, (_, tree)) in batches.iter_mut().zip(&all) {
                tree.apply_batch(std::mem::take(batch))?;
            }
            pending = 0;
        }
        Ok(())
    })?;
    for (batch, (_, tree)) in batches.into_iter().zip(&all) {
        tree.apply_batch(batch)?;
    }
    if trees.meta.get(META_FORMAT)?.is_none() {
        trees.meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
    }
    db.flush()?;
    StateFile::new(dir).write(trees.progress()?)?;
    Ok(summary(&checked.trailer, checked.bytes))
}

/// Takes each entry of a backup as it is read: tree number, key, value.
type EntrySink<'a> = dyn FnMut(usize, &[u8], &[u8]) -> sled::Result<()> + 'a;

struct Contents {
    header: Header,
    trailer: Trailer,
    bytes: u64,
}

/// Reads a backup, handing each entry (tree number, key, value) to `entry`; an error names what
/// is wrong with the file.
fn read(path: &Path, entry: &mut EntrySink<'_>) -> StoreResult<Contents> {
    let bad =
        |what: String| StoreError::Unusable(format!("{} is not a usable backup: {what}", path.display()));
    let file = File::open(path)
        .map_err(|e| StoreError::Io { what: format!("cannot open {}", path.display()), error: e })?;
    let mut input = Crc::new(BufReader::new(file));
    let truncated = |_| bad("it ends too early (a copy cut short?)".to_owned());
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic).map_err(truncated)?;
    if &magic != MAGIC {
        return Err(bad("it does not start like a jobhost backup".to_owned()));
    }
    let format = read_u32(&mut input).map_err(truncated)?;
    if format != BACKUP_FORMAT {
        return Err(bad(format!("backup format {format}, this jobhost reads {BACKUP_FORMAT}")));
    }
    let header: Header = serde_json::from_slice(&read_block(&mut input).map_err(truncated)?)
        .map_err(|e| bad(format!("its header is unreadable ({e})")))?;
    let trees = Trees::NAMES.len();
    let mut counts = vec![0u64; trees];
    loop {
        let mut number = [0u8];
        input.read_exact(&mut number).map_err(truncated)?;
        if number[0] == END {
            break;
        }
        let number = usize::from(number[0]);
        if number >= trees {
            return Err(bad(format!("an entry names tree {number}, there are {trees}")));
        }
        let key = read_block(&mut input).map_err(truncated)?;
        let value = read_block(&mut input).map_err(truncated)?;
        entry(number, &key, &value)?;
        counts[number] += 1;
    }
    let trailer: Trailer = serde_json::from_slice(&read_block(&mut input).map_err(truncated)?)
        .map_err(|e| bad(format!("its trailer is unreadable ({e})")))?;
    let computed = input.hasher.clone().finalize();
    let stored = read_u32(&mut input).map_err(truncated)?;
    if computed != stored {
        return Err(bad("its checksum does not match (the file was changed or damaged)".to_owned()));
    }
    // A backup from before a tree was added does not name it (and holds none of its entries).
    let found = Trailer {
        entries: Trees::NAMES
            .iter()
            .map(|n| (*n).to_owned())
            .zip(counts)
            .filter(|(name, count)| *count > 0 || trailer.entries.contains_key(name))
            .collect(),
    };
    if found != trailer {
        return Err(bad("its entries do not add up to what its trailer says".to_owned()));
    }
    let mut rest = [0u8];
    if input.inner.read(&mut rest).map_err(truncated)? != 0 {
        return Err(bad("it goes on after its checksum".to_owned()));
    }
    Ok(Contents { header, trailer, bytes: input.bytes })
}

fn write_block(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(bytes)
}

fn read_u32(input: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_block(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let len = read_u32(input)?;
    if len > MAX_LEN {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "length out of range"));
    }
    let mut bytes = vec![0u8; len as usize];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A reader or writer that keeps the CRC-32 and the count of the bytes through it.
struct Crc<T> {
    inner: T,
    hasher: crc32fast::Hasher,
    bytes: u64,
}

impl<T> Crc<T> {
    fn new(inner: T) -> Self {
        Crc { inner, hasher: crc32fast::Hasher::new(), bytes: 0 }
    }
}

impl<T: Write> Write for Crc<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read> Read for Crc<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}
