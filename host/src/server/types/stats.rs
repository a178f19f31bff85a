//! `GET /v1/stats`: throughput per second and latency percentiles, from the store's history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/stats`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Seconds the series covers (the window asked for, rounded up to whole steps).
    pub window: i64,
    /// Seconds per point.
    pub step: i64,
    /// Oldest first: each point's start (RFC 3339) and its jobs per second. The last point
    /// is the current minute's, so far.
    pub series: Vec<StatsPoint>,
    /// Per queue, attempts in the window that ended the job completed, failed (in `error`) or
    /// retried. Queues beyond 500 in a minute are summed under `(other queues)`.
    pub queues: BTreeMap<String, QueueTotals>,
    /// Attempts the percentiles are taken over: every attempt that ended in the window.
    pub samples: u64,
    /// Attempt run time, milliseconds (each percentile within about 19 % above the true value;
    /// the maximum exact).
    pub run_ms: PercentilesView,
    /// From when a job was due to when its attempt started, milliseconds.
    pub wait_ms: PercentilesView,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsPoint {
    pub at: String,
    pub completed: f64,
    pub failed: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueTotals {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PercentilesView {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl StatsView {
    pub fn new(snap: crate::history::Snapshot) -> Self {
        let p = |p: crate::history::Percentiles| PercentilesView {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            max: p.max,
        };
        StatsView {
            window: snap.window,
            step: snap.step,
            series: snap
                .series
                .iter()
                .map(|pt| StatsPoint {
                    at: crate::clock::rfc3339(pt.at * 1_000_000),
                    completed: pt.completed,
                    failed: pt.failed,
                })
                .collect(),
            queues: snap
                .totals
                .into_iter()
                .map(|(q, t)| {
                    (q, QueueTotals { completed: t.completed, failed: t.failed, retried: t.retried })
                })
                .collect(),
            samples: snap.samples,
            run_ms: p(snap.run),
            wait_ms: p(snap.wait),
        }
    }
}
