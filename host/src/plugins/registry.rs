//! The registry: every plugin file loaded into this process from the plugin directories, the
//! factories they register by name, the files rejected with the reason, and factory names that
//! two files provide (decided by the config's pins, by who was loaded first on a reload, or
//! left for the operator: a service refuses to start with an undecided one).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::catalog::{pin_matches, Catalog, Conflict, PluginInfo, Rejected, Resolution};
use super::error::LoadError;
use super::factory::Factory;
use super::{host_side, loader, security};

/// How plugin files are vetted and loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip the ownership/permission check (`--allow-insecure-plugins`).
    pub allow_insecure: bool,
    /// Open a private copy of each file (see `loader::open_module`): what a service does, so
    /// that plugin files can be replaced under it.
    pub private_copies: bool,
    /// Factory name → the plugin file (name or path) that provides it when several do: the
    /// config's `[factories]` table.
    pub pins: BTreeMap<String, String>,
    /// Factory name → the file that provided it before a reload: it keeps the name against a
    /// file that appeared since (unless `pins` says otherwise).
    pub keep: BTreeMap<String, PathBuf>,
}

impl LoadOptions {
    pub fn trusting(allow_insecure: bool) -> Self {
        LoadOptions { allow_insecure, ..LoadOptions::default() }
    }
}

/// A plugin file (or directory) that was not loaded, and why.
#[derive(Debug)]
pub struct Rejection {
    pub path: PathBuf,
    pub reason: LoadError,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Every loaded plugin and registered factory, plus what was rejected or conflicts.
#[derive(Default)]
pub struct Registry {
    options: LoadOptions,
    plugins: Vec<PluginInfo>,
    rejected: Vec<Rejection>,
    conflicts: Vec<Conflict>,
    factories: BTreeMap<String, Factory>,
    /// Canonical paths of loaded files, so a file reachable twice loads once and a rescan
    /// skips what it already has.
    loaded: HashSet<PathBuf>,
    /// Canonical paths rejected by the current scan, so each is reported once.
    rejected_paths: HashSet<PathBuf>,
}

/// Where a plugin's code is read from.
#[derive(Clone, Copy)]
enum Source {
    /// The file, checked for trust first (and copied first with `private_copies`).
    File,
    /// A sealed image of it, by descriptor.
    Image(i32),
}

impl Registry {
    pub fn new(options: LoadOptions) -> Self {
        Registry { options, ..Registry::default() }
    }

    /// Loads every plugin in `dirs` (each scanned non-recursively, files sorted by name).
    /// Failures are collected, never fatal; see [`rejected`](Self::rejected).
    pub fn load_dirs<P: AsRef<Path>>(options: LoadOptions, dirs: &[P]) -> Self {
        let mut registry = Registry::new(options);
        for dir in dirs {
            registry.add_path(dir.as_ref());
        }
        registry
    }

    /// Loads `path`: a plugin file, or a directory scanned for them. Returns how many plugins
    /// were newly loaded. Used again on rescans: files already loaded are skipped.
    pub fn add_path(&mut self, path: &Path) -> usize {
        if path.is_dir() {
            match loader::scan_dir(path) {
                Ok(files) => files.iter().map(|f| usize::from(self.add_file(f))).sum(),
                Err(reason) => {
                    self.reject(path, reason);
                    0
                }
            }
        } else {
            usize::from(self.add_file(path))
        }
    }

    /// Loads one plugin file; false if it was rejected or already loaded.
    pub fn add_file(&mut self, path: &Path) -> bool {
        let canonical = match path.canonicalize() {
            Ok(c) => c,
            Err(e) => {
                self.reject(path, e.into());
                return false;
            }
        };
        self.add(path, &canonical, Source::File)
    }

    /// Loads the sealed image of the plugin file `path` this process holds as descriptor `fd`
    /// (see `Image`; the host checked the file's trust when it made the image); false if it
    /// was rejected or already loaded.
    pub fn add_image(&mut self, fd: i32, path: &Path) -> bool {
        self.add(path, path, Source::Image(fd))
    }

    fn add(&mut self, path: &Path, canonical: &Path, source: Source) -> bool {
        let canonical = canonical.to_owned();
        if self.loaded.contains(&canonical) || self.rejected_paths.contains(&canonical) {
            return false;
        }
        match self.load(&canonical, source) {
            Ok((mut info, factories)) => {
                info.factories = factories.into_iter().filter_map(|f| self.register(f)).collect();
                // Every worker process loads every plugin: the host reports the catalog once.
                log::debug!(
                    "loaded plugin {} {} from {} ({})",
                    info.name,
                    info.version,
                    path.display(),
                    info.factories.join(", ")
                );
                self.plugins.push(info);
                self.loaded.insert(canonical);
                true
            }
            Err(reason) => {
                self.rejected_paths.insert(canonical);
                self.reject(path, reason);
                false
            }
        }
    }

