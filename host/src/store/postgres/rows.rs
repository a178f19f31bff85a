//! Jobs and schedules to and from rows. A job's row holds every field of the record in a
//! column of its own (what operators query, and what the indexes are on); every change is
//! made by `crate::job`'s transitions on the record read `FOR UPDATE` and written back
//! whole by [`save_jobs`], so both stores share one state machine.

use chrono::{DateTime, Utc};
use postgres::Row;

use super::session::Sql;

use super::errors::db_error;
use crate::clock::{to_datetime, Micros};
use crate::job::{
    AttemptToken, Callback, Job, JobId, Lease, Membership, Parent, Progress, ScheduleId, Status,
};
use crate::schedule::Schedule;
use crate::store::error::{StoreError, StoreResult};

/// How many columns [`JOB_COLUMNS`] names: a query may select more after them.
pub const JOB_COLUMN_COUNT: usize = 27;

/// Every column of `jobs`, in the order [`job_from_row`] reads them.
pub const JOB_COLUMNS: &str = "id, factory, queue, priority, input, status, result, errors, attempts, \
     max_attempts, timeout_ms, created_at, started_at, finished_at, run_at, progress_fraction, \
     progress_message, lease_token, lease_expires_at, cancel_requested, unique_key, schedule_id, deps, group_id, group_callback, limit_key, backtrace";

pub fn at(micros: Micros) -> DateTime<Utc> {
    to_datetime(micros)
}

fn micros(t: DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

/// Ids and tokens are `u64` in the host and `bigint` in the database: the same 64 bits.
pub fn id_sql(id: JobId) -> i64 {
    id.0 as i64
}

pub fn token_sql(token: AttemptToken) -> i64 {
    token.0 as i64
}

fn unsigned(n: i32, what: &str, id: i64) -> StoreResult<u32> {
    u32::try_from(n).map_err(|_| StoreError::Database(format!("job {id}: stored {what} {n} is negative")))
}

pub fn job_from_row(row: &Row) -> StoreResult<Job> {
    let id: i64 = row.get(0);
    let status: String = row.get(5);
    let status: Status =
        status.parse().map_err(|e: String| StoreError::Database(format!("job {id}: stored status: {e}")))?;
    let fraction: Option<f64> = row.get(15);
    let message: Option<String> = row.get(16);
    let token: Option<i64> = row.get(17);
    let expires: Option<DateTime<Utc>> = row.get(18);
    let timeout_ms: Option<i64> = row.get(10);
    let schedule_id: Option<i64> = row.get(21);
    let deps: Option<String> = row.get(22);
    let deps =
        match deps {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                StoreError::Database(format!("job {id}: stored dependencies unreadable: {e}"))
            })?),
            None => None,
        };
    let group_id: Option<i64> = row.get(23);
    let callback: Option<String> = row.get(24);
    let callback = match callback.as_deref() {
        None => None,
        Some("on_complete") => Some(Callback::OnComplete),
        Some("on_success") => Some(Callback::OnSuccess),
        Some(other) => {
            return Err(StoreError::Database(format!("job {id}: stored group callback `{other}`")))
        }
    };
    Ok(Job {
        id: JobId(id as u64),
        factory: row.get(1),
        queue: row.get(2),
        priority: row.get(3),
        input: row.get(4),
        status,
        result: row.get(6),
        errors: row.get(7),
        attempts: unsigned(row.get(8), "attempts", id)?,
        max_attempts: unsigned(row.get(9), "max_attempts", id)?,
        timeout_ms: timeout_ms.map(|ms| ms.max(0) as u64),
        created_at: micros(row.get(11)),
        started_at: row.get::<_, Option<DateTime<Utc>>>(12).map(micros),
        finished_at: row.get::<_, Option<DateTime<Utc>>>(13).map(micros),
        run_at: micros(row.get(14)),
        progress: fraction.map(|fraction| Progress { fraction, message: message.unwrap_or_default() }),
        lease: token
            .zip(expires)
            .map(|(token, expires)| Lease { token: AttemptToken(token as u64), expires_at: micros(expires) }),
        cancel_requested: row.get(19),
        unique_key: row.get(20),
        schedule_id: schedule_id.map(|s| ScheduleId(s as u64)),
        deps,
        group: group_id.map(|g| Membership { group: JobId(g as u64), callback }),
        limit_key: row.get(25),
        backtrace: row.get(26),
        // Kept in its own column, read only by `parents_of` (see `Job::parents`).
        parents: Vec::new(),
    })
}

