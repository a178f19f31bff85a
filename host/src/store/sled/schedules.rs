//! The schedules capability on sled: CRUD, the due index, and firing a slot exactly once.

use super::keys::{self, META_SCHEDULE_ID};
use super::store::SledStore;
use super::tx::{abort, decode_schedule, schedule_due_key};
use crate::clock::Micros;
use crate::job::{Job, NewJob, ScheduleId};
use crate::schedule::Schedule;
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::ScheduleStore;
use crate::store::types::{Created, Fired, Keyed, Once};
use crate::sync;

impl SledStore {
    /// Stores a new schedule with the next id (and `once`, its idempotency key). Durable.
    fn insert_schedule(&self, schedule: Schedule, once: Option<&Once>) -> StoreResult<Schedule> {
        let schedule = self.live()?.trees.transact(|tx| {
            let last =
                tx.meta.get(META_SCHEDULE_ID)?.and_then(|v| keys::schedule_id_from(&v)).unwrap_or_default();
            let schedule = Schedule { id: ScheduleId(last.0 + 1), ..schedule.clone() };
            tx.meta.insert(META_SCHEDULE_ID, &keys::id_key(schedule.id))?;
            tx.save_schedule(None, &schedule)?;
            if let Some(once) = once {
                tx.remember(once, &Created::Schedule { id: schedule.id.0 })?;
            }
            Ok(schedule)
        })?;
        self.durable()?;
        Ok(schedule)
    }
}

impl ScheduleStore for SledStore {
    fn add_schedule(&self, schedule: Schedule) -> StoreResult<Schedule> {
        self.insert_schedule(schedule, None)
    }

    fn add_schedule_keyed(
        &self,
        schedule: Schedule,
        now: Micros,
        once: &Once,
    ) -> StoreResult<Keyed<Schedule>> {
        let _one_keyed_add = sync::lock(&self.unique_lock);
        if let Some(before) = self.remembered_key(&once.key, now)? {
            return Ok(Keyed::Before(before));
        }
        self.insert_schedule(schedule, Some(once)).map(Keyed::New)
    }

    fn get_schedule(&self, id: ScheduleId) -> StoreResult<Option<Schedule>> {
        match self.live()?.trees.schedules.get(keys::id_key(id))? {
            Some(bytes) => Ok(Some(decode_schedule(id, &bytes)?)),
            None => Ok(None),
        }
    }

    fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        self.live()?
            .trees
            .schedules
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                decode_schedule(keys::schedule_id_from(&key).unwrap_or_default(), &value)
            })
            .collect()
    }

    fn update_schedule(
        &self,
        id: ScheduleId,
        update: &(dyn Fn(&mut Schedule) + Sync),
    ) -> StoreResult<Schedule> {
        let schedule = self.live()?.trees.transact(|tx| {
            let Some(old) = tx.load_schedule(id)? else {
                return abort(StoreError::ScheduleNotFound(id));
            };
            let mut schedule = old.clone();
            update(&mut schedule);
            schedule.id = id;
            tx.save_schedule(Some(&old), &schedule)?;
            Ok(schedule)
        })?;
        self.durable()?;
        Ok(schedule)
    }

    fn remove_schedule(&self, id: ScheduleId) -> StoreResult<bool> {
        let removed = self.live()?.trees.transact(|tx| {
            let Some(old) = tx.load_schedule(id)? else { return Ok(false) };
            if let Some(key) = schedule_due_key(&old) {
                tx.schedules_due.remove(&key)?;
            }
            tx.schedules.remove(&keys::id_key(id))?;
            Ok(true)
        })?;
        if removed {
            self.durable()?;
        }
        Ok(removed)
    }

    fn due_schedules(&self, now: Micros, limit: usize) -> StoreResult<Vec<Schedule>> {
        let mut due = Vec::new();
        for entry in self.live()?.trees.schedules_due.range(..=keys::time_upper_bound(now)).take(limit) {
            let (key, _) = entry?;
            let Some((_, id)) = keys::parse_time_key(&key) else { continue };
            if let Some(schedule) = self.get_schedule(ScheduleId(id.0))? {
                due.push(schedule);
            }
        }
        Ok(due)
    }

    fn next_schedule_due(&self) -> StoreResult<Option<Micros>> {
        Ok(match self.live()?.trees.schedules_due.first()? {
            Some((key, _)) => keys::parse_time_key(&key).map(|(at, _)| at),
            None => None,
        })
    }

    fn fire_schedule(
        &self,
        id: ScheduleId,
        slot: Micros,
        job: Option<NewJob>,
        next: Option<Micros>,
        now: Micros,
    ) -> StoreResult<Option<Fired>> {
        // Checked before an id is taken, so a lost race leaves no gap in the job ids.
        if self.get_schedule(id)?.is_none_or(|s| !s.active || s.next_run_at != Some(slot)) {
            return Ok(None);
        }
        let job = job.map(|new| Job::new(self.next_id(), new, now));
        let fired = self.live()?.trees.transact(|tx| {
            let Some(old) = tx.load_schedule(id)? else { return Ok(None) };
            // The slot is the claim: whoever moves `next_run_at` off it first made its job.
            if !old.active || old.next_run_at != Some(slot) {
                return Ok(None);
            }
            let mut schedule = old.clone();
            schedule.next_run_at = next;
            if let Some(job) = &job {
                tx.save(job)?;
                tx.place(job, now)?;
                schedule.last_run_at = Some(now);
                schedule.last_job_id = Some(job.id);
                schedule.last_error = None;
                schedule.runs += 1;
            }
            tx.save_schedule(Some(&old), &schedule)?;
            Ok(Some(Fired { schedule, job: job.clone() }))
        })?;
        if let Some(Fired { job: Some(job), .. }) = &fired {
            self.counts.count(job, None, Some(job.status));
        }
        if fired.is_some() {
            self.durable()?;
        }
        Ok(fired)
    }
}
