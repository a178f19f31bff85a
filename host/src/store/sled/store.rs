//! The embedded store's struct: what it holds, opening it (format check, claims journal,
//! id counter, counts), and the flush and journal calls the capability files share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use super::claim_journal::{self, ClaimJournal};
use super::codec::{CodecError, FORMAT_VERSION, OLDEST_READABLE};
use super::counts::{self, Counts};
use super::damage;
use super::durability::Combiner;
use super::flusher::StateKeeper;
use super::flusher::{Flusher, Flushes};
use super::health::{self, Health};
use super::keys::{self, META_FINISHED_HIGH_WATER, META_FORMAT, META_ID_HIGH_WATER, META_SCHEDULE_ID};
use super::options::{ClaimDurability, OnLoss, StoreOptions};
use super::state_file::{Progress, StateFile};
use super::tx::{AfterMove, Trees};
use crate::job::{Job, JobId, Status};
use crate::store::error::{io_words, StoreError, StoreResult};
use crate::store::types::Notice;
use crate::sync;

/// The embedded store. Its fields are the module's own: the capability files (`jobs`,
/// `claims`, `schedules`, `recovery`) implement its methods.
pub struct SledStore {
    pub(super) path: PathBuf,
    options: StoreOptions,
    /// The open database; `None` only while `heal` reopens it. Calls clone the `Arc` and
    /// release the lock at once, so no lock is held across a call and a reopen waits only for
    /// the calls in flight.
    live: RwLock<Option<Arc<Live>>>,
    pub(super) health: Arc<Health>,
    pub(super) claims: ClaimDurability,
    pub(super) journal: ClaimJournal,
    /// What the previous process journaled, until `recover_all` applies it.
    pub(super) journaled: Mutex<BTreeMap<JobId, u32>>,
    /// The last job id issued. Ids are consecutive (sled's own `generate_id` jumps by a
    /// million after a restart, which users would see); at open it is the highest id stored
    /// or ever deleted.
    last_id: AtomicU64,
    /// Concurrent additions (without unique keys), committed in shared transactions.
    pub(super) adds: Combiner<Job>,
    /// One claimer at a time in this process: claimers would otherwise race for the same
    /// first key and retry their transactions. Held only for the claim's transaction, not
    /// for its flush, so concurrent claims still share flushes.
    pub(super) claim_lock: Mutex<()>,
    /// One add with a unique key at a time: the check for a pending holder and the insert
    /// must not interleave with another add of the same key.
    pub(super) unique_lock: Mutex<()>,
    /// One reopen at a time.
    heal_lock: Mutex<()>,
    /// Jobs per (queue, status); see `counts`.
    pub(super) counts: Arc<Counts>,
    /// What a commit does with the dependents it moved (see `tx::AfterMove`): kept for the
    /// trees of a reopened database.
    after_move: AfterMove,
    /// Where the host wants to hear of jobs made ready by another job's change (dependents
    /// released), once it asked (`on_notice`).
    pub(super) notices: Arc<OnceLock<NoticeSink>>,
}

/// The host's ear for [`Notice`]s.
pub(super) type NoticeSink = Arc<dyn Fn(Notice) + Send + Sync>;

/// Dependents moved by a commit: counted, and the queues of those released woken.
fn after_move(counts: Arc<Counts>, notices: Arc<OnceLock<NoticeSink>>) -> AfterMove {
    Arc::new(move |moved: &[(Status, Job)]| {
        let mut ready: Vec<&str> = Vec::new();
        for (from, job) in moved {
            counts.count(job, Some(*from), Some(job.status));
            if matches!(job.status, Status::Queued | Status::Scheduled)
                && !ready.contains(&job.queue.as_str())
            {
                ready.push(&job.queue);
            }
        }
        if let Some(tell) = notices.get() {
            for queue in ready {
                tell(Notice::Ready(Some(queue.to_owned())));
            }
        }
    })
}

