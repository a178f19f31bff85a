//! The tables and values a config is made of, each with its default, and the parsers serde
//! uses for them.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::durations;
use crate::processor::RetryPolicy;
use crate::store::{ClaimDurability, StoreOptions};

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

/// What the filesystem lets worker processes (and what their plugins start) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilesystemAccess {
    /// Read everything, write only to the worker's scratch directory (its `TMPDIR`), `/dev`
    /// and `worker_sandbox.write_paths`: Landlock, where the kernel offers it.
    #[default]
    ReadOnly,
    /// What the host's user may do.
    Unrestricted,
}

/// `[worker_sandbox]`: least privilege for worker processes beyond their resource limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSandbox {
    pub filesystem: FilesystemAccess,
    /// Directories (and files) workers may write to besides their scratch directory.
    pub write_paths: Vec<PathBuf>,
    /// `[worker_sandbox.plugins.NAME]`, NAME as `/v1/plugins` lists the plugin: paths only
    /// that plugin's workers may write. Its jobs then run in workers that load that plugin
    /// alone, so no other plugin's code ever holds those rights.
    pub plugins: std::collections::BTreeMap<String, PluginSandbox>,
}

/// `[worker_sandbox.plugins.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSandbox {
    /// Directories (and files) this plugin's workers may write to, beyond everyone's.
    pub write_paths: Vec<PathBuf>,
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
    /// Jobs a worker process runs before it is replaced by a fresh one (between jobs): bounds
    /// what a plugin leaks (memory, descriptors, threads) across jobs. Default: no limit.
    pub max_jobs: Option<std::num::NonZeroU64>,
    /// Output (stderr and stdout of the worker and whatever it starts) one job may add to the
    /// host's log, e.g. "1MiB" (the default); the rest is dropped and counted.
    #[serde(deserialize_with = "optional_bytes")]
    pub output_per_job: Option<u64>,
}

pub(super) fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
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
    /// The most job data (inputs, results, errors) one page of `GET /v1/jobs` carries; a page
    /// ends early, with its cursor, rather than pass it (never before its first job).
    pub max_page_bytes: NonZeroUsize,
    /// The largest result a job may record, bytes of JSON; a larger one fails the job
    /// (`result too large`), so no job grows a page or a response without bound.
    pub max_result_bytes: NonZeroUsize,
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
            max_page_bytes: NonZeroUsize::new(8 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            max_result_bytes: NonZeroUsize::new(crate::processor::DEFAULT_MAX_RESULT_BYTES)
                .unwrap_or(NonZeroUsize::MIN),
            max_batch_jobs: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            max_batch_body_bytes: NonZeroUsize::new(16 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// A store URL as configured; `runtime` connects with it. Shown (in `--check-config`, logs,
/// errors) without its password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.without_password())
    }
}

impl StoreUrl {
    /// The URL as written, less any password: the one in `user:password@` and any
    /// `password=` setting (in the query string, or in the `key=value` form).
    pub fn without_password(&self) -> String {
        let text = self.0.as_str();
        let (head, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (format!("{scheme}://"), rest),
            None => (String::new(), text),
        };
        let rest = match (head.is_empty(), rest.split_once('@')) {
            (false, Some((userinfo, host))) if !userinfo.contains('/') => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                format!("{user}@{host}")
            }
            _ => rest.to_owned(),
        };
        let hidden = rest
            .split_inclusive(['?', '&', ' '])
            .map(|part| match part.trim_start().strip_prefix("password=") {
                Some(value) => {
                    let end = value.find(['&', ' ']).map_or("", |i| &value[i..]);
                    format!("{}password=***{end}", &part[..part.len() - part.trim_start().len()])
                }
                None => part.to_owned(),
            })
            .collect::<String>();
        format!("{head}{hidden}")
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let store = StoreOptions::default();
        StoreConfig {
            url: None,
            password_file: None,
            ca_file: None,
            cache_bytes: store.cache_bytes,
            flush_interval: Duration::from_millis(store.flush_interval_ms),
            claims: store.claims,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_is_shown_without_its_password() {
        let cases = [
            ("postgres://jobhost:s3cret@db.example.com/jobs", "postgres://jobhost@db.example.com/jobs"),
            (
                "postgres://jobhost@db/jobs?sslmode=require&password=s3cret",
                "postgres://jobhost@db/jobs?sslmode=require&password=***",
            ),
            (
                "postgres://db/jobs?password=s3cret&sslmode=require",
                "postgres://db/jobs?password=***&sslmode=require",
            ),
            (
                "host=db user=jobhost password=s3cret dbname=jobs",
                "host=db user=jobhost password=*** dbname=jobs",
            ),
            ("postgres://db/jobs", "postgres://db/jobs"),
        ];
        for (url, shown) in cases {
            assert_eq!(StoreUrl(url.to_owned()).without_password(), shown, "{url}");
        }
    }
}
