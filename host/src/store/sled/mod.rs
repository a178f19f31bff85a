//! The embedded store on sled.
//!
//! Trees: `jobs` (id → record), `ready` ((queue, priority desc, ready time, id) → factory),
//! `waiting` ((run time, id), jobs waiting for a retry or run time), `leases` ((expiry, id) →
//! token), `unique` ((factory, unique key) → id of the pending job holding it), `finished`
//! ((finished time, id) of finished jobs, for removal and retention), `schedules`
//! (id → schedule), `schedules_due` ((next run, id), active schedules with a next run), `meta`
//! (format version, id high-water marks), `idempotency` (Idempotency-Key → the request's
//! fingerprint and what it created) and `idempotency_expiry` ((expiry, key), for the sweep). A job is in exactly one of `ready`, `waiting`, `leases`
//! or none (held or finished), and its record says which: the key of its index entry is derived
//! from the record (`run_at`, `lease.expires_at`), so it can always be found and removed.
//!
//! Durability: additions, cancels and retries return only once flushed (group commit); outcomes
//! and progress reach the disk within the flush interval (see `flusher`): losing one in a crash
//! means the job runs again, which at-least-once delivery allows. Claims are written to the
//! claims journal (see `claim_journal`) before their job runs, or flushed with
//! `ClaimDurability::Flush`.
//!
//! The files: `store` (the struct and opening it), `options` (tuning), `tx` (the transaction over every tree and its helpers),
//! `jobs`, `claims` and `schedules` (the three capabilities), `idempotency` (keyed creations), `recovery` (crashed hosts'
//! jobs), `counts` (jobs per queue and status, in memory), `health` (whether it can write,
//! and the probe before a reopen); `listing` (the ids per queue or factory and status, in memory, for filtered lists); `codec`, `keys`, `durability`, `flusher` and
//! `claim_journal` below them.

mod backup;
mod check;
mod claim_journal;
mod claims;
pub(super) mod codec;
mod counts;
mod damage;
mod durability;
mod flusher;
mod health;
mod history;
mod idempotency;
mod jobs;
mod keys;
mod listing;
mod options;
mod pauses;
mod recovery;
mod schedules;
mod state_file;
mod store;
mod tx;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

pub use self::backup::{inspect as inspect_backup, restore};
pub use self::check::CheckReport;
pub use self::options::{ClaimDurability, OnLoss, StoreOptions};
pub use self::store::SledStore;
