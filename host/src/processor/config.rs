//! How the worker pools run: leases, polling, retries, attempts, the queues, and how long
//! finished jobs are kept.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::retry::RetryPolicy;
use crate::durations;

/// Attempts per job when neither the job nor its factory says.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// How long a claimed job's lease lasts without a heartbeat (renewed every third of it).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The idle workers' fallback poll; they normally wake on notifications.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long a job that was asked to stop (timeout, cancel, shutdown) may take to return
/// before its worker process is killed.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// The most jobs one claim takes under backlog: a higher-priority job added meanwhile starts
/// after at most this many already claimed for its queue.
pub const DEFAULT_CLAIM_BATCH: usize = 32;

/// How long an Idempotency-Key answers its repeats unless `idempotency_window` says otherwise.
pub const DEFAULT_IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The largest result a job records by default (`limits.max_result_bytes`).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 4 * 1024 * 1024;

/// How one queue is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Jobs run at once; 1 is strict FIFO.
    pub concurrency: usize,
    /// Start processing when the host starts (or when the queue is first used).
    pub autostart: bool,
}

impl Default for QueueConfig {
    /// As many workers as CPUs, started automatically.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        QueueConfig { concurrency: cpus, autostart: true }
    }
}

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub lease: Duration,
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    pub default_max_attempts: u32,
    /// Configured queues; any other queue a job names gets `default_queue`.
    pub queues: BTreeMap<String, QueueConfig>,
    pub default_queue: QueueConfig,
    /// How long finished jobs are kept (swept by the service's retention sweeper).
    pub retention: Retention,
    /// How long a job asked to stop may take before its worker process is killed.
    pub kill_grace: Duration,
    /// Jobs running at once on this host, whatever the queues: the workers (each with its
    /// worker process) are shared by every queue, each queue bounded by its `concurrency`.
    pub max_workers: usize,
    /// The most jobs one claim takes for a queue with a backlog (see `Queue::claim_size`).
    pub claim_batch: usize,
    /// How often an info line sums up each queue's ended attempts (`None`: never).
    pub log_summary_interval: Option<Duration>,
    /// This host's name among the hosts sharing a store (default: `<machine>-<pid>`).
    pub host_name: Option<String>,
    /// The largest result a job may record (`limits.max_result_bytes`).
    pub max_result_bytes: usize,
    /// How long a creating request's Idempotency-Key answers its repeats.
    pub idempotency_window: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            retry: RetryPolicy::default(),
            default_max_attempts: DEFAULT_MAX_ATTEMPTS,
            queues: BTreeMap::new(),
            default_queue: QueueConfig::default(),
            retention: Retention::default(),
            kill_grace: DEFAULT_KILL_GRACE,
            max_workers: default_max_workers(),
            claim_batch: DEFAULT_CLAIM_BATCH,
            log_summary_interval: Some(Duration::from_secs(60)),
            host_name: None,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            idempotency_window: DEFAULT_IDEMPOTENCY_WINDOW,
        }
    }
}

/// Two workers per CPU, at least 8: room for a queue at the default concurrency (the CPUs)
/// beside others, without a process per queue.
pub fn default_max_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * cpus).max(8)
}

impl ProcessorConfig {
    /// The settings of queue `name`: its own, or the default queue's.
    pub fn queue(&self, name: &str) -> QueueConfig {
        self.queues.get(name).copied().unwrap_or(self.default_queue)
    }
}

/// How long finished jobs are kept; `None` keeps them until removed by hand. Read from the
/// config file's `[retention]` table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    #[serde(deserialize_with = "durations::optional")]
    pub completed: Option<Duration>,
    #[serde(deserialize_with = "durations::optional")]
    pub error: Option<Duration>,
    #[serde(deserialize_with = "durations::optional")]
    pub cancelled: Option<Duration>,
    /// How often expired jobs are swept.
    #[serde(deserialize_with = "durations::required")]
    pub sweep_interval: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for Retention {
    /// Completed and cancelled jobs a week, failed ones (the dead letters) a month.
    fn default() -> Self {
        Retention {
            completed: Some(7 * DAY),
            error: Some(30 * DAY),
            cancelled: Some(7 * DAY),
            sweep_interval: Duration::from_secs(60),
        }
    }
}
