//! The job store: what the host asks of a backend (three capability traits), the embedded
//! sled backend, and the PostgreSQL backend several hosts share.
//!
//! **Invariant:** every change that touches more than one record or index is one transaction,
//! so a job's record and its index entries never disagree, even across a crash; statuses
//! change only through the transitions of [`crate::job`].

mod dependents;
mod error;
pub mod postgres;
pub mod sled;
mod traits;
mod types;

pub use self::sled::{
    inspect_backup, restore, CheckReport, ClaimDurability, OnLoss, SledStore, StoreOptions,
};
pub use error::{StoreError, StoreResult};
pub use postgres::PgStore;
pub use traits::{JobStore, Report, ScheduleStore, Store, WorkStore};
pub use types::{
    Added, BackupSummary, Cancelled, ClaimFilter, Claimed, Counts, Created, Finished, Fired, Group,
    GroupState, HostRecord, Keyed, LeaseTerms, ListFilter, Notice, Once, QueuePause, Remembered, Removal,
};
