//! How many jobs one claim for a queue may take: the configured `claim_batch`, or, for a queue
//! that starts more jobs than that in [`HORIZON`], what it starts in `HORIZON` (at most
//! [`MOST`]).
//!
//! **Invariant:** the cap never falls below `claim_batch`, and `claim_batch = 1` stays job by
//! job. A queue claims a batch per claim's round trip at most; with no-op jobs at concurrency
//! 8 the workers then wait on claims (the store's claim is one transaction at a time) and a
//! fixed batch that hides the round trip there would keep a slow queue's higher-priority job
//! waiting behind a great many claimed jobs. Measured in time instead, the jobs kept claimed
//! ahead (two caps: the claim window) are about two `HORIZON`s of the queue's work, whatever
//! its jobs last; a queue whose claims take longer than `HORIZON` (a slow disk, a distant
//! database) claims as it would without the pace, since the cap only ever rises above
//! `claim_batch`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync;

/// The span of a queue's work a claim may take ahead of its workers. Long enough to cover a
/// claim's round trip to PostgreSQL under load (a drain at concurrency 8 there: 4,300–4,800
/// jobs/s with 10 ms, 7,700–8,400/s with 25 ms, alternated in one sitting; sled's drains
/// were the same with either), short enough that a higher-priority job waits behind no more
/// than two of it.
pub const HORIZON: Duration = Duration::from_millis(25);

/// The most jobs one claim takes, however fast the queue: a transaction's size stays bounded.
pub const MOST: usize = 1024;

/// How long the claims are counted before the pace is measured again: long enough to span
/// many claims, short enough that a burst onto an idle queue reaches its pace at once.
const PERIOD: Duration = Duration::from_millis(100);

/// A queue's pace of claims, from the jobs its claims took.
pub struct ClaimPace {
    counting: Mutex<Counting>,
}

struct Counting {
    /// When the current period began, and the jobs claimed since.
    since: Instant,
    claimed: usize,
    /// Jobs claimed per `HORIZON` over the last whole period.
    per_horizon: usize,
}

impl Counting {
    /// Jobs claimed per `HORIZON` from `since` to `now`.
    fn current(&self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.since).as_nanos().max(1);
        usize::try_from(self.claimed as u128 * HORIZON.as_nanos() / elapsed).unwrap_or(usize::MAX)
    }
}

impl ClaimPace {
    pub fn new(now: Instant) -> Self {
        ClaimPace { counting: Mutex::new(Counting { since: now, claimed: 0, per_horizon: 0 }) }
    }

    /// A claim took `n` jobs at `now`. Once a period has passed since the last measure, the
    /// pace becomes the jobs claimed over it (an idle spell counts: after one, the pace
    /// starts low again).
    pub fn claimed(&self, n: usize, now: Instant) {
        let mut counting = sync::lock(&self.counting);
        counting.claimed = counting.claimed.saturating_add(n);
        if now.saturating_duration_since(counting.since) >= PERIOD {
            let per_horizon = counting.current(now);
            *counting = Counting { since: now, claimed: 0, per_horizon };
        }
    }

    /// How many jobs one claim may take at `now`, given the configured `claim_batch`. A pace
    /// not measured again for over a period counts as no faster than the claims since: a
    /// fast queue whose jobs turn slow (claims then come seldom) claims as a slow one at its
    /// next claim, not at the pace it had.
    pub fn cap(&self, claim_batch: usize, now: Instant) -> usize {
        if claim_batch < 2 {
            return 1;
        }
        let counting = sync::lock(&self.counting);
        let mut pace = counting.per_horizon;
        if now.saturating_duration_since(counting.since) >= PERIOD {
            pace = pace.min(counting.current(now));
        }
        pace.clamp(claim_batch, MOST.max(claim_batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims of `each` jobs every `every`, for `span`, starting at `start`; when they ended.
    fn claim_for(pace: &ClaimPace, start: Instant, each: usize, every: Duration, span: Duration) -> Instant {
        let mut at = start;
        while at < start + span {
            at += every;
            pace.claimed(each, at);
        }
        at
    }

    #[test]
    fn a_queue_starting_fewer_than_a_batch_per_horizon_claims_a_batch() {
        let start = Instant::now();
        let pace = ClaimPace::new(start);
        assert_eq!(pace.cap(32, start), 32, "before any claim");
        // A job a millisecond: fewer than the batch per horizon.
        assert!(HORIZON.as_millis() < 32);
        let at = claim_for(&pace, start, 1, Duration::from_millis(1), Duration::from_secs(1));
        assert_eq!(pace.cap(32, at), 32);
    }

    #[test]
    fn a_fast_queue_claims_what_it_starts_in_the_horizon_up_to_the_most() {
        let start = Instant::now();
        let pace = ClaimPace::new(start);
        // 16 jobs a millisecond: more than the batch per horizon, fewer than the most.
        let per_horizon = 16 * HORIZON.as_millis() as usize;
        assert!(per_horizon > 32 && per_horizon < MOST);
        let at = claim_for(&pace, start, 16, Duration::from_millis(1), Duration::from_millis(300));
        assert_eq!(pace.cap(32, at), per_horizon);
        // A most a millisecond: above the most per horizon.
        let at = claim_for(&pace, at, MOST, Duration::from_millis(1), Duration::from_millis(300));
        assert_eq!(pace.cap(32, at), MOST);
        assert_eq!(pace.cap(4096, at), 4096, "a configured batch above the most is kept");
    }

    #[test]
    fn job_by_job_stays_job_by_job() {
        let start = Instant::now();
        let pace = ClaimPace::new(start);
        let at = claim_for(&pace, start, 16, Duration::from_millis(1), Duration::from_millis(300));
        assert!(pace.cap(32, at) > 32);
        assert_eq!(pace.cap(1, at), 1);
    }

    #[test]
    fn after_an_idle_spell_the_pace_starts_from_the_batch_again() {
        let start = Instant::now();
        let pace = ClaimPace::new(start);
        let at = claim_for(&pace, start, 16, Duration::from_millis(1), Duration::from_millis(300));
        assert_eq!(pace.cap(32, at), 16 * HORIZON.as_millis() as usize);
        // Ten seconds without a claim (jobs turned slow): the next claim takes a batch.
        let later = at + Duration::from_secs(10);
        assert_eq!(pace.cap(32, later), 32);
        // And after that claim the measured pace is the slow one.
        pace.claimed(32, later);
        assert_eq!(pace.cap(32, later), 32);
        assert_eq!(pace.cap(32, later + Duration::from_millis(1)), 32);
    }
}
