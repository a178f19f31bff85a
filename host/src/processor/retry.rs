//! When a failed attempt runs again: exponential backoff with jitter, capped.

use std::time::Duration;

/// Default first retry delay when the factory declares none.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// Default longest retry delay.
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the second attempt (the factory's `retry_delay` overrides it).
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: DEFAULT_RETRY_BASE, cap: DEFAULT_RETRY_CAP }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): `base × 2^(attempt-1)`,
    /// capped, then "equal jitter" (a uniformly random point in its upper half) so that jobs
    /// that failed together do not retry together. At least `at_least` (the plugin's request).
    pub fn delay(
        &self,
        attempt: u32,
        factory_base: Option<Duration>,
        at_least: Option<Duration>,
    ) -> Duration {
        let base = factory_base.unwrap_or(self.base);
        let exponent = attempt.saturating_sub(1).min(32);
        let full = base.saturating_mul(1u32 << exponent.min(31)).min(self.cap);
        let half = full / 2;
        let jittered = half + half.mul_f64(fastrand::f64());
        jittered.max(at_least.unwrap_or_default()).min(self.cap.max(at_least.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_attempt_within_jitter_and_respects_the_cap_and_requests() {
        let policy = RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(10) };
        for _ in 0..100 {
            let d1 = policy.delay(1, None, None);
            assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1), "{d1:?}");
            let d3 = policy.delay(3, None, None);
            assert!(d3 >= Duration::from_secs(2) && d3 <= Duration::from_secs(4), "{d3:?}");
            let d30 = policy.delay(30, None, None);
            assert!(d30 >= Duration::from_secs(5) && d30 <= Duration::from_secs(10), "{d30:?}");
            let custom = policy.delay(2, Some(Duration::from_millis(100)), None);
            assert!(custom >= Duration::from_millis(100) && custom <= Duration::from_millis(200));
            let asked = policy.delay(1, None, Some(Duration::from_secs(60)));
            assert_eq!(asked, Duration::from_secs(60));
        }
    }
}
