//! Schedules through the host: creating, changing and removing them (validated like jobs,
//! so a schedule never makes jobs that would be refused), and the scheduler's pass that fires
//! due slots. The loop that runs the pass is `crate::scheduler`.
//!
//! **Invariant:** each slot of a schedule makes at most one job however many passes race and
//! however often the process restarts (the store fires a slot only while the schedule's
//! `next_run_at` is still that slot).

use std::time::Duration;

use super::admission::AddJob;
use super::error::HostError;
use super::host::Host;
use crate::clock::Micros;
use crate::cron::CronSpec;
use crate::job::{JobId, ScheduleId};
use crate::schedule::{MissedPolicy, Schedule, Trigger};
use crate::store::Fired;

/// How many due schedules one pass takes from the store before looking again.
const BATCH: usize = 256;

/// A new schedule, as a caller asks for it (validated by [`Host::add_schedule`]).
#[derive(Debug, Clone, Default)]
pub struct NewSchedule {
    pub factory: String,
    /// JSON text; `None` is `null`.
    pub input: Option<String>,
    pub queue: Option<String>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    /// A cron expression, or …
    pub cron: Option<String>,
    pub timezone: Option<String>,
    /// … a one-shot delay from now.
    pub delay: Option<Duration>,
    pub active: bool,
    pub missed: MissedPolicy,
}

/// A change to a schedule; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub input: Option<String>,
    pub queue: Option<String>,
    pub priority: Option<i32>,
    pub max_attempts: Option<u32>,
    pub cron: Option<String>,
    /// `Some("UTC")` resets a zone.
    pub timezone: Option<String>,
    pub active: Option<bool>,
    pub missed: Option<MissedPolicy>,
}

impl Host {
    /// Validates and stores a schedule; its first slot is the first cron time after now, or
    /// now + delay.
    pub fn add_schedule(&self, req: NewSchedule) -> Result<Schedule, HostError> {
        let schedule = self.new_schedule(req)?;
        let stored = self.inner.shared.store.add_schedule(schedule)?;
        self.inner.schedules_changed.notify_one();
        Ok(stored)
    }

    /// A schedule as `req` asks, checked like a job, its first slot computed; not stored.
    pub(super) fn new_schedule(&self, req: NewSchedule) -> Result<Schedule, HostError> {
        let now = self.now();
        let trigger = match (req.cron, req.delay) {
            (Some(expr), None) => {
                CronSpec::parse(&expr, req.timezone.as_deref()).map_err(cron_error)?;
                Trigger::Cron { expr, timezone: req.timezone }
            }
            (None, Some(delay)) => {
                if req.timezone.is_some() {
                    return Err(invalid("timezone", "only a cron schedule has a time zone"));
                }
                Trigger::Delay { delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }
            }
            (Some(_), Some(_)) => return Err(invalid("cron", "give cron or delay_seconds, not both")),
            (None, None) => return Err(invalid("cron", "a schedule needs cron or delay_seconds")),
        };
        // The same checks a job gets, so a schedule never makes jobs that are refused.
        let checked = self.validate(AddJob {
            factory: req.factory,
            input: req.input,
            queue: req.queue,
            priority: req.priority,
            max_attempts: req.max_attempts,
            timeout: req.timeout,
            ..AddJob::default()
        })?;
        let next_run_at = trigger.next_after(now, now).map_err(cron_error)?;
        if next_run_at.is_none() {
            return Err(invalid("cron", "the expression never matches a date (e.g. 30 February)"));
        }
        let schedule = Schedule {
            id: ScheduleId(0),
            factory: checked.factory,
            input: checked.input,
            queue: checked.queue,
            priority: checked.priority,
            max_attempts: req.max_attempts,
            timeout_ms: checked.timeout_ms,
            trigger,
            active: req.active,
            missed: req.missed,
            next_run_at,
            last_run_at: None,
            last_job_id: None,
            last_error: None,
            runs: 0,
            created_at: now,
            updated_at: now,
        };
        Ok(schedule)
    }

    pub fn get_schedule(&self, id: ScheduleId) -> Result<Schedule, HostError> {
        self.inner.shared.store.get_schedule(id)?.ok_or(HostError::ScheduleNotFound(id))
    }

    pub fn list_schedules(&self) -> Result<Vec<Schedule>, HostError> {
        Ok(self.inner.shared.store.list_schedules()?)
    }

