//! What the local commands (`serve`, `run-once`, `bench`) share: the plugin directories and
//! the runtime.

use std::path::PathBuf;

use clap::Args;

use crate::plugins::{LoadOptions, Registry};

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

/// The multi-threaded runtime the local commands and the service run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))
}
