//! The service's configuration: the TOML file `jobhost serve --config` reads, its defaults, and
//! how it becomes the processor's, store's and server's settings.
//!
//! **Invariant:** every key has a default documented in `host/jobhost.example.toml` (a test
//! parses that file and compares it with [`Config::default`]); an unknown key or a bad value is
//! an error that names the key, never a silent fallback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::durations;
use crate::processor::{ProcessorConfig, QueueConfig, Retention, RetryPolicy};
use crate::store::{ClaimDurability, StoreOptions};

/// Where the server listens when nothing says otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "jobhost-data";
/// The default plugin directory, relative to the working directory; the directory holding the
/// `jobhost` binary is searched too, which is where `cargo build` puts the example plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "plugins";

/// The shortest `lease`: renewed every third of it by a supervisor that looks every 25 ms,
/// a lease must outlast a store flush and a scheduling hiccup many times over.
const MIN_LEASE: Duration = Duration::from_secs(1);
const MIN_POLL: Duration = Duration::from_millis(10);
const MIN_KILL_GRACE: Duration = Duration::from_millis(100);
const MIN_FLUSH: Duration = Duration::from_millis(1);

/// The smallest `worker_limits.address_space`: below it a worker process cannot start.
const MIN_ADDRESS_SPACE: u64 = 64 << 20;

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
    /// Jobs running at once on this host, whatever the queues (each queue bounded by its own
    /// concurrency): the workers, each with its worker process, are shared by every queue.
    pub max_workers: NonZeroUsize,
    /// The most jobs one claim takes for a queue with a backlog (a higher-priority job added
    /// meanwhile starts after at most this many already claimed). 1 claims job by job.
    pub claim_batch: NonZeroUsize,
    pub worker_limits: WorkerLimits,
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

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[time LEVEL target] message field=value ...`
    #[default]
    Text,
    /// One JSON object a line: `ts`, `level`, `target`, `message` and the fields.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Where plugin code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// In worker processes: a plugin that hangs, crashes or exits costs only its own job.
    #[default]
    Process,
    /// In the host process, for trusted plugins: the last microsecond, and no protection.
    None,
}

/// Resource limits of each worker process; unset keys leave the inherited limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerLimits {
    /// Address space, e.g. "2GiB" (RLIMIT_AS).
    #[serde(deserialize_with = "optional_bytes")]
    pub address_space: Option<u64>,
    /// CPU time of one job, e.g. "10m" (RLIMIT_CPU, reset before each job).
    #[serde(deserialize_with = "optional_duration")]
    pub cpu_time: Option<Duration>,
    /// Open file descriptors (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
}

fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// Where to listen: an address, or a host name and port, resolved now (its first address).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let shown = crate::text::clip(text);
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{shown:?} resolves to no address")),
        Err(e) => Err(format!("{shown:?} is not an address or host:port ({e}); write e.g. \"127.0.0.1:7878\" or \"localhost:7878\"")),
    }
}

fn optional_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = String::deserialize(d)?;
    crate::workers::parse_bytes(&text).map(Some).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    durations::required(d).map(Some)
}

/// Which loops a `serve` process runs. With the embedded store one process holds the data, so
/// splitting pays off fully with a shared store; the loops are independent either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queue workers and the scheduler.
    #[default]
    All,
    /// Only the queue workers: schedules are not fired here.
    Worker,
    /// Only the scheduler: jobs are accepted and scheduled, not run here.
    Scheduler,
}

impl Role {
    pub fn runs_workers(self) -> bool {
        self != Role::Scheduler
    }

    pub fn runs_scheduler(self) -> bool {
        self != Role::Worker
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay before the second attempt; doubles each attempt, with jitter.
    #[serde(deserialize_with = "durations::required")]
    pub base: Duration,
    /// No retry delay exceeds this.
    #[serde(deserialize_with = "durations::required")]
    pub cap: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, bytes.
    pub max_body_bytes: NonZeroUsize,
    /// Longest long poll (`GET /v1/jobs/{id}?wait=`).
    #[serde(deserialize_with = "durations::required")]
    pub max_wait: Duration,
    /// Largest page of `GET /v1/jobs`.
    pub max_page: NonZeroUsize,
    /// Most jobs in one `POST /v1/jobs/batch`.
    pub max_batch_jobs: NonZeroUsize,
    /// Largest `POST /v1/jobs/batch` body, bytes.
    pub max_batch_body_bytes: NonZeroUsize,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: NonZeroUsize,
    /// A connection that sends no complete request head this long (half-sent, or idle
    /// between requests) is closed.
    #[serde(deserialize_with = "durations::required")]
    pub header_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// A PostgreSQL store shared by every host given the same URL; none: the embedded store
    /// in the data directory.
    pub url: Option<StoreUrl>,
    /// A file holding the database password, when the URL has none (else `PGPASSWORD`).
    pub password_file: Option<PathBuf>,
    /// A PEM certificate to trust for TLS to the database (`sslmode=require` in the URL), beside
    /// the system's roots: a private CA, or the server's own self-signed certificate.
    pub ca_file: Option<PathBuf>,
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// How often changes that are not flushed on the spot (outcomes, progress) reach the disk.
    #[serde(deserialize_with = "durations::required")]
    pub flush_interval: Duration,
    /// How a claim is kept before its job runs (see `ClaimDurability`).
    pub claims: ClaimDurability,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueTable {
    /// Jobs run at once; 1 is strict FIFO. Default: the number of CPUs.
    #[serde(default = "default_concurrency")]
    pub concurrency: NonZeroUsize,
    #[serde(default = "default_true")]
    pub autostart: bool,
}

fn default_concurrency() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

fn default_true() -> bool {
    true
}

impl Default for QueueTable {
    fn default() -> Self {
        QueueTable { concurrency: default_concurrency(), autostart: true }
    }
}

impl Default for Config {
    fn default() -> Self {
        let processor = ProcessorConfig::default();
        let store = StoreOptions::default();
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            plugin_dirs: Vec::new(),
            // A constant that parses: checked by the `defaults_match_the_example_file` test.
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7878))),
            token_file: None,
            allow_insecure_plugins: false,
            role: Role::All,
            shutdown_timeout: Duration::from_secs(30),
            lease: processor.lease,
            poll_interval: processor.poll_interval,
            default_max_attempts: NonZeroU32::new(processor.default_max_attempts).unwrap_or(NonZeroU32::MIN),
            retry: RetryConfig { base: processor.retry.base, cap: processor.retry.cap },
            retention: Retention::default(),
            limits: Limits::default(),
            store: StoreConfig {
                url: None,
                password_file: None,
                ca_file: None,
                cache_bytes: store.cache_bytes,
                flush_interval: Duration::from_millis(store.flush_interval_ms),
                claims: store.claims,
            },
            default_queue: QueueTable::default(),
            queues: BTreeMap::new(),
            isolation: Isolation::Process,
            kill_grace: processor.kill_grace,
            max_workers: NonZeroUsize::new(processor.max_workers).unwrap_or(NonZeroUsize::MIN),
            claim_batch: NonZeroUsize::new(processor.claim_batch).unwrap_or(NonZeroUsize::MIN),
            worker_limits: WorkerLimits::default(),
            factories: BTreeMap::new(),
            log_format: LogFormat::Text,
            log_summary_interval: Some(Duration::from_secs(60)),
            host_name: None,
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        RetryConfig { base: retry.base, cap: retry.cap }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: NonZeroUsize::new(1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            max_wait: Duration::from_secs(300),
            max_page: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            max_batch_jobs: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            max_batch_body_bytes: NonZeroUsize::new(16 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// A store URL as configured. Shown (in `--check-config`, logs, errors) without its
/// password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match crate::store::postgres::parse_url(&self.0) {
            Ok(config) => write!(f, "{:?}", crate::store::postgres::describe(&config)),
            Err(_) => f.write_str("\"(not a PostgreSQL URL)\""),
        }
    }
}

impl StoreUrl {
    /// The connection settings: the URL's, with the password from `password_file` or
    /// `PGPASSWORD` when the URL carries none.
    pub fn connection(
        &self,
        password_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> Result<(postgres::Config, crate::store::postgres::Tls), String> {
        let mut config = crate::store::postgres::parse_url(&self.0).map_err(|e| e.to_string())?;
        if config.get_password().is_none() {
            if let Some(path) = password_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read store.password_file {}: {e}", path.display()))?;
                config.password(text.trim_end_matches(['\n', '\r']));
            } else if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        let tls = crate::store::postgres::Tls::for_config(&config, ca_file).map_err(|e| e.to_string())?;
        Ok((config, tls))
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Config::default().store
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

    /// Rules that span keys or that serde's types cannot say.
    fn check(&self) -> Result<(), String> {
        for name in self.queues.keys() {
            if !crate::job::is_valid_name(name) {
                return Err(format!(
                    "queues.{name}: invalid queue name; use 1 to {} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`",
                    crate::job::MAX_NAME_LEN
                ));
            }
        }
        let positive = [
            ("lease", self.lease),
            ("poll_interval", self.poll_interval),
            ("retry.base", self.retry.base),
            ("retry.cap", self.retry.cap),
            ("retention.sweep_interval", self.retention.sweep_interval),
            ("store.flush_interval", self.store.flush_interval),
            ("kill_grace", self.kill_grace),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{key}: must be longer than zero"));
        }
        if self.retry.cap < self.retry.base {
            return Err("retry.cap: must not be shorter than retry.base".to_owned());
        }
        // Settings that only make sense against each other or against the supervisor, which
        // looks at running jobs every 25 ms.
        let floors = [
            (
                "lease",
                self.lease,
                MIN_LEASE,
                "a running job's lease is renewed every third of it; a shorter one expires under a job that is still running",
            ),
            ("poll_interval", self.poll_interval, MIN_POLL, "idle workers would spin"),
            ("kill_grace", self.kill_grace, MIN_KILL_GRACE, "a job needs time to see its cancellation flag"),
            ("store.flush_interval", self.store.flush_interval, MIN_FLUSH, "every flush is a disk sync"),
        ];
        for (key, value, floor, why) in floors {
            if value < floor {
                return Err(format!(
                    "{key}: at least {} ({why}), not {}",
                    humantime::format_duration(floor),
                    humantime::format_duration(value)
                ));
            }
        }
        if let Some(name) = &self.host_name {
            if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
                return Err(format!(
                    "host_name: 1 to 64 characters without control characters, not {:?}",
                    crate::text::clip(name)
                ));
            }
        }
        if self.lease <= self.poll_interval {
            return Err(format!(
                "lease: must be longer than poll_interval ({}), or idle workers could not renew it in time",
                humantime::format_duration(self.poll_interval)
            ));
        }
        let limits = &self.worker_limits;
        if limits.address_space.is_some_and(|b| b < MIN_ADDRESS_SPACE) {
            return Err(format!(
                "worker_limits.address_space: at least {} (a worker process needs room to start)",
                crate::workers::format_bytes(MIN_ADDRESS_SPACE)
            ));
        }
        if limits.cpu_time.is_some_and(|t| t < Duration::from_secs(1)) {
            return Err(
                "worker_limits.cpu_time: at least 1s (the kernel counts CPU time in seconds)".to_owned()
            );
        }
        if limits.open_files.is_some_and(|n| n < 16) {
            return Err(
                "worker_limits.open_files: at least 16 (a worker process needs a few itself)".to_owned()
            );
        }
        for (name, file) in &self.factories {
            if !crate::job::is_valid_name(name) {
                return Err(format!("factories.{name}: not a factory name"));
            }
            if file.trim().is_empty() {
                return Err(format!("factories.{name}: name the plugin file that provides it"));
            }
        }
        Ok(())
    }

    /// The configured plugin directories, or the defaults.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        if self.plugin_dirs.is_empty() {
            default_plugin_dirs()
        } else {
            self.plugin_dirs.clone()
        }
    }

    pub fn processor(&self) -> ProcessorConfig {
        let queue = |t: &QueueTable| QueueConfig { concurrency: t.concurrency.get(), autostart: t.autostart };
        ProcessorConfig {
            lease: self.lease,
            poll_interval: self.poll_interval,
            retry: RetryPolicy { base: self.retry.base, cap: self.retry.cap },
            default_max_attempts: self.default_max_attempts.get(),
            queues: self.queues.iter().map(|(name, t)| (name.clone(), queue(t))).collect(),
            default_queue: queue(&self.default_queue),
            retention: self.retention,
            kill_grace: self.kill_grace,
            max_workers: self.max_workers.get(),
            claim_batch: self.claim_batch.get(),
            log_summary_interval: self.log_summary_interval,
            host_name: self.host_name.clone(),
        }
    }

    pub fn worker_limits(&self) -> crate::workers::Limits {
        crate::workers::Limits {
            address_space: self.worker_limits.address_space,
            cpu_time: self.worker_limits.cpu_time,
            open_files: self.worker_limits.open_files,
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            cache_bytes: self.store.cache_bytes,
            flush_interval_ms: u64::try_from(self.store.flush_interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            claims: self.store.claims,
            on_loss: crate::store::OnLoss::Refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_example_file() {
        let example = include_str!("../jobhost.example.toml");
        let parsed = Config::parse(example).expect("the example config parses");
        let mut expected = Config::default();
        // The example shows one queue table; everything else is at its default.
        expected.queues.insert("default".into(), QueueTable::default());
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_packaged_config_parses() {
        let config =
            Config::parse(include_str!("../../packaging/jobhost.toml")).expect("packaging/jobhost.toml");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/jobhost/data"));
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let cases = [
            ("listn = \"127.0.0.1:1\"", "listn"),
            ("[queues.fast]\nconcurency = 2", "concurency"),
            ("[queues.fast]\nconcurrency = 0", "concurrency"),
            ("[queues.fast]\nconcurrency = \"two\"", "concurrency"),
            ("lease = \"soon\"", "lease"),
            ("lease = \"0s\"", "lease"),
            ("role = \"boss\"", "role"),
            ("listen = \"localhost\"", "listen"),
            ("listen = \"no such host.invalid:80\"", "listen"),
            ("[retry]\nbase = \"10m\"\ncap = \"1m\"", "retry.cap"),
            ("[queues.\"bad name\"]", "queues.bad name"),
            ("[limits]\nmax_body_bytes = -1", "max_body_bytes"),
            ("isolation = \"thread\"", "isolation"),
            ("kill_grace = \"0s\"", "kill_grace"),
            ("lease = \"10ms\"", "lease: at least 1s"),
            ("lease = \"1ns\"", "lease: at least 1s"),
            ("lease = \"2s\"\npoll_interval = \"5s\"", "lease: must be longer than poll_interval"),
            ("poll_interval = \"1ms\"", "poll_interval: at least 10ms"),
            ("kill_grace = \"1ms\"", "kill_grace: at least 100ms"),
            ("max_workers = 0", "max_workers"),
            ("[worker_limits]\naddress_space = \"1MiB\"", "worker_limits.address_space"),
            ("[worker_limits]\naddress_space = \"lots\"", "address_space"),
            ("[worker_limits]\ncpu_time = \"100ms\"", "worker_limits.cpu_time"),
            ("[worker_limits]\nopen_files = 3", "worker_limits.open_files"),
            ("[factories]\n\"no name\" = \"libx.so\"", "factories.no name"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).expect_err(text);
            assert!(err.contains(key), "error for {text:?} should name {key:?}: {err}");
        }
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
