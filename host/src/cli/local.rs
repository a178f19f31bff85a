//! What the local commands (`run-once`, `bench`) share: opening the embedded store and the
//! plugin directories directly, without a server.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::clock::SystemClock;
use crate::plugins::{LoadOptions, Registry};
use crate::processor::{Host, ProcessorConfig};
use crate::store::{SledStore, StoreOptions};

#[derive(Debug, Args)]
pub struct PluginArgs {
    /// A plugin directory (repeatable). Default: ./plugins and the binary's own directory.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginArgs {
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.plugin_dirs.is_empty() {
            crate::config::default_plugin_dirs()
        } else {
            self.plugin_dirs.clone()
        }
    }

    /// Loads the plugins, logging each rejection (a missing default directory is not one).
    pub fn load(&self, options: LoadOptions) -> Registry {
        let dirs = self.dirs();
        let registry = Registry::load_dirs(options, &dirs);
        for rejection in registry.rejected() {
            log::warn!("plugin rejected: {rejection}");
        }
        registry
    }
}

/// Opens the store at `data_dir` and builds a host over it (recovering orphaned jobs).
pub fn open_host(
    data_dir: &std::path::Path,
    registry: Registry,
    config: ProcessorConfig,
    options: StoreOptions,
) -> anyhow::Result<(Host, Arc<SledStore>)> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display()))?;
    let store = Arc::new(SledStore::open(data_dir, options)?);
    let host = Host::new(store.clone(), registry, Arc::new(SystemClock), config)?;
    Ok((host, store))
}

/// The multi-threaded runtime the local commands and the service run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))
}
