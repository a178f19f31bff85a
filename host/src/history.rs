//! What this host finished lately, kept in memory for the dashboard: per queue, jobs completed
//! and failed in each second of the last hour, and the run and wait times of the latest
//! attempts for percentiles. A restart starts it empty; the store and `/metrics` keep the
//! durable totals.
//!
//! **Invariant:** bounded: at most [`WINDOW_SECONDS`] buckets per queue and [`SAMPLES`]
//! latency samples, whatever the load.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Micros;
use crate::job::Status;
use crate::sync;

/// How far back the history reaches.
pub const WINDOW_SECONDS: i64 = 3600;
/// Latency samples kept (the latest attempts).
pub const SAMPLES: usize = 4096;

#[derive(Default)]
pub struct History(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    /// Per queue, (second, completed, failed), oldest first, one per second that had any.
    queues: BTreeMap<String, VecDeque<(i64, u32, u32)>>,
    /// (run time, wait before the run) of the latest attempts, in microseconds.
    samples: VecDeque<(u64, u64)>,
}

/// One bucket of the series: jobs per second averaged over `step` seconds.
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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub series: Vec<Point>,
    /// Per queue: (completed, failed) in the window.
    pub totals: BTreeMap<String, (u64, u64)>,
    pub samples: usize,
    pub run: Percentiles,
    pub wait: Percentiles,
}

impl History {
    /// Counts an attempt that ended with the job in `status` at `now` (a requeued attempt
    /// only adds latency samples); `wait` is from when it was due to when it started.
    pub fn record(&self, queue: &str, status: Status, ran: Duration, wait: Duration, now: Micros) {
        let second = now.div_euclid(1_000_000);
        let mut inner = sync::lock(&self.0);
        let (completed, failed) = match status {
            Status::Completed => (1, 0),
            Status::Error => (0, 1),
            _ => (0, 0),
        };
        if completed + failed > 0 {
            let buckets = match inner.queues.get_mut(queue) {
                Some(buckets) => buckets,
                None => inner.queues.entry(queue.to_owned()).or_default(),
            };
            match buckets.back_mut() {
                Some(last) if last.0 == second => {
                    last.1 += completed;
                    last.2 += failed;
                }
                // A clock that stepped back files into its own bucket; trimming is by time.
                _ => buckets.push_back((second, completed, failed)),
            }
            while buckets.front().is_some_and(|b| b.0 <= second - WINDOW_SECONDS) {
                buckets.pop_front();
            }
        }
        if inner.samples.len() == SAMPLES {
            inner.samples.pop_front();
        }
        inner.samples.push_back((micros(ran), micros(wait)));
    }

    /// The last hour as of `now`, in buckets of `step` seconds, oldest first: each bucket is
    /// `step` whole seconds and the last one ends with the second holding `now`, so every
    /// bucket is a full `step` (an hour is covered whatever the step divides).
    pub fn snapshot(&self, now: Micros, step: i64) -> Snapshot {
        let step = step.clamp(1, WINDOW_SECONDS);
        let now_s = now.div_euclid(1_000_000);
        let n = (WINDOW_SECONDS + step - 1) / step;
        let first = now_s - n * step + 1;
        let mut series: Vec<Point> =
            (0..n).map(|i| Point { at: first + i * step, completed: 0.0, failed: 0.0 }).collect();
        let inner = sync::lock(&self.0);
        let mut totals = BTreeMap::new();
        for (queue, buckets) in &inner.queues {
            let (mut c, mut f) = (0u64, 0u64);
            for &(second, completed, failed) in buckets.iter().filter(|b| b.0 > now_s - WINDOW_SECONDS) {
                c += u64::from(completed);
                f += u64::from(failed);
                if (first..=now_s).contains(&second) {
                    let point = &mut series[((second - first) / step) as usize];
                    point.completed += f64::from(completed);
                    point.failed += f64::from(failed);
                }
            }
            totals.insert(queue.clone(), (c, f));
        }
        for point in &mut series {
            point.completed /= step as f64;
            point.failed /= step as f64;
        }
        let run = percentiles(inner.samples.iter().map(|s| s.0).collect());
        let wait = percentiles(inner.samples.iter().map(|s| s.1).collect());
        Snapshot { series, totals, samples: inner.samples.len(), run, wait }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentiles of microsecond samples, in milliseconds.
fn percentiles(mut values: Vec<u64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_unstable();
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[i] as f64 / 1000.0
    };
    Percentiles { p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: rank(1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Micros = 1_000_000;

    #[test]
    fn counts_per_second_in_steps_and_forgets_after_an_hour() {
        let h = History::default();
        let t0 = 1_000_000 * SEC;
        let ms = Duration::from_millis;
        h.record("a", Status::Completed, ms(10), ms(1), t0);
        h.record("a", Status::Completed, ms(20), ms(2), t0 + SEC / 2);
        h.record("a", Status::Error, ms(30), ms(3), t0 + 5 * SEC);
        h.record("b", Status::Queued, ms(40), ms(4), t0 + 5 * SEC); // a retry: latency only
        let snap = h.snapshot(t0 + 9 * SEC, 10);
        assert_eq!(snap.series.len(), 360);
        let last = snap.series.last().unwrap();
        assert_eq!((last.at, last.completed, last.failed), (t0 / SEC, 0.2, 0.1));
        assert_eq!(snap.totals, BTreeMap::from([("a".to_owned(), (2, 1))]));
        assert_eq!(snap.samples, 4);
        assert_eq!(snap.run, Percentiles { p50: 20.0, p90: 40.0, p99: 40.0, max: 40.0 });
        assert_eq!(snap.wait.p50, 2.0);
        // An hour on, the old seconds are out of the window and out of the totals.
        h.record("a", Status::Completed, ms(1), ms(1), t0 + 3606 * SEC);
        let snap = h.snapshot(t0 + 3606 * SEC, 1);
        assert_eq!(snap.totals["a"], (1, 0));
        assert_eq!(snap.series.len(), 3600);
        assert_eq!(snap.series.iter().map(|p| p.completed).sum::<f64>(), 1.0);
        // A step that does not divide the hour still covers all of it; the last point ends now.
        let snap = h.snapshot(t0 + 3606 * SEC, 1799);
        assert_eq!(snap.series.len(), 3);
        assert_eq!(snap.series.last().unwrap().at, t0 / SEC + 3606 - 1798);
        assert!(snap.series.first().unwrap().at <= t0 / SEC + 3606 - 3599);
        let hourly = h.snapshot(t0 + 3606 * SEC, 3600);
        assert_eq!((hourly.series.len(), hourly.series[0].completed * 3600.0), (1, 1.0));
    }

    #[test]
    fn keeps_a_bounded_number_of_samples() {
        let h = History::default();
        for i in 0..(SAMPLES as u64 + 10) {
            h.record("q", Status::Completed, Duration::from_micros(i), Duration::ZERO, 0);
        }
        let snap = h.snapshot(0, 60);
        assert_eq!(snap.samples, SAMPLES);
        assert_eq!(snap.run.max, (SAMPLES as f64 + 9.0) / 1000.0);
    }
}
