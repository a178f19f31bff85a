//! Cron and delay schedules on PostgreSQL. A slot fires in one transaction that locks the
//! schedule and checks it still waits for that slot: however many schedulers on however
//! many hosts race for it, one makes the job and the others find it gone.

use super::errors::db_error;
use super::idempotency::Step;
use super::rows::{at, insert_jobs, save_schedule, schedule_from_row, SCHEDULE_COLUMNS};
use super::session::{Sql, Tx};
use super::store::PgStore;
use crate::clock::Micros;
use crate::job::{Job, JobId, NewJob, ScheduleId};
use crate::schedule::Schedule;
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::ScheduleStore;
use crate::store::types::{Created, Fired, Keyed, Once};

fn lock_schedule(tx: &mut Tx<'_>, id: ScheduleId) -> StoreResult<Option<Schedule>> {
    let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1 FOR UPDATE");
    match tx.query_opt(&sql, &[&(id.0 as i64)]).map_err(db_error)? {
        Some(row) => Ok(Some(schedule_from_row(&row)?)),
        None => Ok(None),
    }
}

impl ScheduleStore for PgStore {
    fn add_schedule(&self, schedule: Schedule) -> StoreResult<Schedule> {
        self.transact(|tx| {
            let id: i64 = tx.query_one("SELECT nextval('schedules_id_seq')", &[]).map_err(db_error)?.get(0);
            let schedule = Schedule { id: ScheduleId(id as u64), ..schedule };
            save_schedule(tx, &schedule)?;
            Ok(schedule)
        })
    }

    fn add_schedule_keyed(
        &self,
        schedule: Schedule,
        now: Micros,
        once: &Once,
    ) -> StoreResult<Keyed<Schedule>> {
        self.keyed(once, now, &|tx| {
            let id: i64 = tx.query_one("SELECT nextval('schedules_id_seq')", &[]).map_err(db_error)?.get(0);
            let schedule = Schedule { id: ScheduleId(id as u64), ..schedule.clone() };
            save_schedule(tx, &schedule)?;
            Ok(Step::Done(schedule, Created::Schedule { id: id as u64 }))
        })
    }

    fn get_schedule(&self, id: ScheduleId) -> StoreResult<Option<Schedule>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE id = $1");
        self.run(|c| match c.query_opt(&sql, &[&(id.0 as i64)]).map_err(db_error)? {
            Some(row) => Ok(Some(schedule_from_row(&row)?)),
            None => Ok(None),
        })
    }

    fn list_schedules(&self) -> StoreResult<Vec<Schedule>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY id");
        self.run(|c| c.query(&sql, &[]).map_err(db_error)?.iter().map(schedule_from_row).collect())
    }

    fn update_schedule(
        &self,
        id: ScheduleId,
        update: &(dyn Fn(&mut Schedule) + Sync),
    ) -> StoreResult<Schedule> {
        self.transact(|tx| {
            let Some(mut schedule) = lock_schedule(tx, id)? else {
                return Err(StoreError::ScheduleNotFound(id));
            };
            update(&mut schedule);
            schedule.id = id;
            save_schedule(tx, &schedule)?;
            Ok(schedule)
        })
    }

    fn remove_schedule(&self, id: ScheduleId) -> StoreResult<bool> {
        self.run(|c| {
            let n = c.execute("DELETE FROM schedules WHERE id = $1", &[&(id.0 as i64)]).map_err(db_error)?;
            Ok(n == 1)
        })
    }

    fn due_schedules(&self, now: Micros, limit: usize) -> StoreResult<Vec<Schedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE active AND next_run_at <= $1 \
             ORDER BY next_run_at, id LIMIT $2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(|c| {
            c.query(&sql, &[&at(now), &limit]).map_err(db_error)?.iter().map(schedule_from_row).collect()
        })
    }

    fn next_schedule_due(&self) -> StoreResult<Option<Micros>> {
        self.run(|c| {
            let row = c
                .query_one(
                    "SELECT min(next_run_at) FROM schedules WHERE active AND next_run_at IS NOT NULL",
                    &[],
                )
                .map_err(db_error)?;
            Ok(row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(0).map(|t| t.timestamp_micros()))
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
        self.transact(|tx| {
            let Some(old) = lock_schedule(tx, id)? else { return Ok(None) };
            if !old.active || old.next_run_at != Some(slot) {
                return Ok(None); // another scheduler fired it first
            }
            let mut schedule = old;
            schedule.next_run_at = next;
            let job = match job {
                Some(new) => {
                    let mut job = Job::new(JobId(0), new, now);
                    job.id = insert_jobs(tx, &[&job]).map_err(db_error)?[0];
                    schedule.last_run_at = Some(now);
                    schedule.last_job_id = Some(job.id);
                    schedule.last_error = None;
                    schedule.runs += 1;
                    Some(job)
                }
                None => None,
            };
            save_schedule(tx, &schedule)?;
            Ok(Some(Fired { schedule, job }))
        })
    }
}
