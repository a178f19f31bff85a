//! Plugins: loading shared libraries through the stable ABI and registering their factories.
//!
//! **Invariant:** a factory name maps to exactly one loaded factory; a file that cannot be
//! loaded, or would register a name twice, is rejected whole with a one-line reason and never
//! stops the others from loading. Nothing here unwinds into or out of plugin code.

mod error;
mod host_side;
mod loader;
mod security;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RBox;
use jobhost_plugin_api::ffi::{FfiFactory, JobRunner_TO};
use jobhost_plugin_api::Failure;

pub use error::LoadError;
pub use host_side::{NoProgress, ProgressSink, RunContext};
pub use loader::LIBRARY_SUFFIX;

/// How plugin files are vetted before loading.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Skip the ownership/permission check (`--allow-insecure-plugins`).
    pub allow_insecure: bool,
}

/// A loaded plugin, as reported to operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    pub path: PathBuf,
    pub factories: Vec<String>,
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

/// A factory's declared defaults; `None` means "use the host's".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FactoryDefaults {
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub retry_delay: Option<Duration>,
}

/// A registered job factory: cheap to clone, callable from any thread.
#[derive(Clone)]
pub struct Factory(Arc<FactoryInner>);

struct FactoryInner {
    name: String,
    description: String,
    example: Option<String>,
    plugin: String,
    plugin_version: String,
    defaults: FactoryDefaults,
    runner: JobRunner_TO<'static, RBox<()>>,
}

impl Factory {
    fn new(plugin: &PluginInfo, ffi: FfiFactory) -> Self {
        let info = ffi.info;
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        Factory(Arc::new(FactoryInner {
            name: info.name().to_string(),
            description: info.description().to_string(),
            example: info.example().into_option().map(|e| e.to_string()),
            plugin: plugin.name.clone(),
            plugin_version: plugin.version.clone(),
            defaults: FactoryDefaults {
                max_attempts: info.max_attempts().into_option(),
                timeout: ms(info.timeout_ms().into_option()),
                retry_delay: ms(info.retry_delay_ms().into_option()),
            },
            runner: ffi.runner,
        }))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }
    pub fn description(&self) -> &str {
        &self.0.description
    }
    pub fn example(&self) -> Option<&str> {
        self.0.example.as_deref()
    }
    pub fn plugin(&self) -> &str {
        &self.0.plugin
    }
    pub fn plugin_version(&self) -> &str {
        &self.0.plugin_version
    }
    pub fn defaults(&self) -> FactoryDefaults {
        self.0.defaults
    }

    /// Runs one attempt on the calling thread (blocking: call it from a blocking thread).
    /// `input` and the `Ok` value are JSON text.
    pub fn run(&self, ctx: &RunContext<'_>, input: &str) -> Result<String, Failure> {
        use abi_stable::sabi_trait::TD_Opaque;
        use jobhost_plugin_api::ffi::HostJob_TO;
        let host = HostJob_TO::from_ptr(ctx, TD_Opaque);
        match self.0.runner.run(host, input.into()).into_result() {
            Ok(json) => Ok(json.into_string()),
            Err(failure) => Err(Failure::from_ffi(failure)),
        }
    }

    /// Runs one attempt with no cancellation or progress (for `plugins run` and tests).
    pub fn run_once(&self, input: &str) -> Result<String, Failure> {
        let cancel = AtomicBool::new(false);
        self.run(&RunContext { job_id: 0, attempt: 1, cancel: &cancel, progress: &NoProgress }, input)
    }
}

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory").field("name", &self.0.name).field("plugin", &self.0.plugin).finish()
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