pub fn jobs_from_rows(rows: &[Row]) -> StoreResult<Vec<Job>> {
    rows.iter().map(job_from_row).collect()
}

/// `text` as PostgreSQL can store it: a NUL character (which it cannot) becomes U+FFFD.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// The columns of many jobs, one array per column (written with `unnest`, one statement
/// for any number of jobs).
struct Columns {
    id: Vec<i64>,
    factory: Vec<String>,
    queue: Vec<String>,
    priority: Vec<i32>,
    input: Vec<String>,
    status: Vec<&'static str>,
    result: Vec<Option<String>>,
    /// Each job's error list as a JSON array: `unnest` cannot take a ragged 2-D array.
    errors: Vec<String>,
    attempts: Vec<i32>,
    max_attempts: Vec<i32>,
    timeout_ms: Vec<Option<i64>>,
    created_at: Vec<DateTime<Utc>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    run_at: Vec<DateTime<Utc>>,
    progress_fraction: Vec<Option<f64>>,
    progress_message: Vec<Option<String>>,
    lease_token: Vec<Option<i64>>,
    lease_expires_at: Vec<Option<DateTime<Utc>>>,
    cancel_requested: Vec<bool>,
    unique_key: Vec<Option<String>>,
    schedule_id: Vec<Option<i64>>,
    /// Each dependent's `Deps` as JSON.
    deps: Vec<Option<String>>,
    group_id: Vec<Option<i64>>,
    group_callback: Vec<Option<&'static str>>,
    limit_key: Vec<Option<String>>,
    backtrace: Vec<Option<String>>,
    /// Each dependent's parents as JSON: written by inserts only.
    parents: Vec<Option<String>>,
}

impl Columns {
    fn of(jobs: &[&Job]) -> Columns {
        let n = jobs.len();
        let mut c = Columns {
            id: Vec::with_capacity(n),
            factory: Vec::with_capacity(n),
            queue: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            input: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            result: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            timeout_ms: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            started_at: Vec::with_capacity(n),
            finished_at: Vec::with_capacity(n),
            run_at: Vec::with_capacity(n),
            progress_fraction: Vec::with_capacity(n),
            progress_message: Vec::with_capacity(n),
            lease_token: Vec::with_capacity(n),
            lease_expires_at: Vec::with_capacity(n),
            cancel_requested: Vec::with_capacity(n),
            unique_key: Vec::with_capacity(n),
            schedule_id: Vec::with_capacity(n),
            deps: Vec::with_capacity(n),
            group_id: Vec::with_capacity(n),
            group_callback: Vec::with_capacity(n),
            limit_key: Vec::with_capacity(n),
            backtrace: Vec::with_capacity(n),
            parents: Vec::with_capacity(n),
        };
        for job in jobs {
            c.id.push(id_sql(job.id));
            c.factory.push(job.factory.clone());
            c.queue.push(job.queue.clone());
            c.priority.push(job.priority);
            c.input.push(job.input.clone());
            c.status.push(job.status.as_str());
            c.result.push(job.result.clone());
            // JSON escapes a NUL in an error message as `\u0000`, which PostgreSQL's jsonb
            // refuses: a plugin's message carries the replacement character instead.
            let errors: Vec<String> = job.errors.iter().map(|e| without_nul(e)).collect();
            c.errors.push(serde_json::to_string(&errors).unwrap_or_else(|_| "[]".into()));
            c.attempts.push(i32::try_from(job.attempts).unwrap_or(i32::MAX));
            c.max_attempts.push(i32::try_from(job.max_attempts).unwrap_or(i32::MAX));
            c.timeout_ms.push(job.timeout_ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)));
            c.created_at.push(at(job.created_at));
            c.started_at.push(job.started_at.map(at));
            c.finished_at.push(job.finished_at.map(at));
            c.run_at.push(at(job.run_at));
            c.progress_fraction.push(job.progress.as_ref().map(|p| p.fraction));
            c.progress_message.push(job.progress.as_ref().map(|p| without_nul(&p.message)));
            c.lease_token.push(job.lease.map(|l| token_sql(l.token)));
            c.lease_expires_at.push(job.lease.map(|l| at(l.expires_at)));
            c.cancel_requested.push(job.cancel_requested);
            c.unique_key.push(job.unique_key.clone());
            c.schedule_id.push(job.schedule_id.map(|s| s.0 as i64));
            c.deps.push(job.deps.as_ref().and_then(|d| serde_json::to_string(d).ok()));
            c.group_id.push(job.group.map(|m| id_sql(m.group)));
            c.group_callback.push(job.group.and_then(|m| m.callback).map(Callback::as_str));
            c.limit_key.push(job.limit_key.clone());
            c.backtrace.push(job.backtrace.as_deref().map(without_nul));
            c.parents.push(
                (!job.parents.is_empty()).then(|| serde_json::to_string(&job.parents).unwrap_or_default()),
            );
        }
        c
    }
}

