//! The plugins a host's workers run: loaded in this process (`isolation = "none"`), or in
//! worker processes (`"process"`, the default), where the host keeps only their catalog.
//!
//! **Invariant:** with worker processes, this process never loads plugin code: it learns the
//! catalog from a worker's hello (a scan worker at start and on every reload), and every
//! attempt runs in a worker process. Every file is probed in a throwaway process first, and
//! workers load exactly the files accepted at the last start or reload, never a rescan.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::plugins::{Catalog, Factory, Registry};
use crate::workers::{SpawnError, Spec, WorkerProcess};

/// Where plugin code runs.
pub enum Plugins {
    /// In this process: the registry holds the loaded libraries.
    InProcess { registry: Registry, catalog: Arc<Catalog> },
    /// In worker processes started from `spec`; `generation` counts reloads, so each worker
    /// knows whether what it loaded is current. `dedicated`: by factory name, the workers of
    /// plugins that have write paths of their own.
    Isolated { spec: Spec, catalog: Arc<Catalog>, generation: u64, dedicated: Dedicated },
}

/// By factory name, the workers dedicated to the plugin owning it (see [`Spec::dedicated`]);
/// factories not named run in workers of the shared spec.
pub type Dedicated = BTreeMap<String, Arc<Profile>>;

/// Workers dedicated to one plugin file.
#[derive(Debug)]
pub struct Profile {
    pub plugin: String,
    pub path: PathBuf,
    pub spec: Spec,
}

/// The dedicated workers of the plugins that `spec`'s `[worker_sandbox.plugins]` names, by the
/// factories they own in `catalog`. A name that matches no loaded plugin is logged: its paths
/// are given to nobody.
fn dedicate(spec: &Spec, catalog: &Catalog) -> Dedicated {
    let mut dedicated = Dedicated::new();
    for name in spec.fs.per_plugin.keys() {
        if !catalog.plugins.iter().any(|p| &p.name == name) {
            log::warn!(
                "worker_sandbox.plugins.{name}: no loaded plugin is called {name:?}; its write paths are given to nobody"
            );
        }
    }
    for plugin in &catalog.plugins {
        let Some(own) = spec.dedicated(plugin) else { continue };
        let profile = Arc::new(Profile { plugin: plugin.name.clone(), path: plugin.path.clone(), spec: own });
        for factory in &plugin.factories {
            dedicated.insert(factory.clone(), profile.clone());
        }
    }
    dedicated
}

impl Plugins {
    pub fn in_process(registry: Registry) -> Self {
        let catalog = Arc::new(registry.catalog());
        Plugins::InProcess { registry, catalog }
    }

    /// Probes the plugin files, then starts a worker process to learn what the accepted ones
    /// hold (its hello's catalog), then stops it.
    pub fn isolated(mut spec: Spec) -> Result<Self, SpawnError> {
        let catalog = scan(&mut spec, None)?;
        let dedicated = dedicate(&spec, &catalog);
        Ok(Plugins::Isolated { spec, catalog: Arc::new(catalog), generation: 1, dedicated })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        match self {
            Plugins::InProcess { catalog, .. } | Plugins::Isolated { catalog, .. } => catalog,
        }
    }

    /// The loaded factory, with plugins in this process.
    pub fn runnable(&self, name: &str) -> Option<Factory> {
        match self {
            Plugins::InProcess { registry, .. } => registry.get(name).cloned(),
            Plugins::Isolated { .. } => None,
        }
    }

    /// Shows a reloaded catalog (see [`Plugins::reload`]).
    pub fn publish(&mut self, reloaded: Arc<Catalog>) {
        match self {
            Plugins::InProcess { catalog, .. } | Plugins::Isolated { catalog, .. } => *catalog = reloaded,
        }
    }

    pub fn is_isolated(&self) -> bool {
        matches!(self, Plugins::Isolated { .. })
    }

    /// Loads the plugin directories afresh (SIGHUP). In this process: files that appeared
    /// since (a loaded library cannot be unloaded). With worker processes: a scan of
    /// everything, kept by a new generation that workers roll to between jobs; factories
    /// already loaded keep their files against new ones. Returns the catalog before and after;
    /// with worker processes the new one shows once [`Plugins::publish`]ed, after the jobs sent
    /// ahead to workers of the old generation are withdrawn.
    pub fn reload(
        &mut self,
        dirs: &[std::path::PathBuf],
    ) -> Result<(Arc<Catalog>, Arc<Catalog>), SpawnError> {
        match self {
            Plugins::InProcess { registry, catalog } => {
                let before = catalog.clone();
                registry.rescan(dirs);
                *catalog = Arc::new(registry.catalog());
                Ok((before, catalog.clone()))
            }
            Plugins::Isolated { spec, catalog, generation, dedicated } => {
                let before = catalog.clone();
                let mut next = spec.clone();
                next.keep = catalog.owners();
                let scanned = scan(&mut next, Some(spec))?;
                *dedicated = dedicate(&next, &scanned);
                *spec = next;
                *generation += 1;
                Ok((before, Arc::new(scanned)))
            }
        }
    }
}

/// Probes the plugin files (each in a throwaway process: see `workers::Prober`), fixing the
/// set every worker of `spec` loads from now on, then starts a worker on that set to learn its
/// catalog, to which the files probing rejected are added. At a reload (`before`: the spec
/// loaded until now), a loaded file rejected now keeps its loaded image.
fn scan(spec: &mut Spec, before: Option<&Spec>) -> Result<Catalog, SpawnError> {
    let mut rejected = spec.probe();
    if let Some(before) = before {
        spec.keep_loaded_versions(before, &mut rejected);
    }
    let worker = WorkerProcess::spawn(spec, 0)?;
    let mut catalog = worker.catalog.clone();
    worker.stop(std::time::Duration::from_secs(2));
    catalog.rejected.extend(rejected);
    Ok(catalog)
}