/// One opening of the database: dropped (flusher stopped, files closed) before the next.
pub(super) struct Live {
    /// Stopped first (after a last flush), while the database is still open.
    _flusher: Flusher,
    pub flushes: Arc<Flushes>,
    pub trees: Trees,
    pub db: sled::Db,
}

impl SledStore {
    /// Opens (or creates) the store at `path`. The caller then runs `recover_all`: one
    /// process holds an embedded store, so every job still `processing` belongs to a host
    /// that died.
    pub fn open(path: &Path, options: StoreOptions) -> StoreResult<Self> {
        // sled panics on some damaged files rather than failing (see `damage`).
        let damaged = |detail: String| StoreError::Damaged { path: path.to_owned(), detail };
        match damage::contain(|| SledStore::open_checked(path, options)) {
            Err(panic) => Err(damaged(format!("sled cannot read it ({panic})"))),
            Ok(Err(StoreError::Sled(
                e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_)),
            ))) => Err(damaged(format!("sled cannot read it ({e})"))),
            Ok(Err(StoreError::Corrupt { what, error })) => {
                Err(damaged(format!("stored record {what} is unreadable ({error})")))
            }
            Ok(result) => result,
        }
    }

    fn open_checked(path: &Path, options: StoreOptions) -> StoreResult<Self> {
        // A `db` file with data that opens without even its format mark has lost everything.
        let existed = path.join("db").metadata().is_ok_and(|m| m.len() > 0);
        let mut wiped = false;
        let health = Arc::new(Health::default());
        let counts = Arc::new(Counts::default());
        let notices: Arc<OnceLock<NoticeSink>> = Arc::default();
        let after_move = after_move(counts.clone(), notices.clone());
        let live = Live::open(path, options, &health, after_move.clone())?;
        let meta = &live.trees.meta;
        match meta.get(META_FORMAT)?.map(|v| v.first().copied().unwrap_or(0)) {
            Some(FORMAT_VERSION) => {}
            Some(found) if found > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat { path: path.to_owned(), found });
            }
            // Older records are upgraded as they are read (see `codec`); new ones are written in
            // the current format.
            Some(found) if found >= OLDEST_READABLE => {
                log::info!("store at {}: format {found} upgraded to {FORMAT_VERSION}", path.display());
                meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
            Some(found) => {
                return Err(StoreError::Corrupt {
                    what: "meta/format_version".to_owned(),
                    error: CodecError::Unknown(found),
                });
            }
            None => {
                wiped = existed;
                meta.insert(META_FORMAT, &[FORMAT_VERSION])?;
            }
        }
        let progress = match options.on_loss {
            OnLoss::Inspect => live.trees.progress()?,
            on_loss => live.check_progress(path, on_loss == OnLoss::Accept, wiped)?,
        };
        let journal = ClaimJournal::open(path)?;
        let replay = journal.replay()?;
        if replay.unreadable_bytes > 0 {
            log::warn!(
                "{}: {} unreadable bytes skipped (a torn write from a machine crash)",
                journal.path().display(),
                replay.unreadable_bytes
            );
        }
        let store = SledStore {
            path: path.to_owned(),
            options,
            last_id: AtomicU64::new(progress.last_job_id),
            live: RwLock::new(Some(Arc::new(live))),
            health,
            claims: options.claims,
            journal,
            journaled: Mutex::new(replay.attempts),
            adds: Combiner::new(),
            claim_lock: Mutex::new(()),
            unique_lock: Mutex::new(()),
            heal_lock: Mutex::new(()),
            counts,
            after_move,
            notices,
        };
        let trees = &store.live()?.trees;
        let sizes = counts::rebuild_and_size(&store.counts, trees)?;
        if let Some(disagreement) = store.counts.disagreement(sizes) {
            if options.on_loss != OnLoss::Inspect {
                return Err(StoreError::Damaged {
                    path: path.to_owned(),
                    detail: format!("its indexes disagree with its records ({disagreement})"),
                });
            }
        }
        Ok(store)
    }

    /// The open database, for one call.
    pub(super) fn live(&self) -> StoreResult<Arc<Live>> {
        sync::read(&self.live).clone().ok_or_else(|| {
            StoreError::Unavailable(self.health.reason().unwrap_or_else(|| "it is being reopened".to_owned()))
        })
    }

    /// Once the disk takes writes again, reopens the database that stopped writing (sled never
    /// retries a failed write by itself): changes it had not flushed are lost as in a crash,
    /// acknowledged ones are on disk. True if the store can write afterwards.
    pub(super) fn reopen_when_writable(&self) -> StoreResult<bool> {
        let _one = sync::lock(&self.heal_lock);
        let Some(reason) = self.health.reason() else { return Ok(true) };
        if let Some(live) = sync::read(&self.live).clone() {
            live.flushes.kick();
        }
        if let Err(e) = health::probe(&self.path) {
            log::debug!("store at {} still cannot write: {}", self.path.display(), io_words(&e));
            return Ok(false);
        }
        let old = sync::write(&self.live).take();
        if let Some(old) = old {
            // Calls in flight finish on the old database (failing to write); sled's lock on
            // its files goes with the last of them.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(live) => {
                        drop(live);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        old = shared;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break,
                }
            }
        }
        let live = match Live::open(&self.path, self.options, &self.health, self.after_move.clone()) {
            Ok(live) => live,
            Err(e) => {
                log::warn!("store at {}: reopening failed, trying again: {e}", self.path.display());
                return Ok(false);
            }
        };
        let progress = live.trees.progress()?;
        self.last_id.fetch_max(progress.last_job_id, Ordering::SeqCst);
        self.counts.rebuild(&live.trees)?;
        if self.options.on_loss != OnLoss::Inspect {
            let file = StateFile::new(&self.path);
            live.flushes.keep_state(StateKeeper::new(file, live.trees.clone(), progress));
        }
        *sync::write(&self.live) = Some(Arc::new(live));
        self.health.clear();
        log::info!("store at {} writes again (it could not: {reason})", self.path.display());
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.live()?.db.size_on_disk()?)
    }

    /// The next job id (ids are taken in commit order: see `add`).
    pub(super) fn next_id(&self) -> JobId {
        JobId(self.last_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// The first of `n` consecutive new ids.
    pub(super) fn next_ids(&self, n: u64) -> JobId {
        JobId(self.last_id.fetch_add(n, Ordering::Relaxed) + 1)
    }

    /// Returns once the changes made so far are on disk. A failed flush leaves a change made
    /// in memory that the disk may or may not have: its outcome is unknown (a store reopened
    /// after the failure has what reached the disk).
    pub(super) fn durable(&self) -> StoreResult<()> {
        self.live()?.flushes.durable().map_err(|e| {
            StoreError::OutcomeUnknown(format!(
                "the change may not be on disk: {}",
                crate::store::error::sled_words(&e)
            ))
        })
    }

    /// See `Flushes::pace`: a claim waits for a flush once an interval.
    pub(super) fn pace(&self) -> StoreResult<()> {
        Ok(self.live()?.flushes.pace()?)
    }

    /// Records jobs' new attempt counts in the claims journal (journal mode), checkpointing
    /// the journal when it has grown large.
    pub(super) fn journal_attempts(&self, records: &[(JobId, u32)]) -> StoreResult<()> {
        if self.claims != ClaimDurability::Journal || records.is_empty() {
            return Ok(());
        }
        let appended = self.journal.append(records).inspect_err(|e| self.health.fail_store(e))?;
        if appended >= claim_journal::CHECKPOINT_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Flushes the store and empties the claims journal, whose records that flush made
    /// redundant.
    pub(super) fn checkpoint(&self) -> StoreResult<()> {
        self.journal.checkpoint(|| self.durable()).inspect_err(|e| self.health.fail_store(e))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The flusher's thread is joined next: it must not be stuck in a failed flush.
        self.flushes.kick_if_failed();
    }
}

impl Live {
    fn open(
        path: &Path,
        options: StoreOptions,
        health: &Arc<Health>,
        after_move: AfterMove,
    ) -> StoreResult<Live> {
        let db = open_db(path, options)?;
        let trees = Trees::open(&db, health.clone(), after_move)?;
        let interval = Duration::from_millis(options.flush_interval_ms.max(1));
        let flushes = Arc::new(Flushes::new(db.clone(), interval, health.clone()));
        let flusher = Flusher::start(flushes.clone()).map_err(StoreError::Flusher)?;
        Ok(Live { _flusher: flusher, flushes, trees, db })
    }

    /// How far the store has got, checked against its state file (see `state_file`): a store
    /// behind it lost data and is refused, unless `accept_loss`, when it continues from the
    /// higher values (written into the store, so that no id is issued twice). From here on
    /// the flusher keeps the file up to date.
    ///
    /// Without a state file, a `db` file that `wiped` (it held data, and opens without its
    /// format mark) is refused too: nothing else can tell such a store from a new one.
    fn check_progress(&self, path: &Path, accept_loss: bool, wiped: bool) -> StoreResult<Progress> {
        let file = StateFile::new(path);
        let found = self.trees.progress()?;
        let progress = match file.read()? {
            None if wiped && !accept_loss => {
                return Err(StoreError::Wiped { path: path.to_owned() });
            }
            None if wiped => {
                log::warn!(
                    "store at {}: lost data accepted (--accept-data-loss): it opened empty",
                    path.display()
                );
                found
            }
            None => found,
            Some(recorded) => match found.missing(&recorded.progress) {
                None => found,
                Some(missing) if accept_loss => {
                    log::warn!(
                        "store at {}: lost data accepted (--accept-data-loss): {missing}",
                        path.display()
                    );
                    let continued = found.max(recorded.progress);
                    self.raise_high_waters(continued)?;
                    continued
                }
                Some(missing) => {
                    return Err(StoreError::Behind {
                        path: path.to_owned(),
                        missing,
                        written_at: recorded.written_at,
                    });
                }
            },
        };
        if let Err(e) = file.write(progress) {
            // The check still holds with the old file; the next checkpoint writes it.
            log::warn!("{e}");
        }
        self.flushes.keep_state(StateKeeper::new(file, self.trees.clone(), progress));
        Ok(progress)
    }

    /// Records `progress` in the store's own high-water marks, durably.
    fn raise_high_waters(&self, progress: Progress) -> StoreResult<()> {
        let meta = &self.trees.meta;
        meta.insert(META_ID_HIGH_WATER, &keys::id_key(progress.last_job_id))?;
        meta.insert(META_SCHEDULE_ID, &keys::id_key(progress.last_schedule_id))?;
        let (at, id) = progress.last_finish;
        meta.insert(META_FINISHED_HIGH_WATER, &keys::time_key(at, id))?;
        self.flushes.durable()?;
        Ok(())
    }
}

/// Opens sled's database at `path`, waiting out a lock that sled's own background I/O still
/// holds for a moment after a `Db` of the same process was dropped.
#[allow(clippy::disallowed_methods)] // the one place sled is opened
pub(super) fn open_db(path: &Path, options: StoreOptions) -> StoreResult<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_bytes)
        // sled's flusher would also run its segment cleaner, which can write forever on an
        // idle host (see `flusher`): the store flushes itself.
        .flush_every_ms(None);
    // Try for up to a second before calling it held by another process.
    let mut tries = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(ref io))
                if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
            {
                tries += 1;
                if tries >= 50 {
                    return Err(StoreError::Locked(path.to_owned()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}
