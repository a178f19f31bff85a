//! What the local commands (`run-once`, `bench`) share: opening the embedded store and the
//! plugin directories directly, without a server.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::clock::SystemClock;
use crate::plugins::{LoadOptions, Registry};
use crate::processor::{Host, ProcessorConfig};
use crate::store::{SledStore, StoreOptions};

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "jobhost-data";
/// The default plugin directory, relative to the working directory; the directory holding the
/// `jobhost` binary is searched too, which is where `cargo build` puts the example plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "plugins";

#[derive(Debug, Args)]
pub struct PluginArgs {
    /// A plugin directory (repeatable). Default: ./plugins and the binary's own directory.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
}

impl PluginArgs {
    pub fn dirs(&self) -> Vec<PathBuf> {
        if !self.plugin_dirs.is_empty() {
            return self.plugin_dirs.clone();
        }
        let mut dirs = vec![PathBuf::from(DEFAULT_PLUGIN_DIR)];
        if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)) {
            dirs.push(exe_dir);
        }
        dirs
    }

    /// Loads the plugins, logging each rejection (a missing default directory is not one).
    pub fn load(&self, options: LoadOptions) -> Registry {
        let dirs: Vec<PathBuf> =
            self.dirs().into_iter().filter(|d| !self.plugin_dirs.is_empty() || d.exists()).collect();
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
) -> anyhow::Result<(Host, Arc<SledStore>)> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display()))?;
    let store = Arc::new(SledStore::open(data_dir, StoreOptions::default())?);
    let host = Host::new(store.clone(), registry, Arc::new(SystemClock), config)?;
    Ok((host, store))
}
