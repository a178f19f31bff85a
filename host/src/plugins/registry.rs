//! The registry: every plugin file loaded from the plugin directories, the factories they
//! register by name, and the files rejected with the reason.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::LoadError;
use super::factory::{Factory, PluginInfo};
use super::{host_side, loader, security};

/// How plugin files are vetted before loading.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Skip the ownership/permission check (`--allow-insecure-plugins`).
    pub allow_insecure: bool,
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

/// Every loaded plugin and registered factory, plus what was rejected.
#[derive(Default)]
pub struct Registry {
    options: LoadOptions,
    plugins: Vec<PluginInfo>,
    rejected: Vec<Rejection>,
    factories: BTreeMap<String, Factory>,
    /// Canonical paths of loaded files, so a file reachable twice loads once and a rescan
    /// skips what it already has.
    loaded: HashSet<PathBuf>,
    /// Canonical paths rejected by the current scan, so each is reported once.
    rejected_paths: HashSet<PathBuf>,
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
        if self.loaded.contains(&canonical) || self.rejected_paths.contains(&canonical) {
            return false;
        }
        match self.load(&canonical) {
            Ok((info, factories)) => {
                log::info!(
                    "loaded plugin {} {} from {} ({})",
                    info.name,
                    info.version,
                    path.display(),
                    info.factories.join(", ")
                );
                for factory in factories {
                    self.factories.insert(factory.name().to_owned(), factory);
                }
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

    /// Scans `dirs` again (SIGHUP): loads files that are new or were rejected before (their
    /// permissions may have been fixed); the rejections are those of this scan. Returns how
    /// many plugins were newly loaded.
    pub fn rescan<P: AsRef<Path>>(&mut self, dirs: &[P]) -> usize {
        self.rejected.clear();
        self.rejected_paths.clear();
        dirs.iter().map(|dir| self.add_path(dir.as_ref())).sum()
    }

    fn load(&self, path: &Path) -> Result<(PluginInfo, Vec<Factory>), LoadError> {
        if !self.options.allow_insecure {
            security::check_trusted(path)?;
        }
        let module = loader::open_module(path)?;
        (module.init())(host_side::HOST_LOGGER, log::max_level().into());
        let ffi_factories =
            (module.factories())().into_result().map_err(|e| LoadError::FactoriesFailed(e.into()))?;
        let mut info = PluginInfo {
            name: module.name().to_string(),
            version: module.version().to_string(),
            sdk_version: module.sdk_version().to_string(),
            path: path.to_owned(),
            factories: Vec::new(),
        };
        if ffi_factories.is_empty() {
            return Err(LoadError::NoFactories);
        }
        let mut factories = Vec::new();
        for ffi in ffi_factories {
            let factory = Factory::new(&info, ffi);
            let name = factory.name().to_owned();
            if !crate::job::is_valid_name(&name) {
                return Err(LoadError::InvalidFactoryName(name));
            }
            if let Some(first) = self.factory_owner(&name).or(info.factories.contains(&name).then_some(path))
            {
                return Err(LoadError::DuplicateFactory { name, first: first.to_owned() });
            }
            info.factories.push(name);
            factories.push(factory);
        }
        Ok((info, factories))
    }

    fn factory_owner(&self, name: &str) -> Option<&Path> {
        self.plugins.iter().find(|p| p.factories.iter().any(|f| f == name)).map(|p| p.path.as_path())
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
}
