//! Jobs as submitters and operators see them, on PostgreSQL: each change is one transaction
//! that reads the record `FOR UPDATE`, applies the transition of `crate::job`, and writes
//! it back; committed means durable (the server's `synchronous_commit`).

use std::collections::BTreeMap;

use super::dependents;
use super::errors::{db_error, is_unique_violation};
use super::history;
use super::idempotency::Step;
use super::limits;
use super::pauses;
use super::rows::{
    at, id_sql, insert_jobs, job_from_row, jobs_from_rows, next_job_ids, parents_of, save_jobs, JOB_COLUMNS,
};
use super::session::Sql;
use super::store::PgStore;
use crate::clock::Micros;
use crate::history::Row as HistoryRow;
use crate::job::Parent;
use crate::job::{CancelEffect, Job, JobId, NewJob, Status};
use crate::limits::{Limit, LimitState, Scope};
use crate::store::dependents::{self as store_dependents, Moved};
use crate::store::error::{StoreError, StoreResult};
use crate::store::traits::JobStore;
use crate::store::types::{
    Added, BackupSummary, Cancelled, Counts, Created, GroupState, Keyed, ListFilter, Once, QueuePause,
    Remembered, Removal,
};
use crate::sync;

/// Finished jobs deleted per transaction by `remove`: bounded, so a retention sweep over a
/// million jobs holds no lock for long and never one huge transaction.
const REMOVE_BATCH: i64 = 5_000;

/// The pending statuses, as the unique index names them.
const PENDING: &str = "('waiting', 'scheduled', 'held', 'queued', 'processing')";

/// The query for one page of `list` ($1 the limit, then those of the cursor, the queue and the
/// factory that are given: a condition with `$n IS NULL OR` would keep a generic plan from
/// using the index's bounds). With a status or name filter it is one `ORDER BY id LIMIT`
/// per status, each served by the (status, id), (queue, status, id) or (factory, status, id)
/// index, merged: the planner's Merge Append reads a page's worth of each, never the whole
/// filter (`status = ANY(...)` with `ORDER BY id` would read and sort every match).
fn list_sql(filter: &ListFilter, cursor: bool) -> String {
    let (cmp, order) = if filter.newest_first { ("<", "DESC") } else { (">", "") };
    let mut conditions = String::new();
    let mut n = 1;
    let named = filter.queue.is_some() || filter.factory.is_some();
    for (condition, given) in [
        (format!("id {cmp} $"), cursor),
        ("queue = $".to_owned(), filter.queue.is_some()),
        ("factory = $".to_owned(), filter.factory.is_some()),
    ] {
        if given {
            n += 1;
            conditions.push_str(&format!(" AND {condition}{n}"));
        }
    }
    let page = |status: Option<Status>| {
        let status = status.map(|s| format!(" AND status = '{}'", s.as_str())).unwrap_or_default();
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE true{status}{conditions} ORDER BY id {order} LIMIT $1")
    };
    if filter.statuses.is_empty() && !named {
        return page(None);
    }
    let statuses = if filter.statuses.is_empty() { &Status::ALL[..] } else { &filter.statuses[..] };
    let parts: Vec<String> = statuses.iter().map(|s| format!("({})", page(Some(*s)))).collect();
    format!("SELECT * FROM ({}) AS page ORDER BY id {order} LIMIT $1", parts.join(" UNION ALL "))
}

/// The job `id`, locked for the rest of the transaction.
pub(super) fn lock_job(client: &mut impl Sql, id: JobId) -> StoreResult<Job> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE");
    match client.query_opt(&sql, &[&id_sql(id)]).map_err(db_error)? {
        Some(row) => job_from_row(&row),
        None => Err(StoreError::NotFound(id)),
    }
}

/// The pending job holding `key` for `factory`, if any.
fn unique_holder(client: &mut impl Sql, factory: &str, key: &str) -> StoreResult<Option<Job>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE factory = $1 AND unique_key = $2 AND status IN {PENDING}"
    );
    match client.query_opt(&sql, &[&factory, &key]).map_err(db_error)? {
        Some(row) => Ok(Some(job_from_row(&row)?)),
        None => Ok(None),
    }
}

