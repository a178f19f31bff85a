//! A stored schedule: what job it makes, when, and what it has done so far.
//!
//! **Invariant:** an active schedule with a `next_run_at` is due at that time; one slot makes at
//! most one job (the store checks the slot when it fires); after firing, `next_run_at` is after
//! the time it fired, or `None` for a one-shot delay that is done.

use serde::{Deserialize, Serialize};

use crate::clock::Micros;
use crate::cron::{CronError, CronSpec};
use crate::job::{JobId, ScheduleId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: ScheduleId,
    pub factory: String,
    /// JSON text, as for jobs.
    pub input: String,
    pub queue: String,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub trigger: Trigger,
    /// An inactive schedule keeps its settings and fires nothing.
    pub active: bool,
    pub missed: MissedPolicy,
    /// The slot it fires next; `None` once a one-shot delay has fired.
    pub next_run_at: Option<Micros>,
    pub last_run_at: Option<Micros>,
    pub last_job_id: Option<JobId>,
    /// Why the last slot made no job (e.g. its factory is gone), with the time.
    pub last_error: Option<String>,
    /// Jobs made so far.
    pub runs: u64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// A five-field cron expression in an IANA time zone (UTC when `None`).
    Cron { expr: String, timezone: Option<String> },
    /// Once, this long after the schedule was created (m01.remote's Delay item).
    Delay { delay_ms: u64 },
}

/// What a schedule does about slots that passed while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissedPolicy {
    /// One job for the whole missed period, then on with the next slot after now.
    #[default]
    RunOnce,
    /// No job for missed slots: on with the next slot after now.
    Skip,
}

impl Trigger {
    /// The first slot strictly after `after` (`None`: a delay's one slot is behind it).
    pub fn next_after(&self, after: Micros, created_at: Micros) -> Result<Option<Micros>, CronError> {
        match self {
            Trigger::Cron { expr, timezone } => {
                Ok(CronSpec::parse(expr, timezone.as_deref())?.next_after(after))
            }
            Trigger::Delay { delay_ms } => {
                let at = created_at
                    .saturating_add(i64::try_from(*delay_ms).unwrap_or(i64::MAX).saturating_mul(1000));
                Ok((at > after).then_some(at))
            }
        }
    }
}

/// How much of a due schedule fires at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Firing {
    /// The slot being fired (the schedule's `next_run_at`).
    pub slot: Micros,
    /// Make a job for it (false: a missed slot skipped by policy).
    pub make_job: bool,
    /// The schedule's next slot, after `now`.
    pub next: Option<Micros>,
}

impl Schedule {
    /// What firing the due slot at `now` does: one job for the slot (or for the whole missed
    /// period), then the next slot strictly after `now`, so it is always in the future.
    pub fn firing(&self, now: Micros) -> Option<Firing> {
        let slot = self.next_run_at.filter(|at| *at <= now && self.active)?;
        // The trigger was checked when the schedule was stored; a stored one that no longer
        // parses (a zone removed from the database) stops rather than fires forever.
        let next = self.trigger.next_after(now, self.created_at).unwrap_or(None);
        // Missed: another slot fell between this one and now.
        let missed = self.trigger.next_after(slot, self.created_at).ok().flatten().is_some_and(|n| n <= now);
        let make_job = !(missed && self.missed == MissedPolicy::Skip);
        Some(Firing { slot, make_job, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Micros = 60_000_000;

    fn every_5_minutes(missed: MissedPolicy) -> Schedule {
        Schedule {
            id: ScheduleId(1),
            factory: "echo".into(),
            input: "null".into(),
            queue: "default".into(),
            priority: 0,
            max_attempts: None,
            timeout_ms: None,
            trigger: Trigger::Cron { expr: "*/5 * * * *".into(), timezone: None },
            active: true,
            missed,
            next_run_at: Some(5 * MINUTE),
            last_run_at: None,
            last_job_id: None,
            last_error: None,
            runs: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_due_slot_fires_once_and_the_next_is_in_the_future() {
        let s = every_5_minutes(MissedPolicy::RunOnce);
        assert_eq!(s.firing(5 * MINUTE - 1), None, "not yet due");
        assert_eq!(
            s.firing(5 * MINUTE),
            Some(Firing { slot: 5 * MINUTE, make_job: true, next: Some(10 * MINUTE) })
        );
    }

    #[test]
    fn missed_slots_run_once_by_default_or_are_skipped() {
        // Down from minute 5 to minute 23: slots 5, 10, 15, 20 were missed.
        let once = every_5_minutes(MissedPolicy::RunOnce).firing(23 * MINUTE).unwrap();
        assert_eq!((once.make_job, once.next), (true, Some(25 * MINUTE)));
        let skip = every_5_minutes(MissedPolicy::Skip).firing(23 * MINUTE).unwrap();
        assert_eq!((skip.make_job, skip.next), (false, Some(25 * MINUTE)));
        // Only the due slot itself passed: not missed, so even `Skip` runs it.
        let late = every_5_minutes(MissedPolicy::Skip).firing(7 * MINUTE).unwrap();
        assert_eq!((late.make_job, late.next), (true, Some(10 * MINUTE)));
    }

    #[test]
    fn an_inactive_schedule_fires_nothing_and_a_delay_fires_once() {
        let mut s = every_5_minutes(MissedPolicy::RunOnce);
        s.active = false;
        assert_eq!(s.firing(60 * MINUTE), None);
        let mut delay = every_5_minutes(MissedPolicy::RunOnce);
        delay.trigger = Trigger::Delay { delay_ms: 10_000 };
        delay.next_run_at = Some(10_000_000);
        assert_eq!(delay.firing(10_000_000), Some(Firing { slot: 10_000_000, make_job: true, next: None }));
    }
}
