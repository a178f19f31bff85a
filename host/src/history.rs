//! Throughput and latency history: per minute and queue, jobs completed, failed and retried,
//! and histograms of run and wait times. A host counts its own attempts here ([`History`]) and
//! adds them to the store every few seconds (`service::history`); the store keeps
//! [`KEEP_MINUTES`] of them and, on PostgreSQL, sums every host's into one row per minute and
//! queue. The dashboard's chart and percentiles are read back from the store
//! ([`Snapshot::build`]), so they survive restarts and cover every host.
//!
//! Histograms, not samples: two hosts' histograms add up, samples do not. A bucket is a half
//! power of two (about ±19 % around its middle), which is what a p99 on a dashboard needs.
//!
//! **Invariant:** bounded: the pending rows are at most [`MAX_PENDING`] (the oldest dropped
//! while the store cannot take them) and at most [`MAX_QUEUES_PER_MINUTE`] queues per minute
//! (the rest counted under [`OTHER_QUEUES`]); the store keeps [`KEEP_MINUTES`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Micros;
use crate::job::Status;
use crate::sync;

/// How long the store keeps the history: 7 days of minutes.
pub const KEEP_MINUTES: i64 = 7 * 24 * 60;
/// The widest window a snapshot covers, in seconds.
pub const MAX_WINDOW_SECONDS: i64 = KEEP_MINUTES * 60;
/// Histogram buckets: bucket `i >= 1` holds values from 2^((i-1)/2) to 2^(i/2) microseconds;
/// the last also everything longer (about 9.5 days).
pub const BUCKETS: usize = 80;
/// Queues counted one by one in a minute; more are summed under [`OTHER_QUEUES`], so a client
/// that invents queue names cannot grow the history without bound.
pub const MAX_QUEUES_PER_MINUTE: usize = 500;
/// The name the queues beyond [`MAX_QUEUES_PER_MINUTE`] are counted under (not a valid queue
/// name, so it names no real queue).
pub const OTHER_QUEUES: &str = "(other queues)";
/// Rows a host keeps while the store cannot take them (about 3 hours of 10 busy queues).
pub const MAX_PENDING: usize = 2_000;

/// One minute of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Attempts that ended with the job `completed`.
    pub completed: u64,
    /// Attempts that ended with the job in `error`.
    pub failed: u64,
    /// Attempts that failed and left the job queued for another.
    pub retried: u64,
    /// Attempt run times, microseconds.
    pub run: Histogram,
    /// From when a job was due to its attempt's start, microseconds.
    pub wait: Histogram,
}

/// Counts per bucket (trailing empty buckets left out) and the largest value seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub max: u64,
}

/// A stored row: `minute` is minutes since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub minute: i64,
    pub queue: String,
    pub counts: Counts,
}

