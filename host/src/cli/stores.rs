//! The command line's one door to the store itself, for the commands that work on a store with
//! no service in between: `store check|backup|restore|migrate` (offline) and the benchmark's
//! store baseline (the store measured alone beside the host). Every other command reaches jobs
//! through the HTTP API, and `serve` and `run-once` through the composition root (`runtime`).
//! `.ci/layering.py` keeps it the only one.

use std::path::Path;
use std::sync::Arc;

use crate::store::PgStore;
pub use crate::store::{
    inspect_backup, restore, BackupSummary, CheckReport, ClaimFilter, JobStore, LeaseTerms, OnLoss, Report,
    SledStore, Store, StoreOptions, WorkStore,
};

/// Opens the embedded store in `data_dir`, which must exist (a check or backup never creates
/// one).
pub fn open_existing(data_dir: &Path, on_loss: OnLoss) -> Result<SledStore, String> {
    if !data_dir.join("db").exists() {
        return Err(format!("no store in {}", data_dir.display()));
    }
    SledStore::open(data_dir, StoreOptions { on_loss, ..StoreOptions::default() }).map_err(|e| e.to_string())
}

/// Opens (creating it) an embedded store for the benchmark's baseline.
pub fn open_for_baseline(data_dir: &Path, options: StoreOptions) -> Result<Arc<dyn Store>, String> {
    Ok(Arc::new(SledStore::open(data_dir, options).map_err(|e| e.to_string())?))
}

/// Brings a PostgreSQL store's schema to this build's version: (from, to).
pub fn migrate(
    url: &str,
    password_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> Result<(i32, i32), String> {
    let (config, tls) = crate::runtime::postgres_connection(url, password_file, ca_file)?;
    let migrated = PgStore::migrate(&config, &tls).map_err(|e| e.to_string())?;
    Ok((migrated.from, migrated.to))
}
