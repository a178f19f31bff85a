//! What the local commands (`serve`, `run-once`, `bench`) share: the plugin directories and
//! the runtime.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::Isolation;
use crate::plugins::{LoadOptions, Registry};
use crate::service::Plugins;
use crate::workers::{Limits, Probed, Prober, Sandbox, Spec, DEFAULT_LOAD_TIMEOUT};

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

    /// How to load these directories' plugins.
    pub fn setup(&self, isolation: Isolation, allow_insecure: bool) -> PluginSetup {
        PluginSetup {
            dirs: self.dirs(),
            isolation,
            allow_insecure,
            pins: BTreeMap::new(),
            limits: Limits::default(),
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            env: BTreeMap::new(),
            fs: Sandbox::default(),
        }
    }
}

/// How the plugins of the service or a local command are loaded.
pub struct PluginSetup {
    pub dirs: Vec<PathBuf>,
    pub isolation: Isolation,
    pub allow_insecure: bool,
    /// `[factories]`.
    pub pins: BTreeMap<String, String>,
    pub limits: Limits,
    /// How long each file may take to load when probed (`plugin_load_timeout`).
    pub load_timeout: Duration,
    /// `[worker_env]`.
    pub env: BTreeMap<String, String>,
    /// `[worker_sandbox]`.
    pub fs: Sandbox,
}

impl PluginSetup {
    /// Loads the plugins: a worker process's scan, or this process's registry, either way of
    /// the files a probe in a throwaway process accepted. Rejected files are logged; a factory
    /// name two files provide, undecided, is an error naming both.
    pub fn open(self) -> anyhow::Result<Plugins> {
        let plugins = match self.isolation {
            Isolation::Process => Plugins::isolated(Spec {
                exe: worker_exe(),
                plugin_dirs: self.dirs,
                allow_insecure: self.allow_insecure,
                pins: self.pins,
                keep: BTreeMap::new(),
                limits: self.limits,
                files: None,
                load_timeout: self.load_timeout,
                env: self.env,
                fs: self.fs,
            })?,
            Isolation::None => {
                let options = LoadOptions {
                    allow_insecure: self.allow_insecure,
                    private_copies: true,
                    pins: self.pins,
                    keep: BTreeMap::new(),
                };
                let exe = worker_exe();
                let prober = Prober {
                    exe: &exe,
                    allow_insecure: self.allow_insecure,
                    limits: self.limits,
                    timeout: self.load_timeout,
                    env: &self.env,
                    fs: &self.fs,
                };
                Plugins::in_process(probed_registry(options, &prober.probe_dirs(&self.dirs)))
            }
        };
        let catalog = plugins.catalog();
        for plugin in &catalog.plugins {
            log::info!(
                "plugin {} {} from {} ({})",
                plugin.name,
                plugin.version,
                plugin.path.display(),
                plugin.factories.join(", ")
            );
        }
        for rejection in &catalog.rejected {
            log::warn!("plugin rejected: {rejection}");
        }
        let unresolved: Vec<String> = catalog.unresolved().map(ToString::to_string).collect();
        anyhow::ensure!(unresolved.is_empty(), "{}", unresolved.join("; "));
        Ok(plugins)
    }
}

/// A registry of the files probing accepted, with those it rejected recorded as rejections.
pub fn probed_registry(options: LoadOptions, probed: &Probed) -> Registry {
    let mut registry = Registry::new(options);
    for image in &probed.files {
        registry.add_image(image.fd(), &image.path);
        // Its descriptor stays open for the process's life: the dynamic loader knows the
        // library by its `/proc/self/fd` name, which must never name another file.
        std::mem::forget(image.clone());
    }
    for rejected in &probed.rejected {
        registry.reject_unloaded(&rejected.path, &rejected.reason);
    }
    registry
}

/// The binary worker processes run: this one, even if its file was replaced since it started
/// (`/proc/self/exe` names the running image, not the path).
pub fn worker_exe() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("jobhost"))
    }
}

/// The multi-threaded runtime the local commands and the service run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| anyhow::anyhow!("cannot start the runtime: {e}"))
}
