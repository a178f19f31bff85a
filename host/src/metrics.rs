//! The host's metrics, rendered in the Prometheus text format for `GET /metrics`.
//!
//! **Invariant:** counters only grow and are recorded after the store accepted what they count;
//! gauges of stored jobs are read from the store at scrape time, never kept twice.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::job::Status;
use crate::sync;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    factory: String,
    /// `completed`, `retried`, `failed` (ended in `error`) or `cancelled`.
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FactoryLabels {
    factory: String,
}

type Histograms = Family<FactoryLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 1 ms to about 9 hours, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// What `render` shows of one queue's workers.
#[derive(Debug, Clone, Default)]
pub struct QueueGauges {
    pub queue: String,
    /// Jobs past their timeout or cancel plus the grace that nothing can stop.
    pub stuck: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    state: String,
}

/// What `render` shows of the plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginGauges {
    pub loaded: usize,
    pub rejected: usize,
    pub conflicts: usize,
}

pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Gauge>,
    outcomes: Family<OutcomeLabels, Counter>,
    durations: Histograms,
    plugin_load_failures: Gauge,
    plugins_loaded: Gauge,
    plugin_conflicts: Gauge,
    worker_restarts: Family<QueueLabels, Counter>,
    /// The queues with a restart series of their own (at most [`MAX_QUEUE_SERIES`]).
    restart_queues: Mutex<std::collections::BTreeSet<String>>,
    stuck: Family<QueueLabels, Gauge>,
    workers: Family<WorkerLabels, Gauge>,
    /// Scrapes rebuild the job gauges; one at a time so two cannot interleave.
    render_lock: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jobhost");
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register("jobs", "Stored jobs by queue and status", jobs.clone());
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register("job_outcomes", "Attempts ended, by factory and outcome", outcomes.clone());
        let durations: Histograms = Family::new_with_constructor(duration_histogram);
        registry.register("job_duration_seconds", "How long attempts ran, by factory", durations.clone());
        let plugin_load_failures = Gauge::default();
        registry.register(
            "plugin_load_failures",
            "Plugin files rejected by the last scan",
            plugin_load_failures.clone(),
        );
        let plugins_loaded = Gauge::default();
        registry.register("plugins_loaded", "Plugin libraries loaded", plugins_loaded.clone());
        let plugin_conflicts = Gauge::default();
        registry.register(
            "plugin_conflicts",
            "Factory names two plugin files provide",
            plugin_conflicts.clone(),
        );
        let worker_restarts = Family::<QueueLabels, Counter>::default();
        registry.register(
            "worker_restarts",
            "Worker processes started again after one ended (crash, kill, reload)",
            worker_restarts.clone(),
        );
        let stuck = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "jobs_stuck",
            "Jobs past their timeout or cancel plus the grace that nothing can stop (isolation none)",
            stuck.clone(),
        );
        let workers = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "workers",
            "Workers by state: starting, idle, running, backing_off (waiting to start a process after deaths in a row)",
            workers.clone(),
        );
        Metrics {
            registry,
            jobs,
            outcomes,
            durations,
            plugin_load_failures,
            plugins_loaded,
            plugin_conflicts,
            worker_restarts,
            restart_queues: Mutex::new(std::collections::BTreeSet::new()),
            stuck,
            workers,
            render_lock: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts an ended attempt. `status` is the job's status after it; a requeued job counts
    /// as `retried`.
    pub fn record_attempt(&self, factory: &str, status: Status, elapsed: Duration) {
        let outcome = match status {
            Status::Completed => "completed",
            Status::Error => "failed",
            Status::Cancelled => "cancelled",
            _ => "retried",
        };
        self.outcomes
            .get_or_create(&OutcomeLabels { factory: factory.to_owned(), outcome: outcome.to_owned() })
            .inc();
        self.durations
            .get_or_create(&FactoryLabels { factory: factory.to_owned() })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a worker process started again after one of `queue`'s ended.
    pub fn record_worker_restart(&self, queue: &str) {
        let queue = {
            let mut seen = sync::lock(&self.restart_queues);
            if seen.contains(queue) || seen.len() < MAX_QUEUE_SERIES - 1 {
                seen.insert(queue.to_owned());
                queue.to_owned()
            } else {
                OTHER_QUEUES.to_owned()
            }
        };
        self.worker_restarts.get_or_create(&QueueLabels { queue }).inc();
    }

    /// The text exposition, with the job gauges set from `counts` (queue → status → jobs), the
    /// queues' worker gauges and the plugin gauges.
    pub fn render(
        &self,
        counts: &BTreeMap<String, BTreeMap<Status, u64>>,
        queues: &[QueueGauges],
        workers: &[&str],
        plugins: PluginGauges,
    ) -> String {
        let _one_at_a_time = sync::lock(&self.render_lock);
        self.jobs.clear();
        for (queue, by_status) in bounded(counts) {
            for status in Status::ALL {
                let n = by_status.get(&status).copied().unwrap_or(0);
                let labels = JobLabels { queue: queue.clone(), status: status.to_string() };
                self.jobs.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.stuck.clear();
        // Only queues with stuck jobs (at most one per worker): not a series per queue.
        for q in queues.iter().filter(|q| q.stuck > 0) {
            let labels = QueueLabels { queue: q.queue.clone() };
            self.stuck.get_or_create(&labels).set(i64::try_from(q.stuck).unwrap_or(i64::MAX));
        }
        self.workers.clear();
        for state in ["starting", "idle", "running", "backing_off"] {
            let n = workers.iter().filter(|w| **w == state).count();
            self.workers
                .get_or_create(&WorkerLabels { state: state.to_owned() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.plugins_loaded.set(gauge(plugins.loaded));
        self.plugin_load_failures.set(gauge(plugins.rejected));
        self.plugin_conflicts.set(gauge(plugins.conflicts));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Queues with series of their own in `jobhost_jobs`: any client can add jobs to new queue
/// names, and a scrape must stay small whatever they do.
pub const MAX_QUEUE_SERIES: usize = 100;

/// The label for the queues past [`MAX_QUEUE_SERIES`], summed (not a valid queue name).
pub const OTHER_QUEUES: &str = "(other queues)";

/// `counts` with at most [`MAX_QUEUE_SERIES`] queues: those with the most jobs, and the rest
/// summed under [`OTHER_QUEUES`].
fn bounded(counts: &BTreeMap<String, BTreeMap<Status, u64>>) -> BTreeMap<String, BTreeMap<Status, u64>> {
    if counts.len() <= MAX_QUEUE_SERIES {
        return counts.clone();
    }
    let mut by_size: Vec<(&String, &BTreeMap<Status, u64>)> = counts.iter().collect();
    by_size.sort_by_key(|(name, by_status)| (std::cmp::Reverse(by_status.values().sum::<u64>()), *name));
    let mut kept: BTreeMap<String, BTreeMap<Status, u64>> =
        by_size[..MAX_QUEUE_SERIES - 1].iter().map(|(name, c)| ((*name).clone(), (*c).clone())).collect();
    let others = kept.entry(OTHER_QUEUES.to_owned()).or_default();
    for (_, by_status) in &by_size[MAX_QUEUE_SERIES - 1..] {
        for (status, n) in *by_status {
            *others.entry(*status).or_default() += n;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_series_stay_bounded_whatever_the_number_of_queues() {
        let mut counts = BTreeMap::new();
        for i in 0..5000u64 {
            counts.insert(format!("q{i:04}"), BTreeMap::from([(Status::Queued, i % 7 + 1)]));
        }
        let kept = bounded(&counts);
        assert_eq!(kept.len(), MAX_QUEUE_SERIES);
        let total =
            |c: &BTreeMap<String, BTreeMap<Status, u64>>| c.values().flat_map(|s| s.values()).sum::<u64>();
        assert_eq!(total(&kept), total(&counts), "nothing lost in the sum");
        assert!(kept.contains_key(OTHER_QUEUES));
        assert!(kept.keys().filter(|k| *k != OTHER_QUEUES).all(|k| counts[k][&Status::Queued] == 7));
    }

    #[test]
    fn renders_counts_outcomes_and_durations() {
        let metrics = Metrics::default();
        metrics.record_attempt("echo", Status::Completed, Duration::from_millis(3));
        metrics.record_attempt("fatal", Status::Queued, Duration::from_millis(1));
        let counts = BTreeMap::from([("default".to_owned(), BTreeMap::from([(Status::Queued, 4)]))]);
        metrics.record_worker_restart("default");
        let queues = [QueueGauges { queue: "default".into(), stuck: 1 }];
        let plugins = PluginGauges { loaded: 4, rejected: 1, conflicts: 0 };
        let text = metrics.render(&counts, &queues, &["running", "backing_off", "running"], plugins);
        assert!(text.contains("jobhost_jobs{queue=\"default\",status=\"queued\"} 4"), "{text}");
        assert!(text.contains("jobhost_jobs{queue=\"default\",status=\"error\"} 0"), "{text}");
        assert!(
            text.contains("jobhost_job_outcomes_total{factory=\"echo\",outcome=\"completed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("jobhost_job_outcomes_total{factory=\"fatal\",outcome=\"retried\"} 1"),
            "{text}"
        );
        assert!(text.contains("jobhost_job_duration_seconds_count{factory=\"echo\"} 1"), "{text}");
        assert!(text.contains("jobhost_plugin_load_failures 1"), "{text}");
        assert!(text.contains("jobhost_worker_restarts_total{queue=\"default\"} 1"), "{text}");
        assert!(text.contains("jobhost_jobs_stuck{queue=\"default\"} 1"), "{text}");
        assert!(text.contains("jobhost_workers{state=\"running\"} 2"), "{text}");
        assert!(text.contains("jobhost_workers{state=\"backing_off\"} 1"), "{text}");
    }
}