/// The rows of `unnest` over [`Columns`] (`$1` to `$28`), named as the table's columns.
const UNNEST: &str = "unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::integer[], $10::integer[], $11::bigint[], $12::timestamptz[], \
     $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::float8[], $17::text[], \
     $18::bigint[], $19::timestamptz[], $20::boolean[], $21::text[], $22::bigint[], $23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[], $28::text[]) \
     AS u(id, factory, queue, priority, input, status, result, errors, attempts, max_attempts, \
     timeout_ms, created_at, started_at, finished_at, run_at, progress_fraction, progress_message, \
     lease_token, lease_expires_at, cancel_requested, unique_key, schedule_id, deps, group_id, \
     group_callback, limit_key, parents, backtrace)";

const ERRORS: &str = "ARRAY(SELECT jsonb_array_elements_text(u.errors::jsonb))";

fn query_with_columns(
    client: &mut impl Sql,
    sql: &str,
    jobs: &[&Job],
    extra: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, postgres::Error> {
    let c = Columns::of(jobs);
    let columns: [&(dyn postgres::types::ToSql + Sync); 28] = [
        &c.id,
        &c.factory,
        &c.queue,
        &c.priority,
        &c.input,
        &c.status,
        &c.result,
        &c.errors,
        &c.attempts,
        &c.max_attempts,
        &c.timeout_ms,
        &c.created_at,
        &c.started_at,
        &c.finished_at,
        &c.run_at,
        &c.progress_fraction,
        &c.progress_message,
        &c.lease_token,
        &c.lease_expires_at,
        &c.cancel_requested,
        &c.unique_key,
        &c.schedule_id,
        &c.deps,
        &c.group_id,
        &c.group_callback,
        &c.limit_key,
        &c.parents,
        &c.backtrace,
    ];
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> = columns.iter().chain(extra).copied().collect();
    client.query(sql, &params)
}

/// Inserts new jobs in one statement; a job with id 0 takes the next of `jobs_id_seq`.
/// Returns the ids, in order. A unique-index violation comes back as the driver's error,
/// for the caller to look for.
pub fn insert_jobs(client: &mut impl Sql, jobs: &[&Job]) -> Result<Vec<JobId>, postgres::Error> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO jobs ({JOB_COLUMNS}, parents) SELECT CASE WHEN u.id = 0 THEN nextval('jobs_id_seq') ELSE u.id END, \
         u.factory, u.queue, u.priority, u.input, u.status, \
         u.result, {ERRORS}, u.attempts, u.max_attempts, u.timeout_ms, u.created_at, u.started_at, \
         u.finished_at, u.run_at, u.progress_fraction, u.progress_message, u.lease_token, \
         u.lease_expires_at, u.cancel_requested, u.unique_key, u.schedule_id, u.deps, u.group_id, u.group_callback, u.limit_key, u.backtrace, u.parents FROM {UNNEST} RETURNING id"
    );
    let rows = query_with_columns(client, &sql, jobs, &[])?;
    Ok(rows.iter().map(|r| JobId(r.get::<_, i64>(0) as u64)).collect())
}

