//! The one clock: everything that reads "now" (job times, retry times, leases, schedules)
//! reads it here, so tests can drive time by hand.
//!
//! Times are stored as microseconds since the Unix epoch (UTC) in [`Micros`]: compact in
//! records, ordered as big-endian bytes in index keys, and printed as RFC 3339.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Micros;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// Now, without a `Clock` object (log lines).
    pub fn now_micros(self) -> Micros {
        self.now()
    }
}

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> Micros {
        Utc::now().timestamp_micros()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Micros) -> Self {
        ManualClock(AtomicI64::new(start))
    }

    /// Starts at the current wall-clock time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_micros(by), Ordering::SeqCst);
    }

    pub fn set(&self, to: Micros) {
        self.0.store(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
}

/// Saturating: durations beyond ~292,000 years are "forever".
pub fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC with microseconds: `2026-11-22T16:40:00.123456+00:00`.
pub fn rfc3339(at: Micros) -> String {
    to_datetime(at).to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// RFC 3339 in UTC to the second, as m01.remote prints error times: `2026-11-22T16:40:00+00:00`.
pub fn rfc3339_seconds(at: Micros) -> String {
    to_datetime(at).to_rfc3339_opts(SecondsFormat::Secs, false)
}

pub fn to_datetime(at: Micros) -> DateTime<Utc> {
    // Every i64 microsecond count is within chrono's range (±262,000 years).
    Utc.timestamp_micros(at).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_api_and_m01_remote() {
        let at = 1_795_365_600_123_456; // 2026-11-22T16:40:00.123456Z
        assert_eq!(rfc3339(at), "2026-11-22T16:40:00.123456+00:00");
        assert_eq!(rfc3339_seconds(at), "2026-11-22T16:40:00+00:00");
    }
}
