//! What a worker process is started with: the binary, the plugin files it loads (exactly those
//! probing accepted at the last start or reload), the pins, its limits, environment and
//! filesystem policy, and the hidden `worker` command line that carries them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::fds::FIRST_IMAGE_FD;
use super::limits::Limits;
use super::sandbox::Sandbox;
use crate::plugins::Image;

/// What a worker process is started with.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The binary to run (this one).
    pub exe: PathBuf,
    pub plugin_dirs: Vec<PathBuf>,
    pub allow_insecure: bool,
    /// `[factories]` pins.
    pub pins: BTreeMap<String, String>,
    /// Owners of factories before a reload (see `LoadOptions::keep`).
    pub keep: BTreeMap<String, PathBuf>,
    pub limits: Limits,
    /// The plugin files workers load, in order, as sealed images made at the last start or
    /// reload and accepted by probing: every worker of this spec maps the same bytes, whatever
    /// happens to the files since (`None`: scan `plugin_dirs`, for a worker started before
    /// any probe).
    pub files: Option<Vec<Arc<Image>>>,
    /// How long probing gives each file to load.
    pub load_timeout: Duration,
    /// Variables set for workers beyond the allowlist (`[worker_env]`).
    pub env: BTreeMap<String, String>,
    /// What workers may write (`[worker_sandbox]`).
    pub fs: Sandbox,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            exe: PathBuf::new(),
            plugin_dirs: Vec::new(),
            allow_insecure: false,
            pins: BTreeMap::new(),
            keep: BTreeMap::new(),
            limits: Limits::default(),
            files: None,
            load_timeout: super::probe::DEFAULT_LOAD_TIMEOUT,
            env: BTreeMap::new(),
            fs: Sandbox::default(),
        }
    }
}

impl Spec {
    /// Probes the plugin directories (see `probe`): the files accepted become what every
    /// worker of this spec loads; returns what was rejected, for the catalog.
    pub fn probe(&mut self) -> Vec<crate::plugins::Rejected> {
        let prober = super::probe::Prober {
            exe: &self.exe,
            allow_insecure: self.allow_insecure,
            limits: self.limits,
            timeout: self.load_timeout,
            env: &self.env,
            fs: &self.fs,
        };
        let probed = prober.probe_dirs(&self.plugin_dirs);
        self.files = Some(probed.files);
        probed.rejected
    }

    /// After a reload's probe: a file loaded before whose new contents were rejected (a copy
    /// caught half-written, a broken build, a probe killed) keeps the image loaded before, so
    /// its factories stay and their queued jobs do not end `error` as unknown; its rejection
    /// says so. A file that is gone is not kept: removing it is how a plugin is retired.
    pub fn keep_loaded_versions(&mut self, before: &Spec, rejected: &mut [crate::plugins::Rejected]) {
        let Some(files) = self.files.as_mut() else { return };
        for rejection in rejected.iter_mut() {
            let path = std::fs::canonicalize(&rejection.path).unwrap_or_else(|_| rejection.path.clone());
            if files.iter().any(|image| image.path == path) {
                continue;
            }
            if let Some(loaded) = before.images().iter().find(|image| image.path == path) {
                files.push(loaded.clone());
                rejection.reason.push_str("; the version loaded before stays loaded");
            }
        }
    }

    /// The spec of workers dedicated to `plugin` when `[worker_sandbox.plugins]` gives it
    /// paths of its own: they load its file alone (as accepted at the last probe) and may
    /// write those paths besides everyone's. `None`: the plugin has no paths of its own, or
    /// none of the accepted files is its.
    pub fn dedicated(&self, plugin: &crate::plugins::PluginInfo) -> Option<Spec> {
        let own = self.fs.per_plugin.get(&plugin.name)?;
        let image = self.images().iter().find(|image| image.path == plugin.path)?.clone();
        let mut spec = self.clone();
        spec.files = Some(vec![image]);
        spec.fs.write_paths.extend(own.iter().cloned());
        spec.fs.per_plugin.clear();
        Some(spec)
    }

    /// The images a worker is handed (on descriptors from [`FIRST_IMAGE_FD`] on, in order).
    pub(super) fn images(&self) -> &[Arc<Image>] {
        self.files.as_deref().unwrap_or_default()
    }

    /// The command line of the hidden `worker` command.
    pub(super) fn args(&self) -> Vec<String> {
        let mut args = vec!["worker".to_owned()];
        // The images of the files probing accepted, exactly; before any probe, the directories.
        match &self.files {
            Some(files) => {
                args.push("--files-only".to_owned());
                for (fd, image) in (FIRST_IMAGE_FD..).zip(files) {
                    args.push(format!("--plugin-image={fd}={}", image.path.display()));
                }
            }
            None => {
                for dir in &self.plugin_dirs {
                    args.push("--plugin-dir".to_owned());
                    args.push(dir.display().to_string());
                }
            }
        }
        if self.allow_insecure {
            args.push("--allow-insecure-plugins".to_owned());
        }
        for (name, file) in &self.pins {
            args.push(format!("--pin={name}={file}"));
        }
        for (name, path) in &self.keep {
            args.push(format!("--keep={name}={}", path.display()));
        }
        args.extend(self.limits.args());
        args.extend(self.fs.args());
        args
    }
}