    /// Changes a schedule. A new cron expression or zone, or reactivation, reschedules it:
    /// its next slot is the first after now under the new rule.
    pub fn update_schedule(&self, id: ScheduleId, patch: SchedulePatch) -> Result<Schedule, HostError> {
        let current = self.get_schedule(id)?;
        let timezone = match patch.timezone.as_deref() {
            Some("UTC") => None,
            Some(zone) => Some(zone.to_owned()),
            None => match &current.trigger {
                Trigger::Cron { timezone, .. } => timezone.clone(),
                Trigger::Delay { .. } => None,
            },
        };
        let trigger = match (&current.trigger, patch.cron) {
            (Trigger::Cron { expr, .. }, cron) => {
                let expr = cron.unwrap_or_else(|| expr.clone());
                CronSpec::parse(&expr, timezone.as_deref()).map_err(cron_error)?;
                Trigger::Cron { expr, timezone }
            }
            (Trigger::Delay { .. }, Some(_)) => {
                return Err(invalid("cron", "a delay schedule has no cron expression"))
            }
            (Trigger::Delay { .. }, None) if patch.timezone.is_some() => {
                return Err(invalid("timezone", "only a cron schedule has a time zone"))
            }
            (delay @ Trigger::Delay { .. }, None) => delay.clone(),
        };
        // Checked like a job's fields: same factory, the patched input/queue/attempts.
        let checked = self.validate(AddJob {
            factory: current.factory.clone(),
            input: Some(patch.input.clone().unwrap_or_else(|| current.input.clone())),
            queue: Some(patch.queue.clone().unwrap_or_else(|| current.queue.clone())),
            priority: patch.priority.unwrap_or(current.priority),
            max_attempts: patch.max_attempts.or(current.max_attempts),
            ..AddJob::default()
        })?;
        let now = self.now();
        let active = patch.active.unwrap_or(current.active);
        let reschedule = trigger != current.trigger || (active && !current.active);
        let next_run_at = if reschedule {
            match &trigger {
                Trigger::Cron { .. } => match trigger
                    .next_after(now, current.created_at)
                    .map_err(cron_error)?
                {
                    Some(next) => Some(next),
                    None => {
                        return Err(invalid("cron", "the expression never matches a date (e.g. 30 February)"))
                    }
                },
                // Reactivating a delay item that has not fired yet keeps its slot.
                Trigger::Delay { .. } => current.next_run_at,
            }
        } else {
            current.next_run_at
        };
        let max_attempts = patch.max_attempts.or(current.max_attempts);
        let missed = patch.missed.unwrap_or(current.missed);
        let updated = self.inner.shared.store.update_schedule(id, &|s: &mut Schedule| {
            s.input = checked.input.clone();
            s.queue = checked.queue.clone();
            s.priority = checked.priority;
            s.max_attempts = max_attempts;
            s.trigger = trigger.clone();
            s.active = active;
            s.missed = missed;
            if reschedule {
                s.next_run_at = next_run_at;
            }
            s.updated_at = now;
        })?;
        self.inner.schedules_changed.notify_one();
        Ok(updated)
    }

    /// Deletes a schedule (the jobs it made stay). Returns it as it was.
    pub fn remove_schedule(&self, id: ScheduleId) -> Result<Schedule, HostError> {
        let schedule = self.get_schedule(id)?;
        if !self.inner.shared.store.remove_schedule(id)? {
            return Err(HostError::ScheduleNotFound(id));
        }
        self.inner.schedules_changed.notify_one();
        Ok(schedule)
    }

    /// One scheduler pass at the clock's now: due `scheduled` jobs become `queued`, and every
    /// due schedule slot fires. Returns the jobs made. Blocking.
    pub fn run_due(&self) -> Result<Vec<JobId>, HostError> {
        self.promote_due()?;
        let mut made = Vec::new();
        loop {
            let now = self.now();
            let due = self.inner.shared.store.due_schedules(now, BATCH)?;
            let batch = due.len();
            for schedule in due {
                if let Some(id) = self.fire(&schedule, now)? {
                    made.push(id);
                }
            }
            if batch < BATCH {
                return Ok(made);
            }
        }
    }

    /// Fires one due schedule: its job (unless a missed slot is skipped by policy) and its next
    /// slot, in one store transaction. `None` if another loop fired the slot first.
    fn fire(&self, schedule: &Schedule, now: Micros) -> Result<Option<JobId>, HostError> {
        let Some(firing) = schedule.firing(now) else { return Ok(None) };
        let job = if firing.make_job {
            let add = AddJob {
                factory: schedule.factory.clone(),
                input: Some(schedule.input.clone()),
                queue: Some(schedule.queue.clone()),
                priority: schedule.priority,
                max_attempts: schedule.max_attempts,
                timeout: schedule.timeout_ms.map(Duration::from_millis),
                schedule_id: Some(schedule.id),
                ..AddJob::default()
            };
            match self.validate(add) {
                Ok(new) => Some(new),
                Err(e) => {
                    // E.g. its plugin was removed: the slot passes, the reason is kept on the
                    // schedule for operators, and later slots try again.
                    log::error!(
                        "schedule {}: slot at {} made no job: {e}",
                        schedule.id,
                        crate::clock::rfc3339(firing.slot)
                    );
                    let error = format!("[{}] {e}", crate::clock::rfc3339(now));
                    self.inner.shared.store.update_schedule(schedule.id, &|s: &mut Schedule| {
                        s.last_error = Some(error.clone())
                    })?;
                    None
                }
            }
        } else {
            log::info!("schedule {}: missed slots skipped (policy skip)", schedule.id);
            None
        };
        let fired = self.inner.shared.store.fire_schedule(schedule.id, firing.slot, job, firing.next, now)?;
        match fired {
            Some(Fired { job: Some(job), .. }) => {
                log::info!("schedule {} fired: job {} ({})", schedule.id, job.id, job.factory);
                self.announce(&job);
                Ok(Some(job.id))
            }
            _ => Ok(None),
        }
    }

    /// When the scheduler has work next: the earliest due schedule or scheduled job.
    pub fn next_due_at(&self) -> Option<Micros> {
        let store = &self.inner.shared.store;
        [store.next_schedule_due(), store.next_due()].into_iter().filter_map(|r| r.ok().flatten()).min()
    }

    /// Resolves when a schedule is added, changed or removed (`enable` it before looking, so
    /// a change in between is not missed).
    pub fn schedule_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.schedules_changed.notified()
    }
}

fn invalid(field: &'static str, message: &str) -> HostError {
    HostError::Invalid { field, message: message.to_owned() }
}

fn cron_error(e: crate::cron::CronError) -> HostError {
    match e {
        crate::cron::CronError::TimeZone(message) => HostError::Invalid { field: "timezone", message },
        crate::cron::CronError::Expression(message) => HostError::Invalid { field: "cron", message },
    }
}