    /// Registers `factory` unless another file has its name and keeps it; its name if it was
    /// registered. A name two files provide is recorded as a conflict either way.
    fn register(&mut self, factory: Factory) -> Option<String> {
        let name = factory.name().to_owned();
        let path = factory.info().path.clone();
        let Some(owner) = self.factories.get(&name).map(|f| f.info().path.clone()) else {
            self.factories.insert(name.clone(), factory);
            return Some(name);
        };
        let pin = self.options.pins.get(&name);
        let pinned_new = pin.is_some_and(|p| pin_matches(p, &path));
        let pinned_old = pin.is_some_and(|p| pin_matches(p, &owner));
        let kept = self.options.keep.get(&name);
        let (kept_new, kept_old) = (kept == Some(&path), kept == Some(&owner));
        let resolution = if pinned_new || pinned_old {
            Resolution::Pinned
        } else if kept_new || kept_old {
            Resolution::KeptLoaded
        } else {
            Resolution::Unresolved
        };
        let new_wins = if pinned_new || pinned_old { pinned_new && !pinned_old } else { kept_new };
        if new_wins {
            // A pin, or the owner before a reload, names this later file: the earlier one
            // gives the name up.
            if let Some(earlier) = self.plugins.iter_mut().find(|p| p.path == owner) {
                earlier.factories.retain(|f| *f != name);
            }
            self.factories.insert(name.clone(), factory);
            self.conflicts.push(Conflict { factory: name.clone(), owner: path, other: owner, resolution });
            return Some(name);
        }
        self.conflicts.push(Conflict { factory: name, owner, other: path, resolution });
        None
    }

    /// Scans `dirs` again (SIGHUP with `isolation = "none"`): loads files that are new or were
    /// rejected before (their permissions may have been fixed); the rejections are those of
    /// this scan; loaded factories keep their names against new files. Returns how many
    /// plugins were newly loaded.
    pub fn rescan<P: AsRef<Path>>(&mut self, dirs: &[P]) -> usize {
        self.rejected.clear();
        self.rejected_paths.clear();
        self.options.keep = self.factories.iter().map(|(n, f)| (n.clone(), f.info().path.clone())).collect();
        dirs.iter().map(|dir| self.add_path(dir.as_ref())).sum()
    }

    fn load(&self, path: &Path, source: Source) -> Result<(PluginInfo, Vec<Factory>), LoadError> {
        let opened = match source {
            Source::Image(fd) => loader::open_image(fd, path)?,
            Source::File => {
                if !self.options.allow_insecure {
                    security::check_trusted(path)?;
                }
                loader::open_module(path, self.options.private_copies)?
            }
        };
        let module = opened.module;
        (module.init())(host_side::HOST_LOGGER, log::max_level().into());
        let ffi_factories =
            (module.factories())().into_result().map_err(|e| LoadError::FactoriesFailed(e.into()))?;
        // `{"factory": {"input": schema, "output": schema}}`; none from an older plugin.
        let schemas: serde_json::Map<String, serde_json::Value> = opened
            .schemas
            .and_then(|describe| serde_json::from_str(describe().as_str()).ok())
            .unwrap_or_default();
        let info = PluginInfo {
            name: module.name().to_string(),
            version: module.version().to_string(),
            sdk_version: module.sdk_version().to_string(),
            path: path.to_owned(),
            factories: Vec::new(),
        };
        if ffi_factories.is_empty() {
            return Err(LoadError::NoFactories);
        }
        let mut factories: Vec<Factory> = Vec::new();
        for ffi in ffi_factories {
            let declared = |name: &str, which: &str| {
                schemas.get(name).and_then(|s| s.get(which)).map(serde_json::Value::to_string)
            };
            let name = ffi.info.name().to_string();
            let factory = Factory::new(
                &info,
                ffi,
                declared(&name, "input"),
                declared(&name, "output"),
                opened.parents,
                opened.panic,
            );
            let name = factory.name().to_owned();
            if !crate::job::is_valid_name(&name) {
                return Err(LoadError::InvalidFactoryName(name));
            }
            // Twice in one file is the plugin's own mistake: the file is refused.
            if factories.iter().any(|f| f.name() == name) {
                return Err(LoadError::DuplicateFactory { name, first: path.to_owned() });
            }
            factories.push(factory);
        }
        Ok((info, factories))
    }

    /// Records a file this registry did not load because another process found it unfit
    /// (a probe that crashed or hung loading it).
    pub fn reject_unloaded(&mut self, path: &Path, reason: &str) {
        self.reject(path, LoadError::Probe(reason.to_owned()));
    }

    /// Callers report rejections (a service logs them, `plugins check` prints them).
    fn reject(&mut self, path: &Path, reason: LoadError) {
        self.rejected.push(Rejection { path: path.to_owned(), reason });
    }

    pub fn get(&self, name: &str) -> Option<&Factory> {
        self.factories.get(name)
    }

    /// Registered factories, sorted by name.
    pub fn factories(&self) -> impl Iterator<Item = &Factory> {
        self.factories.values()
    }

    pub fn factory_names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    pub fn plugins(&self) -> &[PluginInfo] {
        &self.plugins
    }

    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }

    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// What this registry holds, as data (no plugin code): what a worker process reports.
    pub fn catalog(&self) -> Catalog {
        Catalog {
            plugins: self.plugins.clone(),
            factories: self.factories.iter().map(|(n, f)| (n.clone(), f.info().clone())).collect(),
            rejected: self
                .rejected
                .iter()
                .map(|r| Rejected { path: r.path.clone(), reason: r.reason.to_string() })
                .collect(),
            conflicts: self.conflicts.clone(),
        }
    }
}
