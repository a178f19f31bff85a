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

pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Gauge>,
    outcomes: Family<OutcomeLabels, Counter>,
    durations: Histograms,
    plugin_load_failures: Gauge,
    plugins_loaded: Gauge,
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
        Metrics {
            registry,
            jobs,
            outcomes,
            durations,
            plugin_load_failures,
            plugins_loaded,
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

    /// The text exposition, with the job gauges set from `counts` (queue → status → jobs) and
    /// the plugin gauges from the registry's last scan.
    pub fn render(
        &self,
        counts: &BTreeMap<String, BTreeMap<Status, u64>>,
        plugins: usize,
        rejected: usize,
    ) -> String {
        let _one_at_a_time = sync::lock(&self.render_lock);
        self.jobs.clear();
        for (queue, by_status) in counts {
            for status in Status::ALL {
                let n = by_status.get(&status).copied().unwrap_or(0);
                let labels = JobLabels { queue: queue.clone(), status: status.to_string() };
                self.jobs.get_or_create(&labels).set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.plugins_loaded.set(i64::try_from(plugins).unwrap_or(i64::MAX));
        self.plugin_load_failures.set(i64::try_from(rejected).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_outcomes_and_durations() {
        let metrics = Metrics::default();
        metrics.record_attempt("echo", Status::Completed, Duration::from_millis(3));
        metrics.record_attempt("fatal", Status::Queued, Duration::from_millis(1));
        let counts = BTreeMap::from([("default".to_owned(), BTreeMap::from([(Status::Queued, 4)]))]);
        let text = metrics.render(&counts, 4, 1);
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
    }
}