impl Histogram {
    pub fn add(&mut self, micros: u64) {
        let i = bucket(micros);
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += 1;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Percentiles in milliseconds: the upper edge of the bucket holding the nearest rank,
    /// never above the largest value seen.
    pub fn percentiles(&self) -> Percentiles {
        let n = self.count();
        if n == 0 {
            return Percentiles::default();
        }
        let rank = |p: f64| {
            let wanted = ((p * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for (i, c) in self.buckets.iter().enumerate() {
                seen += c;
                if seen >= wanted {
                    return upper_edge(i).min(self.max as f64) / 1000.0;
                }
            }
            self.max as f64 / 1000.0
        };
        Percentiles { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: self.max as f64 / 1000.0 }
    }
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) {
        self.completed += other.completed;
        self.failed += other.failed;
        self.retried += other.retried;
        self.run.merge(&other.run);
        self.wait.merge(&other.wait);
    }
}

fn bucket(micros: u64) -> usize {
    if micros == 0 {
        return 0;
    }
    ((2.0 * (micros as f64).log2()).floor() as usize + 1).min(BUCKETS - 1)
}

fn upper_edge(i: usize) -> f64 {
    2f64.powf(i as f64 / 2.0)
}

/// What this host counted and has not yet added to the store.
#[derive(Default)]
pub struct History(Mutex<BTreeMap<(i64, String), Counts>>);

impl History {
    /// Counts an attempt that ended with the job in `status` at `now`; `wait` is from when it
    /// was due to when it started.
    pub fn record(&self, queue: &str, status: Status, ran: Duration, wait: Duration, now: Micros) {
        let minute = now.div_euclid(60_000_000);
        let mut pending = sync::lock(&self.0);
        let mut key = (minute, queue.to_owned());
        if !pending.contains_key(&key) {
            let this_minute = (minute, String::new())..(minute + 1, String::new());
            if pending.range(this_minute).count() >= MAX_QUEUES_PER_MINUTE {
                key.1 = OTHER_QUEUES.to_owned();
            }
            if !pending.contains_key(&key) && pending.len() >= MAX_PENDING {
                pending.pop_first();
            }
        }
        let counts = pending.entry(key).or_default();
        match status {
            Status::Completed => counts.completed += 1,
            Status::Error => counts.failed += 1,
            Status::Queued | Status::Scheduled => counts.retried += 1,
            _ => {}
        }
        counts.run.add(micros(ran));
        counts.wait.add(micros(wait));
    }

    /// Everything counted so far, for the store; the history is empty afterwards.
    pub fn take(&self) -> Vec<Row> {
        let pending = std::mem::take(&mut *sync::lock(&self.0));
        pending.into_iter().map(|((minute, queue), counts)| Row { minute, queue, counts }).collect()
    }

    /// Rows the store did not take, back for the next try (bounded by [`MAX_PENDING`]).
    pub fn put_back(&self, rows: Vec<Row>) {
        let mut pending = sync::lock(&self.0);
        for row in rows {
            pending.entry((row.minute, row.queue)).or_default().merge(&row.counts);
        }
        while pending.len() > MAX_PENDING {
            pending.pop_first();
        }
    }

    /// The rows not yet in the store (this host's last seconds), for a snapshot.
    pub fn pending(&self) -> Vec<Row> {
        let pending = sync::lock(&self.0);
        pending
            .iter()
            .map(|((minute, queue), counts)| Row {
                minute: *minute,
                queue: queue.clone(),
                counts: counts.clone(),
            })
            .collect()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One bucket of the series: jobs per second averaged over the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The bucket's start, in seconds since the epoch.
    pub at: i64,
    pub completed: f64,
    pub failed: f64,
}

/// The 50th, 90th and 99th percentiles and the maximum, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Per queue, over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The window, in seconds, and the bucket width (both whole minutes).
    pub window: i64,
    pub step: i64,
    pub series: Vec<Point>,
    pub totals: BTreeMap<String, Totals>,
    /// Attempts the percentiles are taken over (every attempt that ended in the window).
    pub samples: u64,
    pub run: Percentiles,
    pub wait: Percentiles,
}

impl Snapshot {
    /// The `window` seconds up to `now`, in buckets of `step` seconds (both whole minutes,
    /// checked by the caller), oldest first; the last bucket ends with the minute holding
    /// `now`. `rows` may repeat a minute and queue (the store's and the pending ones).
    pub fn build(rows: impl IntoIterator<Item = Row>, now: Micros, window: i64, step: i64) -> Snapshot {
        let step_min = (step / 60).max(1);
        let n = ((window / 60).max(1) + step_min - 1) / step_min;
        let now_min = now.div_euclid(60_000_000);
        let first = now_min - n * step_min + 1;
        let mut series: Vec<Point> =
            (0..n).map(|i| Point { at: (first + i * step_min) * 60, completed: 0.0, failed: 0.0 }).collect();
        let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
        let (mut run, mut wait) = (Histogram::default(), Histogram::default());
        for row in rows {
            if !(first..=now_min).contains(&row.minute) {
                continue;
            }
            let point = &mut series[((row.minute - first) / step_min) as usize];
            point.completed += row.counts.completed as f64;
            point.failed += row.counts.failed as f64;
            let t = totals.entry(row.queue).or_default();
            t.completed += row.counts.completed;
            t.failed += row.counts.failed;
            t.retried += row.counts.retried;
            run.merge(&row.counts.run);
            wait.merge(&row.counts.wait);
        }
        // A wide window may hold more queues than any minute: the busiest are named, the rest
        // summed, so the answer stays bounded.
        if totals.len() > MAX_QUEUES_PER_MINUTE {
            let mut by_activity: Vec<(String, Totals)> = std::mem::take(&mut totals).into_iter().collect();
            by_activity.sort_by_key(|(name, t)| {
                (std::cmp::Reverse(t.completed + t.failed + t.retried), name.clone())
            });
            let rest = by_activity.split_off(MAX_QUEUES_PER_MINUTE - 1);
            totals = by_activity.into_iter().collect();
            let other = totals.entry(OTHER_QUEUES.to_owned()).or_default();
            for (_, t) in rest {
                other.completed += t.completed;
                other.failed += t.failed;
                other.retried += t.retried;
            }
        }
        let seconds = (step_min * 60) as f64;
        for point in &mut series {
            point.completed /= seconds;
            point.failed /= seconds;
        }
        Snapshot {
            window: n * step_min * 60,
            step: step_min * 60,
            series,
            totals,
            samples: run.count(),
            run: run.percentiles(),
            wait: wait.percentiles(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Micros = 1_000_000;
    const MIN: Micros = 60 * SEC;

    #[test]
    fn counts_per_minute_and_queue_and_builds_the_window_from_rows() {
        let h = History::default();
        let t0 = 1_000_000 * MIN;
        let ms = Duration::from_millis;
        h.record("a", Status::Completed, ms(10), ms(1), t0);
        h.record("a", Status::Completed, ms(20), ms(2), t0 + 30 * SEC);
        h.record("a", Status::Error, ms(30), ms(3), t0 + MIN);
        h.record("b", Status::Queued, ms(40), ms(4), t0 + MIN); // a retry
        let rows = h.take();
        assert_eq!(rows.len(), 3);
        assert!(h.take().is_empty());
        // The same rows twice (another host's): everything doubles.
        let twice = rows.iter().cloned().chain(rows.iter().cloned());
        let snap = Snapshot::build(twice, t0 + MIN + 5 * SEC, 3600, 60);
        assert_eq!((snap.window, snap.step, snap.series.len()), (3600, 60, 60));
        let last = snap.series.last().unwrap();
        assert_eq!((last.at, last.failed), ((t0 + MIN) / SEC, 2.0 / 60.0));
        assert_eq!(snap.series[58].completed, 4.0 / 60.0);
        assert_eq!(snap.totals["a"], Totals { completed: 4, failed: 2, retried: 0 });
        assert_eq!(snap.totals["b"], Totals { completed: 0, failed: 0, retried: 2 });
        assert_eq!(snap.samples, 8);
        assert_eq!(snap.run.max, 40.0);
        // 10 ms is in the bucket 2^13..2^13.5 µs (8.2..11.6 ms): p50 is its edge, within 19 %.
        assert!((snap.run.p50 - 20.0).abs() / 20.0 < 0.2, "{:?}", snap.run);
        assert_eq!(snap.run.p99, 40.0);
        // An hour on, those minutes are out of the window.
        let later = Snapshot::build(rows.clone(), t0 + 61 * MIN, 3600, 60);
        assert!(later.totals.is_empty() && later.samples == 0, "{later:?}");
        // Wider steps: 15-minute buckets over a day.
        let day = Snapshot::build(rows, t0 + MIN, 86_400, 900);
        assert_eq!((day.series.len(), day.step), (96, 900));
        assert_eq!(day.series.iter().map(|p| p.completed * 900.0).sum::<f64>(), 2.0);
    }

    #[test]
    fn pending_rows_are_bounded_and_queues_beyond_the_limit_are_summed() {
        let h = History::default();
        for i in 0..(MAX_QUEUES_PER_MINUTE + 10) {
            h.record(&format!("q{i}"), Status::Completed, Duration::ZERO, Duration::ZERO, 0);
        }
        let rows = h.pending();
        assert_eq!(rows.len(), MAX_QUEUES_PER_MINUTE + 1);
        assert_eq!(rows.iter().find(|r| r.queue == OTHER_QUEUES).unwrap().counts.completed, 10);
        h.take();
        for minute in 0..(MAX_PENDING as i64 + 50) {
            h.record("q", Status::Completed, Duration::ZERO, Duration::ZERO, minute * MIN);
        }
        let rows = h.take();
        assert_eq!(rows.len(), MAX_PENDING);
        // Over a window, more queues than a minute may hold: the busiest named, the rest summed.
        let spread: Vec<Row> = (0..(MAX_QUEUES_PER_MINUTE as i64 + 20))
            .map(|i| Row {
                minute: i % 5,
                queue: format!("q{i:04}"),
                counts: Counts { completed: 1 + u64::from(i == 300), ..Counts::default() },
            })
            .collect();
        let snap = Snapshot::build(spread, 4 * MIN, 300, 60);
        assert_eq!(snap.totals.len(), MAX_QUEUES_PER_MINUTE);
        assert_eq!(snap.totals["q0300"].completed, 2, "the busiest is named");
        let summed: u64 = snap.totals.values().map(|t| t.completed).sum();
        assert_eq!(summed, MAX_QUEUES_PER_MINUTE as u64 + 21, "nothing is lost");
        assert_eq!(rows[0].minute, 50, "the oldest are dropped");
        h.put_back(rows.clone());
        h.put_back(rows);
        assert_eq!(h.pending().len(), MAX_PENDING);
        assert_eq!(h.pending()[0].counts.completed, 2);
    }

    #[test]
    fn histogram_percentiles_stay_within_a_bucket() {
        let mut hist = Histogram::default();
        for v in 1..=1000u64 {
            hist.add(v * 1000); // 1..1000 ms
        }
        let p = hist.percentiles();
        assert_eq!(p.max, 1000.0);
        for (got, want) in [(p.p50, 500.0), (p.p90, 900.0), (p.p99, 990.0)] {
            assert!(got >= want && got <= want * 1.42, "{got} vs {want}");
        }
        let mut other = Histogram::default();
        other.add(u64::MAX);
        hist.merge(&other);
        assert_eq!(hist.buckets.len(), BUCKETS);
        assert_eq!(hist.count(), 1001);
    }
}
