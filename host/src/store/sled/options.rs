//! How the embedded store is tuned: its page cache, how often it flushes, how claims are kept.

/// Tuning of the embedded store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// How often the store flushes changes that were not flushed on the spot (outcomes,
    /// progress, journaled claims).
    pub flush_interval_ms: u64,
    /// How a claim is kept before its job runs.
    pub claims: ClaimDurability,
    /// What to do with a store that is behind its state file (it lost data).
    pub on_loss: OnLoss,
}

/// What opening does with a store that is behind its state file (see `state_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLoss {
    /// Refuse to open it (the service's default).
    #[default]
    Refuse,
    /// Open it and go on from the file's values (`--accept-data-loss`).
    Accept,
    /// Open it to look, changing nothing: no check, the state file left as it is
    /// (`jobhost store check`, which reports the loss itself).
    Inspect,
}

/// How a claim (a counted attempt) is kept before its job runs. Either way, an attempt that
/// kills the host is counted, so a poison job ends in `error` after its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClaimDurability {
    /// Appended to the claims journal (one `write`, no sync): survives the death of the
    /// process; reaches the disk with the flush interval, so a machine crash inside that
    /// interval can lose the count (the job then runs again).
    Journal,
    /// Flushed to disk before the job runs (shared flushes): survives a machine crash too,
    /// at the cost of a disk sync per claim.
    Flush,
}

impl ClaimDurability {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimDurability::Journal => "journal",
            ClaimDurability::Flush => "flush",
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            claims: ClaimDurability::Journal,
            on_loss: OnLoss::Refuse,
        }
    }
}

/// sled's page cache. With 1,000,000 queued jobs the process holds 113 MB at this default;
/// peak RSS went 355 → 230 → 203 MB from 64 to 16 to 4 MiB, drain within 6 % across them
/// (the hot indexes are small).
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// The window in which a completed outcome can be lost in a crash (the job then runs again).
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 100;