/// Writes changed jobs back whole, in one statement (the fields a job never changes after
/// it is added are left alone). A job left `processing` is marked as held by `lease_host`
/// (when given; else it keeps its holder); any other has none.
///
/// `j.id = ANY($1)` beside the join: whatever join the planner picks for a large batch (a
/// hash or merge join once the batch is a few percent of the table), `jobs` is read through
/// its primary key for the batch's ids only, never whole.
pub fn save_jobs(client: &mut impl Sql, jobs: &[&Job], lease_host: Option<&str>) -> StoreResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs AS j SET priority = u.priority, status = u.status, result = u.result, \
         errors = {ERRORS}, attempts = u.attempts, max_attempts = u.max_attempts, \
         timeout_ms = u.timeout_ms, started_at = u.started_at, finished_at = u.finished_at, \
         run_at = u.run_at, progress_fraction = u.progress_fraction, \
         progress_message = u.progress_message, lease_token = u.lease_token, \
         lease_expires_at = u.lease_expires_at, cancel_requested = u.cancel_requested, \
         unique_key = u.unique_key, deps = u.deps, backtrace = u.backtrace, \
         lease_host = CASE WHEN u.status = 'processing' \
         THEN coalesce($29::text, j.lease_host) END FROM {UNNEST} WHERE j.id = u.id AND j.id = ANY($1)"
    );
    query_with_columns(client, &sql, jobs, &[&lease_host]).map_err(db_error)?;
    Ok(())
}

/// The parents of the dependents among `ids`, by id (its own column: never read by the
/// changes that rewrite a dependent's row).
pub fn parents_of(
    client: &mut impl Sql,
    ids: &[JobId],
) -> StoreResult<std::collections::HashMap<JobId, Vec<Parent>>> {
    let ids: Vec<i64> = ids.iter().map(|id| id_sql(*id)).collect();
    let rows = client
        .query("SELECT id, parents FROM jobs WHERE id = ANY($1) AND parents IS NOT NULL", &[&ids])
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            let id = JobId(r.get::<_, i64>(0) as u64);
            let text: String = r.get(1);
            let parents = serde_json::from_str(&text)
                .map_err(|e| StoreError::Database(format!("job {id}: stored parents unreadable: {e}")))?;
            Ok((id, parents))
        })
        .collect()
}

/// Takes `n` new job ids, in increasing order.
pub fn next_job_ids(client: &mut impl Sql, n: usize) -> StoreResult<Vec<JobId>> {
    let rows = client
        .query("SELECT nextval('jobs_id_seq') FROM generate_series(1, $1::bigint)", &[&(n as i64)])
        .map_err(db_error)?;
    Ok(rows.iter().map(|r| JobId(r.get::<_, i64>(0) as u64)).collect())
}

pub fn schedule_from_row(row: &Row) -> StoreResult<Schedule> {
    let id: i64 = row.get(0);
    let definition: String = row.get(1);
    let mut schedule: Schedule = serde_json::from_str(&definition)
        .map_err(|e| StoreError::Database(format!("schedule {id}: stored definition unreadable: {e}")))?;
    schedule.id = ScheduleId(id as u64);
    Ok(schedule)
}

/// `id, definition` of `schedules`, as [`schedule_from_row`] reads them.
pub const SCHEDULE_COLUMNS: &str = "id, definition::text";

/// Writes a schedule (insert or replace); its `active` and `next_run_at` columns, which the
/// due index is on, come from the record.
pub fn save_schedule(client: &mut impl Sql, schedule: &Schedule) -> StoreResult<()> {
    let definition = serde_json::to_string(schedule)
        .map_err(|e| StoreError::Database(format!("schedule {}: cannot encode: {e}", schedule.id)))?;
    client
        .execute(
            "INSERT INTO schedules (id, active, next_run_at, definition) VALUES ($1, $2, $3, CAST($4::text AS jsonb)) \
             ON CONFLICT (id) DO UPDATE SET active = EXCLUDED.active, next_run_at = EXCLUDED.next_run_at, \
             definition = EXCLUDED.definition",
            &[&(schedule.id.0 as i64), &schedule.active, &schedule.next_run_at.map(at), &definition],
        )
        .map_err(db_error)?;
    Ok(())
}
