//! `GET /v1/stats`: throughput per second and latency percentiles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/stats`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Seconds per point.
    pub step: i64,
    /// The last hour, oldest first: each point's start (RFC 3339) and its jobs per second.
    pub series: Vec<StatsPoint>,
    /// Per queue, jobs completed and failed (ended in `error`) in the last hour.
    pub queues: BTreeMap<String, QueueTotals>,
    /// Attempts the percentiles are taken over (the latest, at most 4096).
    pub samples: usize,
    /// Attempt run time, milliseconds.
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
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PercentilesView {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl StatsView {
    pub fn new(snap: crate::history::Snapshot, step: i64) -> Self {
        let p = |p: crate::history::Percentiles| PercentilesView {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            max: p.max,
        };
        StatsView {
            step,
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
                .map(|(q, (completed, failed))| (q, QueueTotals { completed, failed }))
                .collect(),
            samples: snap.samples,
            run_ms: p(snap.run),
            wait_ms: p(snap.wait),
        }
    }
}
