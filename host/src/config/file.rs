//! The `Config` struct: every key of the TOML file with its default, and reading it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::sections::{
    listen_address, Isolation, Limits, LogFormat, QueueTable, RetryConfig, Role, StoreConfig, WorkerLimits,
    WorkerSandbox,
};
use crate::durations;
use crate::processor::{ProcessorConfig, Retention};

/// Where the server listens when nothing says otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "jobhost-data";
/// The default plugin directory, relative to the working directory; the directory holding the
/// `jobhost` binary is searched too, which is where `cargo build` puts the example plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "plugins";

/// The plugin directories used when none are configured: those of them that exist.
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(DEFAULT_PLUGIN_DIR)];
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from)) {
        dirs.push(exe_dir);
    }
    dirs.retain(|d| d.exists());
    dirs
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The embedded store's directory.
    pub data_dir: PathBuf,
    /// Plugin directories; empty means `./plugins` and the directory of the `jobhost` binary.
    pub plugin_dirs: Vec<PathBuf>,
    /// An address (`127.0.0.1:7878`) or a host name and port (`localhost:7878`).
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// A file holding the bearer token clients must send; no auth when absent.
    pub token_file: Option<PathBuf>,
    /// Host names requests may name in their `Host` header besides IP addresses, `localhost`
    /// and this machine's name (the DNS-rebinding guard); `".example.com"` allows a domain
    /// and its subdomains, `"*"` any name.
    pub allowed_hosts: Vec<String>,
    pub allow_insecure_plugins: bool,
    /// What this process runs: `all` (workers and the scheduler), `worker` or `scheduler`.
    pub role: Role,
    /// How long a graceful shutdown waits for running jobs before releasing them to `queued`.
    #[serde(deserialize_with = "durations::required")]
    pub shutdown_timeout: Duration,
    /// How long a claimed job's lease lasts without a heartbeat.
    #[serde(deserialize_with = "durations::required")]
    pub lease: Duration,
    /// The idle workers' fallback poll (they normally wake on notifications).
    #[serde(deserialize_with = "durations::required")]
    pub poll_interval: Duration,
    pub default_max_attempts: NonZeroU32,
    /// How long a creating request's Idempotency-Key answers its repeats.
    #[serde(deserialize_with = "durations::required")]
    pub idempotency_window: Duration,
    pub retry: RetryConfig,
    pub retention: Retention,
    pub limits: Limits,
    pub store: StoreConfig,
    /// Settings for every queue that has no table of its own.
    pub default_queue: QueueTable,
    pub queues: BTreeMap<String, QueueTable>,
    /// Where plugin code runs.
    pub isolation: Isolation,
    /// How long a job that was asked to stop (timeout, cancel, shutdown) may take to return
    /// before its worker process is killed.
    #[serde(deserialize_with = "durations::required")]
    pub kill_grace: Duration,
    /// How long a plugin file may take to load when it is first tried, alone, in a throwaway
    /// process (at start and at each reload); one that crashes, hangs or exits there is
    /// rejected and the others load.
    #[serde(deserialize_with = "durations::required")]
    pub plugin_load_timeout: Duration,
    /// Jobs running at once on this host, whatever the queues (each queue bounded by its own
    /// concurrency): the workers, each with its worker process, are shared by every queue.
    pub max_workers: NonZeroUsize,
    /// The most jobs one claim takes for a queue with a backlog, unless the queue starts more
    /// in 25 ms (`processor/pace.rs`): a higher-priority job added meanwhile starts after at
    /// most two claims' worth already claimed. 1 claims job by job.
    pub claim_batch: NonZeroUsize,
    pub worker_limits: WorkerLimits,
    /// Environment variables set for worker processes, beyond the few they keep of the host's
    /// (`PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `TMPDIR`, ...): the host's own secrets
    /// (`PGPASSWORD`, `JOBHOST_TOKEN`, cloud keys) never reach plugin code.
    pub worker_env: BTreeMap<String, String>,
    pub worker_sandbox: WorkerSandbox,
    /// The user worker processes (and load probes) run as, a name or a numeric id; only for a
    /// host started as root. `None`: the host's user.
    pub worker_user: Option<String>,
    /// Their group (default: `worker_user`'s primary group).
    pub worker_group: Option<String>,
    /// Factory name → the plugin file (its name, or a path) that provides it when several do.
    pub factories: BTreeMap<String, String>,
    /// How log lines look: `text` or `json` (`JOBHOST_LOG_FORMAT` wins).
    pub log_format: LogFormat,
    /// How often a line sums up the jobs each queue finished since the last; `never`: none.
    #[serde(deserialize_with = "durations::optional")]
    pub log_summary_interval: Option<Duration>,
    /// This host's name among the hosts sharing a PostgreSQL store (`/v1/hosts`, and the
    /// jobs a host that stops heartbeating leaves). Default: `<machine>-<pid>`.
    pub host_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let processor = ProcessorConfig::default();
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            plugin_dirs: Vec::new(),
            // A constant that parses: checked by the `defaults_match_the_example_file` test.
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7878))),
            token_file: None,
            allowed_hosts: Vec::new(),
            allow_insecure_plugins: false,
            role: Role::All,
            shutdown_timeout: Duration::from_secs(30),
            lease: processor.lease,
            poll_interval: processor.poll_interval,
            default_max_attempts: NonZeroU32::new(processor.default_max_attempts).unwrap_or(NonZeroU32::MIN),
            idempotency_window: processor.idempotency_window,
            retry: RetryConfig { base: processor.retry.base, cap: processor.retry.cap },
            retention: Retention::default(),
            limits: Limits::default(),
            store: StoreConfig::default(),
            default_queue: QueueTable::default(),
            queues: BTreeMap::new(),
            isolation: Isolation::Process,
            kill_grace: processor.kill_grace,
            plugin_load_timeout: crate::workers::DEFAULT_LOAD_TIMEOUT,
            max_workers: NonZeroUsize::new(processor.max_workers).unwrap_or(NonZeroUsize::MIN),
            claim_batch: NonZeroUsize::new(processor.claim_batch).unwrap_or(NonZeroUsize::MIN),
            worker_limits: WorkerLimits::default(),
            worker_env: BTreeMap::new(),
            worker_sandbox: WorkerSandbox::default(),
            worker_user: None,
            worker_group: None,
            factories: BTreeMap::new(),
            log_format: LogFormat::Text,
            log_summary_interval: Some(Duration::from_secs(60)),
            host_name: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses config text; the error names the key (toml's message quotes the line).
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        config.check()?;
        Ok(config)
    }

    /// The configured plugin directories, or the defaults.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        if self.plugin_dirs.is_empty() {
            default_plugin_dirs()
        } else {
            self.plugin_dirs.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::QueueConfig;

    #[test]
    fn defaults_match_the_example_file() {
        let example = include_str!("../../jobhost.example.toml");
        let parsed = Config::parse(example).expect("the example config parses");
        let mut expected = Config::default();
        // The example shows one queue table; everything else is at its default.
        expected.queues.insert("default".into(), QueueTable::default());
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_packaged_config_parses() {
        let config =
            Config::parse(include_str!("../../../packaging/jobhost.toml")).expect("packaging/jobhost.toml");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/jobhost/data"));
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn queue_tables_become_processor_queues() {
        let config = Config::parse(
            "default_max_attempts = 5\n[retry]\nbase = \"2s\"\n[queues.fast]\nconcurrency = 8\nautostart = false",
        )
        .unwrap();
        let processor = config.processor();
        assert_eq!(processor.default_max_attempts, 5);
        assert_eq!(processor.retry.base, Duration::from_secs(2));
        assert_eq!(processor.queues["fast"], QueueConfig { concurrency: 8, autostart: false });
    }
}
