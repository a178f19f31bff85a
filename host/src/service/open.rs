//! Opening a host over the embedded store in a data directory (what `serve`, `run-once` and
//! the benchmark share), or over a PostgreSQL store.

use std::path::Path;
use std::sync::Arc;

use super::error::HostError;
use super::host::Host;
use crate::clock::SystemClock;
use crate::processor::{Plugins, ProcessorConfig};
use crate::store::{PgStore, SledStore, StoreError, StoreOptions};

/// Opens (creating it if needed) the store at `data_dir` and builds a host over it,
/// recovering the jobs a dead host left running.
pub fn open(
    data_dir: &Path,
    options: StoreOptions,
    plugins: Plugins,
    config: ProcessorConfig,
) -> Result<Host, HostError> {
    open_with_store(data_dir, options, plugins, config).map(|(host, _)| host)
}

/// [`open`], also handing back the store itself: for the benchmark, which measures the store
/// alone beside the host.
pub fn open_with_store(
    data_dir: &Path,
    options: StoreOptions,
    plugins: Plugins,
    config: ProcessorConfig,
) -> Result<(Host, Arc<SledStore>), HostError> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        HostError::Store(StoreError::Io {
            what: format!("cannot create data directory {}", data_dir.display()),
            error: e,
        })
    })?;
    let store = Arc::new(SledStore::open(data_dir, options)?);
    let host = Host::with_plugins(store.clone(), plugins, Arc::new(SystemClock), config)?;
    Ok((host, store))
}

/// Connects to (and migrates) the PostgreSQL store and builds a host over it. Jobs other
/// hosts left running are recovered when their leases expire, by whichever host sees it.
pub fn open_postgres(
    connection: postgres::Config,
    tls: crate::store::postgres::Tls,
    plugins: Plugins,
    config: ProcessorConfig,
) -> Result<Host, HostError> {
    let store = Arc::new(PgStore::open(connection, tls)?);
    Host::with_plugins(store, plugins, Arc::new(SystemClock), config)
}