/// How often reading the counts also compacts them. The sums are exact either way; a
/// compaction is a write (a commit the server syncs), and a client polling `/v1/queues` every
/// few milliseconds made one per poll (276 during one benchmark's drain of 40,000 jobs).
/// Between compactions the rows added are one per add and a few per claim or outcome batch,
/// summed in about a millisecond.
const COMPACT_COUNTS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl PgStore {
    /// Compacts the counts when this store has not in the last [`COMPACT_COUNTS_EVERY`].
    fn counts_compacted(&self) -> StoreResult<()> {
        {
            let mut last = sync::lock(&self.compacted);
            if last.is_some_and(|at| at.elapsed() < COMPACT_COUNTS_EVERY) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.compact_counts()
    }

    /// Replaces the `job_counts` rows this statement sees with one row per (queue, status):
    /// their sum. Rows appended by transactions not yet committed are not seen and stay, so
    /// the sums stay exact whatever runs meanwhile (two compactions at once included).
    pub(super) fn compact_counts(&self) -> StoreResult<()> {
        self.run(|c| {
            c.execute(
                "WITH gone AS (DELETE FROM job_counts RETURNING queue, status, n) \
                 INSERT INTO job_counts (queue, status, n) \
                 SELECT queue, status, sum(n) FROM gone GROUP BY queue, status HAVING sum(n) <> 0",
                &[],
            )
            .map_err(db_error)?;
            Ok(())
        })
    }
}

/// `jobs` with the parents of those that have any filled in, for a caller (one statement).
fn with_parents(client: &mut impl Sql, jobs: &mut [Job]) -> StoreResult<()> {
    let ids: Vec<JobId> = jobs.iter().filter(|j| j.deps.is_some()).map(|j| j.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut parents = parents_of(client, &ids)?;
    for job in jobs.iter_mut() {
        if let Some(list) = parents.remove(&job.id) {
            job.parents = list;
        }
    }
    Ok(())
}

impl JobStore for PgStore {
    fn add(&self, new: NewJob, now: Micros) -> StoreResult<Added> {
        let now = self.db_now(now);
        if !new.depends_on.is_empty() {
            // Admitted against its parents in one transaction: its id is taken first, for the
            // edges. (No unique key: refused with dependencies.)
            return self.transact(|tx| {
                let id = next_job_ids(tx, 1)?[0];
                let mut job = Job::new(id, new, now);
                dependents::admit(tx, std::slice::from_mut(&mut job), now)?;
                insert_jobs(tx, &[&job]).map_err(db_error)?;
                Ok(Added { job, existing: false })
            });
        }
        let unique = new.unique_key.clone();
        // With a unique key, the index decides between concurrent adds on any host: the
        // loser's insert fails and it returns the winner. The holder can finish between that
        // failure and the look-up; then the add is tried again.
        for _ in 0..10 {
            let attempt = new.clone();
            // One statement, committed on its own: the id comes from the sequence in it.
            let added = self.run(|c| {
                let mut job = Job::new(JobId(0), attempt, now);
                match insert_jobs(c, &[&job]) {
                    Ok(ids) => {
                        job.id = ids[0];
                        Ok(Some(job))
                    }
                    Err(e) if unique.is_some() && is_unique_violation(&e) => Ok(None),
                    // Committed on its own: once sent, a lost connection leaves it unknown.
                    Err(e) => Err(match db_error(e) {
                        StoreError::Unavailable(why) => StoreError::OutcomeUnknown(why),
                        other => other,
                    }),
                }
            })?;
            if let Some(job) = added {
                return Ok(Added { job, existing: false });
            }
            let (factory, key) = (&new.factory, unique.as_deref().unwrap_or_default());
            if let Some(holder) = self.run(|c| unique_holder(c, factory, key))? {
                return Ok(Added { job: holder, existing: true });
            }
        }
        Err(StoreError::Database(format!(
            "the unique key of a new `{}` job kept changing hands; try again",
            new.factory
        )))
    }

    fn add_batch(&self, news: Vec<NewJob>, now: Micros) -> StoreResult<Vec<Job>> {
        let now = self.db_now(now);
        if news.is_empty() {
            return Ok(Vec::new());
        }
        self.transact(|tx| {
            let ids = next_job_ids(tx, news.len())?;
            let group = store_dependents::new_group(&news, &ids, now);
            let mut jobs: Vec<Job> =
                news.into_iter().zip(&ids).map(|(new, &id)| Job::new_in_batch(id, new, &ids, now)).collect();
            dependents::admit(tx, &mut jobs, now)?;
            if let Some(group) = &group {
                dependents::insert_group(tx, group)?;
            }
            let refs: Vec<&Job> = jobs.iter().collect();
            insert_jobs(tx, &refs).map_err(db_error)?;
            Ok(jobs)
        })
    }

    fn add_keyed(&self, new: NewJob, now: Micros, once: &Once) -> StoreResult<Keyed<Added>> {
        let db_now = self.db_now(now);
        self.keyed(once, now, &|tx| {
            let mut job = Job::new(JobId(0), new.clone(), db_now);
            if !new.depends_on.is_empty() {
                job.id = next_job_ids(tx, 1)?[0];
                dependents::admit(tx, std::slice::from_mut(&mut job), db_now)?;
            }
            if let Some(key) = &new.unique_key {
                if let Some(holder) = unique_holder(tx, &new.factory, key)? {
                    let created = Created::Job { id: holder.id.0, existing: true };
                    return Ok(Step::Done(Added { job: holder, existing: true }, created));
                }
            }
            match insert_jobs(tx, &[&job]) {
                Ok(ids) => {
                    job.id = ids[0];
                    let created = Created::Job { id: job.id.0, existing: false };
                    Ok(Step::Done(Added { job, existing: false }, created))
                }
                // Another host's add took the unique key since the look-up: the transaction is
                // aborted (its commit rolls back), and the next one finds the holder.
                Err(e) if new.unique_key.is_some() && is_unique_violation(&e) => Ok(Step::Again),
                Err(e) => Err(db_error(e)),
            }
        })
    }

    fn add_batch_keyed(&self, news: Vec<NewJob>, now: Micros, once: &Once) -> StoreResult<Keyed<Vec<Job>>> {
        let db_now = self.db_now(now);
        self.keyed(once, now, &|tx| {
            let ids = next_job_ids(tx, news.len())?;
            let group = store_dependents::new_group(&news, &ids, db_now);
            let mut jobs: Vec<Job> = news
                .iter()
                .cloned()
                .zip(&ids)
                .map(|(new, &id)| Job::new_in_batch(id, new, &ids, db_now))
                .collect();
            dependents::admit(tx, &mut jobs, db_now)?;
            if let Some(group) = &group {
                dependents::insert_group(tx, group)?;
            }
            let refs: Vec<&Job> = jobs.iter().collect();
            insert_jobs(tx, &refs).map_err(db_error)?;
            let created = Created::Batch { ids: jobs.iter().map(|j| j.id.0).collect() };
            Ok(Step::Done(jobs, created))
        })
    }

    fn remembered(&self, key: &str, now: Micros) -> StoreResult<Option<Remembered>> {
        self.lookup_key(key, now)
    }

    fn forget_keys(&self, now: Micros, limit: usize) -> StoreResult<usize> {
        self.forget_expired_keys(now, limit)
    }

    fn start(&self, id: JobId, now: Micros) -> StoreResult<Job> {
        let now = self.db_now(now);
        self.transact(|tx| {
            let mut job = lock_job(tx, id)?;
            job.start(now)?;
            save_jobs(tx, &[&job], None)?;
            Ok(job)
        })
    }

    fn cancel(&self, id: JobId, now: Micros) -> StoreResult<Cancelled> {
        let now = self.db_now(now);
        self.transact(|tx| {
            let mut job = lock_job(tx, id)?;
            let from = job.status;
            let effect = job.cancel(now)?;
            save_jobs(tx, &[&job], None)?;
            dependents::propagate(tx, &[Moved::of(from, &job)], now)?;
            Ok(match effect {
                CancelEffect::Now => Cancelled::Now(job),
                CancelEffect::Requested => Cancelled::Requested(job),
            })
        })
    }

    fn retry(&self, id: JobId, max_attempts: Option<u32>, now: Micros) -> StoreResult<Job> {
        let now = self.db_now(now);
        self.transact(|tx| {
            let mut job = lock_job(tx, id)?;
            let from = job.status;
            job.retry(max_attempts, now)?;
            // Pending again, it takes its unique key back: unless another pending job holds
            // it meanwhile, which a retry must not duplicate.
            if let Some(key) = &job.unique_key {
                if let Some(holder) = unique_holder(tx, &job.factory, key)? {
                    return Err(StoreError::KeyHeld { id, key: key.clone(), holder: holder.id });
                }
            }
            save_jobs(tx, &[&job], None)?;
            dependents::propagate(tx, &[Moved::of(from, &job)], now)?;
            Ok(job)
        })
    }

    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        self.run(|c| match c.query_opt(&sql, &[&id_sql(id)]).map_err(db_error)? {
            Some(row) => {
                let mut jobs = vec![job_from_row(&row)?];
                with_parents(c, &mut jobs)?;
                Ok(jobs.pop())
            }
            None => Ok(None),
        })
    }

    fn parents(&self, id: JobId) -> StoreResult<Vec<Parent>> {
        self.run(|c| Ok(parents_of(c, &[id])?.remove(&id).unwrap_or_default()))
    }

    fn group(&self, id: JobId) -> StoreResult<Option<GroupState>> {
        self.run(|c| dependents::group(c, id))
    }

    fn dependents(&self, id: JobId, after: Option<JobId>, limit: usize) -> StoreResult<Vec<JobId>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Ids are `bigint` here: past its range no child follows.
        let after = match after {
            Some(a) if a.0 > i64::MAX as u64 => return Ok(Vec::new()),
            Some(a) => a.0 as i64,
            None => 0,
        };
        self.run(|c| {
            let rows = c
                .query(
                    "SELECT child FROM job_dependents WHERE parent = $1 AND child > $3 ORDER BY child LIMIT $2",
                    &[&id_sql(id), &limit, &after],
                )
                .map_err(db_error)?;
            Ok(rows.iter().map(|r| JobId(r.get::<_, i64>(0) as u64)).collect())
        })
    }

    fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Job>> {
        // Ids are `bigint` here: past its range no job follows (ascending), all precede.
        let after = match filter.after {
            Some(a) if a.0 > i64::MAX as u64 => {
                if !filter.newest_first {
                    return Ok(Vec::new());
                }
                None
            }
            a => a.map(id_sql),
        };
        let sql = list_sql(filter, after.is_some());
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&limit];
        if let Some(after) = &after {
            params.push(after);
        }
        if let Some(queue) = &filter.queue {
            params.push(queue);
        }
        if let Some(factory) = &filter.factory {
            params.push(factory);
        }
        self.run(|c| {
            let rows = c.query(&sql, &params).map_err(db_error)?;
            let mut jobs = jobs_from_rows(&rows)?;
            with_parents(c, &mut jobs)?;
            Ok(jobs)
        })
    }

    fn remove(&self, which: &Removal) -> StoreResult<BTreeMap<Status, u64>> {
        let wanted: Vec<&str> = if which.statuses.is_empty() {
            Status::FINISHED.iter().map(|s| s.as_str()).collect()
        } else {
            which.statuses.iter().filter(|s| s.is_finished()).map(|s| s.as_str()).collect()
        };
        let before = which.finished_before.map(at);
        let mut removed = BTreeMap::new();
        // Finished and gone, a job changes no more: its edges to dependents go with it. A job
        // that a pending job depends on stays (the dependent reads its outcome when it runs).
        let sql = format!(
            "WITH gone AS (DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE finished_at IS NOT NULL \
                     AND ($1::timestamptz IS NULL OR finished_at < $1) AND status = ANY($2) \
                     AND ($4::text IS NULL OR queue = $4) AND ($5::text IS NULL OR factory = $5) \
                     AND ($6::bigint IS NULL OR id = $6) \
                     AND NOT EXISTS (SELECT 1 FROM job_dependents d JOIN jobs c ON c.id = d.child \
                     WHERE d.parent = jobs.id AND c.status IN {PENDING}) \
                     ORDER BY finished_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, status), \
                     edges AS (DELETE FROM job_dependents WHERE parent IN (SELECT id FROM gone)), \
                     groups AS (DELETE FROM job_groups WHERE id IN (SELECT id FROM gone)) \
                     SELECT status FROM gone"
        );
        loop {
            let rows = self.run(|c| {
                c.query(
                    &sql,
                    &[&before, &wanted, &REMOVE_BATCH, &which.queue, &which.factory, &which.id.map(id_sql)],
                )
                .map_err(db_error)
            })?;
            for row in &rows {
                let status: String = row.get(0);
                if let Ok(status) = status.parse::<Status>() {
                    *removed.entry(status).or_insert(0) += 1;
                }
            }
            if (rows.len() as i64) < REMOVE_BATCH {
                return Ok(removed);
            }
        }
    }

    fn counts(&self) -> StoreResult<Counts> {
        self.counts_compacted()?;
        self.run(|c| {
            let rows = c
                .query(
                    "SELECT queue, status, sum(n)::bigint FROM job_counts GROUP BY queue, status HAVING sum(n) <> 0",
                    &[],
                )
                .map_err(db_error)?;
            let mut counts = Counts::new();
            for row in rows {
                let status: String = row.get(1);
                let Ok(status) = status.parse::<Status>() else { continue };
                let n: i64 = row.get(2);
                counts.entry(row.get(0)).or_default().insert(status, n as u64);
            }
            Ok(counts)
        })
    }

    fn limits(&self) -> StoreResult<Vec<LimitState>> {
        self.run(limits::all)
    }

    fn set_limit(&self, limit: Limit) -> StoreResult<LimitState> {
        self.run(|c| limits::set(c, &limit))
    }

    fn remove_limit(&self, scope: &Scope) -> StoreResult<bool> {
        self.run(|c| limits::remove(c, scope))
    }

    fn pauses(&self) -> StoreResult<Vec<QueuePause>> {
        self.run(pauses::all)
    }

    fn count_of_factory(
        &self,
        factory: &str,
        queue: Option<&str>,
        statuses: &[Status],
        cap: u64,
    ) -> StoreResult<u64> {
        let statuses: Vec<&str> = if statuses.is_empty() { Status::ALL.iter() } else { statuses.iter() }
            .map(|s| s.as_str())
            .collect();
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        // An index range of `jobs_by_factory` (factory, status, id), stopped at the cap.
        self.run(|c| {
            let row = c
                .query_one(
                    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE factory = $1 AND status = ANY($2) \
                     AND ($3::text IS NULL OR queue = $3) LIMIT $4) AS matching",
                    &[&factory, &statuses, &queue, &cap],
                )
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn add_history(&self, rows: &[HistoryRow], now: Micros) -> StoreResult<()> {
        self.run(|c| history::add(c, rows, now))
    }

    fn history(&self, from_minute: i64) -> StoreResult<Vec<HistoryRow>> {
        self.run(|c| history::from(c, from_minute))
    }

    fn pause(&self, pause: &QueuePause) -> StoreResult<QueuePause> {
        self.run(|c| pauses::pause(c, pause))
    }

    fn resume(&self, queue: &str) -> StoreResult<bool> {
        self.run(|c| pauses::resume(c, queue))
    }

    fn backup(&self, _out: &mut dyn std::io::Write) -> StoreResult<BackupSummary> {
        Err(StoreError::Unusable(format!(
            "the store is PostgreSQL at {}: back it up with the database's own tools (pg_dump, or \
             continuous archiving); `jobhost store backup` copies the embedded store",
            self.shown
        )))
    }
}
