//! Running jobs on PostgreSQL: claims (`FOR UPDATE SKIP LOCKED`, so hosts claiming from one
//! queue at once take different jobs and never wait for each other), outcomes, leases and
//! the recovery of jobs whose host stopped renewing them.
//!
//! A claim counts the attempt in its own transaction: a job that kills its host has its
//! attempt counted whatever happens next, without the embedded store's claims journal.

use std::collections::HashMap;
use std::sync::Arc;

use super::dependents;
use super::errors::db_error;
use super::limits as pg_limits;
use super::rows::{at, id_sql, jobs_from_rows, save_jobs, token_sql, JOB_COLUMNS, JOB_COLUMN_COUNT};
use super::session::{Sql, Tx};
use super::store::PgStore;
use crate::clock::{duration_micros, Micros, SystemClock};
use crate::job::Status;
use crate::job::{
    worker_lost_host_silent, AttemptToken, Job, JobId, Lease, Progress, WORKER_LOST_LEASE_EXPIRED,
};
use crate::limits::{self, Gate};
use crate::store::dependents::Moved;
use crate::store::error::StoreResult;
use crate::store::traits::{Report, WorkStore};
use crate::store::types::{ClaimFilter, Claimed, Finished, HostRecord, LeaseTerms, Notice};
use crate::sync;

/// The claim statement for `filter`'s shape: `queue = $3` only when a queue is given (then
/// `factory = $4`, or `$3` without a queue), never `($3 IS NULL OR queue = $3)`. Statements
/// are prepared once per connection, and after five runs PostgreSQL may keep a generic plan
/// for them: one written with that `OR` cannot bound the ready index by queue, so such a plan
/// reads and sorts every queued job of every queue on each claim. Each shape here keeps its
/// index bounds in any plan: `jobs_ready` (queue, priority DESC, run_at, id), in order, to
/// the limit.
pub fn claim_sql(filter: &ClaimFilter<'_>) -> String {
    claim_sql_with(filter, false)
}

/// [`claim_sql`], and with `closed`, `AND NOT (factory = ANY($n))` after the filter's
/// parameters: the factories no limit lets start now, whose jobs a claim under limits does not
/// read; then the keys at a per-key limit as three arrays (the limit's kind, its queue's or
/// factory's name, the key), whose jobs it passes over, so that one key's backlog never hides
/// the jobs queued behind it.
pub fn claim_sql_with(filter: &ClaimFilter<'_>, closed: bool) -> String {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' AND run_at <= $1");
    let mut n = 2;
    if filter.queue.is_some() {
        n += 1;
        sql.push_str(&format!(" AND queue = ${n}"));
    }
    if filter.factory.is_some() {
        n += 1;
        sql.push_str(&format!(" AND factory = ${n}"));
    }
    if closed {
        n += 1;
        sql.push_str(&format!(" AND NOT (factory = ANY(${n}))"));
        let (kinds, names, keys) = (n + 1, n + 2, n + 3);
        sql.push_str(&format!(
            " AND (limit_key IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(${kinds}::text[], ${names}::text[], \
             ${keys}::text[]) AS full_key(kind, name, key) WHERE full_key.key = jobs.limit_key \
             AND full_key.name = CASE full_key.kind WHEN 'queue' THEN jobs.queue ELSE jobs.factory END))"
        ));
    }
    // Paused queues are left alone here too, not only by the hosts' pause watch: a host that
    // lost the database while a queue was paused claims nothing from it once back. The array
    // is read once per statement (an init plan), so the plan stays on the index.
    sql.push_str(" AND queue <> ALL(ARRAY(SELECT queue FROM queue_pauses))");
    sql.push_str(" ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED");
    sql
}

/// Ready jobs a claim under limits reads at most (see the embedded store's).
const LIMITED_CANDIDATES: usize = 512;

/// The earliest time a job becomes due: of the scheduled jobs (`jobs_scheduled`), and of the
/// queued ones waiting for a retry time (`jobs_waiting`); each an index's first entry past
/// `$1`, whatever the backlog.
pub const NEXT_DUE_SQL: &str = "SELECT least((SELECT min(run_at) FROM jobs WHERE status = 'scheduled'), \
     (SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at > $1))";

impl PgStore {
    /// Locks the jobs `ids` (those that exist), by id.
    fn lock_jobs(tx: &mut Tx<'_>, ids: &[i64]) -> StoreResult<HashMap<JobId, Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        let rows = tx.query(&sql, &[&ids]).map_err(db_error)?;
        Ok(jobs_from_rows(&rows)?.into_iter().map(|j| (j.id, j)).collect())
    }

    /// Scheduled jobs whose time came become `queued` (the update's trigger tells the hosts).
    fn promote(client: &mut impl Sql, now: Micros) -> StoreResult<usize> {
        let n = client
            .execute(
                "UPDATE jobs SET status = 'queued' WHERE status = 'scheduled' AND run_at <= $1",
                &[&at(now)],
            )
            .map_err(db_error)?;
        Ok(n as usize)
    }

    /// Requeues (or fails) up to 1,000 jobs whose lease expired. The error names the host
    /// that held the job when that host has not beaten since the lease expired (it stopped
    /// or lost the database), else the lease alone (its worker stopped renewing it).
    fn requeue_expired(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        self.transact(|tx| {
            // SKIP LOCKED: a job another host is finishing right now is not expired.
            let sql = format!(
                "SELECT {JOB_COLUMNS}, (SELECT h.name FROM hosts h WHERE h.name = jobs.lease_host \
                 AND h.heartbeat_at < jobs.lease_expires_at) FROM jobs \
                 WHERE status = 'processing' AND lease_expires_at < $1 \
                 ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED"
            );
            let rows = tx.query(&sql, &[&at(now)]).map_err(db_error)?;
            let mut jobs = jobs_from_rows(&rows)?;
            for (job, row) in jobs.iter_mut().zip(&rows) {
                let silent: Option<String> = row.get(JOB_COLUMN_COUNT);
                match silent {
                    Some(host) => job.lose_worker(&worker_lost_host_silent(&host), now),
                    None => job.lose_worker(WORKER_LOST_LEASE_EXPIRED, now),
                }
            }
            save_jobs(tx, &jobs.iter().collect::<Vec<_>>(), None)?;
            let moved: Vec<Moved> = jobs.iter().map(|j| Moved::of(Status::Processing, j)).collect();
            dependents::propagate(tx, &moved, now)?;
            Ok(jobs.iter().map(|j| j.id).collect())
        })
    }
}

impl WorkStore for PgStore {
    fn promote_due(&self, now: Micros) -> StoreResult<usize> {
        let now = self.db_now(now);
        self.run(|c| PgStore::promote(c, now))
    }

    fn next_due(&self) -> StoreResult<Option<Micros>> {
        // Retry waits are `queued` with a later run time; the earliest of those still ahead,
        // or of the scheduled jobs.
        let db_now = self.db_now(SystemClock.now_micros());
        let now = at(db_now);
        self.run(|c| {
            let row = c.query_one(NEXT_DUE_SQL, &[&now]).map_err(db_error)?;
            let due = row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(0).map(|t| t.timestamp_micros());
            // A rate limit's next start, for a worker passed over by it.
            let paced = limits::next_start_after(&pg_limits::all(c)?, db_now);
            Ok(due.into_iter().chain(paced).min().map(|t| self.host_time(t)))
        })
    }

    fn claim_batch(
        &self,
        filter: &ClaimFilter<'_>,
        now: Micros,
        lease: LeaseTerms,
        max: usize,
    ) -> StoreResult<Vec<Claimed>> {
        let now = self.db_now(now);
        let expires_at = now.saturating_add(duration_micros(lease.duration));
        let limit = max.max(1) as i64;
        let sql = claim_sql(filter);
        let now_at = at(now);
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&now_at, &limit];
        params.extend(filter.queue.as_ref().map(|q| q as &(dyn postgres::types::ToSql + Sync)));
        params.extend(filter.factory.as_ref().map(|f| f as &(dyn postgres::types::ToSql + Sync)));
        let me = sync::lock(&self.me).clone();
        self.transact(|tx| {
            PgStore::promote(tx, now)?;
            let covering = pg_limits::lock_covering(tx, filter.queue)?;
            let mut jobs = if covering.is_empty() {
                let rows = tx.query(&sql, &params).map_err(db_error)?;
                jobs_from_rows(&rows)?
            } else {
                // Under limits: what runs everywhere now, then candidates past the closed
                // factories, each admitted or passed over (left queued, unlocked at commit).
                let running = pg_limits::running(tx)?;
                let mut gate = Gate::new(covering.clone(), &running);
                if filter.queue.is_some_and(|q| gate.queue_closed(q, now)) {
                    return Ok(Vec::new());
                }
                let closed = gate.closed_factories(now);
                // No more candidates than could start: a rate's due starts, a concurrency's
                // free places (each candidate read is a row locked until the commit).
                let candidates = match filter.queue.and_then(|q| gate.room(q, now)) {
                    Some(0) => return Ok(Vec::new()),
                    Some(room) => room.min(max.max(1)),
                    None => LIMITED_CANDIDATES.max(max),
                } as i64;
                let full = gate.full_keys();
                let full_kinds: Vec<&str> = full.iter().map(|(scope, _)| scope.kind()).collect();
                let full_names: Vec<&str> = full.iter().map(|(scope, _)| scope.name()).collect();
                let full_keys: Vec<&str> = full.iter().map(|(_, key)| key.as_str()).collect();
                let mut limited: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&now_at, &candidates];
                limited.extend(params[2..].iter().copied());
                limited.push(&closed);
                limited.push(&full_kinds);
                limited.push(&full_names);
                limited.push(&full_keys);
                let rows = tx.query(&claim_sql_with(filter, true), &limited).map_err(db_error)?;
                let mut admitted = Vec::new();
                for job in jobs_from_rows(&rows)? {
                    if admitted.len() < max.max(1) && gate.admit(&job, now) {
                        admitted.push(job);
                    }
                }
                pg_limits::save_paces(tx, &covering, &gate.limits)?;
                admitted
            };
            let mut claimed = Vec::with_capacity(jobs.len());
            for job in &mut jobs {
                let token = AttemptToken::random();
                job.claim(Lease { token, expires_at }, now);
                claimed.push(token);
            }
            save_jobs(tx, &jobs.iter().collect::<Vec<_>>(), me.as_deref())?;
            Ok(jobs.into_iter().zip(claimed).map(|(job, token)| Claimed { job, token }).collect())
        })
    }

    fn heartbeat(&self, id: JobId, token: AttemptToken, now: Micros, lease: LeaseTerms) -> StoreResult<bool> {
        let now = self.db_now(now);
        let expires_at = at(now.saturating_add(duration_micros(lease.duration)));
        self.run(|c| {
            let n = c
                .execute(
                    "UPDATE jobs SET lease_expires_at = $3 WHERE id = $1 AND lease_token = $2 \
                     AND status = 'processing'",
                    &[&id_sql(id), &token_sql(token), &expires_at],
                )
                .map_err(db_error)?;
            Ok(n == 1)
        })
    }

    fn set_progress(&self, id: JobId, token: AttemptToken, progress: Progress) -> StoreResult<()> {
        self.run(|c| {
            c.execute(
                "UPDATE jobs SET progress_fraction = $3, progress_message = $4 WHERE id = $1 \
                 AND lease_token = $2 AND status = 'processing'",
                &[
                    &id_sql(id),
                    &token_sql(token),
                    &progress.fraction,
                    &super::rows::without_nul(&progress.message),
                ],
            )
            .map_err(db_error)?;
            Ok(())
        })
    }

    fn finish_batch(&self, reports: &[Report], now: Micros) -> StoreResult<Vec<Finished>> {
        let now = self.db_now(now);
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = reports.iter().map(|r| id_sql(r.id)).collect();
        self.transact(|tx| {
            let mut jobs = PgStore::lock_jobs(tx, &ids)?;
            let mut finished = Vec::with_capacity(reports.len());
            let mut changed: Vec<JobId> = Vec::new();
            for report in reports {
                let Some(job) = jobs.get_mut(&report.id) else {
                    finished.push(Finished::Stale);
                    continue;
                };
                if job.lease_held_by(report.token).is_none() {
                    finished.push(Finished::Stale);
                    continue;
                }
                if let Some(at) = report.started_at {
                    job.started(self.db_now(at), now);
                }
                job.end_attempt(&report.outcome, now);
                finished.push(Finished::Applied(job.clone()));
                changed.push(report.id);
            }
            let changed: Vec<&Job> = changed.iter().filter_map(|id| jobs.get(id)).collect();
            save_jobs(tx, &changed, None)?;
            let moved: Vec<Moved> = changed.iter().map(|j| Moved::of(Status::Processing, j)).collect();
            dependents::propagate(tx, &moved, now)?;
            Ok(finished)
        })
    }

    fn release_batch(&self, released: &[(JobId, AttemptToken)], now: Micros) -> StoreResult<usize> {
        let now = self.db_now(now);
        if released.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = released.iter().map(|(id, _)| id_sql(*id)).collect();
        self.transact(|tx| {
            let mut jobs = PgStore::lock_jobs(tx, &ids)?;
            let mut changed = Vec::new();
            for &(id, token) in released {
                let Some(job) = jobs.get_mut(&id) else { continue };
                if job.lease_held_by(token).is_none() {
                    continue;
                }
                job.release(now);
                changed.push(id);
            }
            let refs: Vec<&Job> = changed.iter().filter_map(|id| jobs.get(id)).collect();
            save_jobs(tx, &refs, None)?;
            let moved: Vec<Moved> = refs.iter().map(|j| Moved::of(Status::Processing, j)).collect();
            dependents::propagate(tx, &moved, now)?;
            Ok(changed.len())
        })
    }

    fn recover_expired(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        let now = self.db_now(now);
        // The reaper's pass (every half lease on every host) keeps `job_counts` short even
        // when nobody asks for the counts.
        self.compact_counts()?;
        let mut recovered = Vec::new();
        loop {
            let batch = self.requeue_expired(now)?;
            let done = batch.len() < 1000;
            recovered.extend(batch);
            if done {
                return Ok(recovered);
            }
        }
    }

    /// Other hosts may be running jobs in this database: only leases that expired are
    /// recovered, by whichever host sees them first.
    fn recover_all(&self, now: Micros) -> StoreResult<Vec<JobId>> {
        self.recover_expired(now)
    }

    fn flush(&self) -> StoreResult<()> {
        // Every committed transaction is durable already.
        Ok(())
    }

    fn unwritable(&self) -> Option<String> {
        self.unavailable_reason()
    }

    fn heal(&self) -> StoreResult<bool> {
        Ok(self.probe())
    }

    fn on_notice(&self, tell: Arc<dyn Fn(Notice) + Send + Sync>) {
        super::listen::start(self, tell);
    }

    fn beat(&self, me: &HostRecord) -> StoreResult<()> {
        *sync::lock(&self.me) = Some(me.name.clone());
        self.measure_clock();
        let me = &HostRecord {
            started_at: self.db_now(me.started_at),
            heartbeat_at: self.db_now(me.heartbeat_at),
            ..me.clone()
        };
        self.run(|c| {
            c.execute(
                "INSERT INTO hosts (name, pid, version, started_at, heartbeat_at, machine) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET pid = EXCLUDED.pid, version = EXCLUDED.version, \
                 started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at, \
                 machine = EXCLUDED.machine",
                &[
                    &me.name,
                    &(me.pid as i32),
                    &me.version,
                    &at(me.started_at),
                    &at(me.heartbeat_at),
                    &me.machine,
                ],
            )
            .map_err(db_error)?;
            // Hosts silent for a day are gone for good (a crash, a machine replaced): the
            // list keeps the recent past, not every process that ever ran.
            let day_ago = at(me.heartbeat_at.saturating_sub(86_400_000_000));
            c.execute("DELETE FROM hosts WHERE heartbeat_at < $1", &[&day_ago]).map_err(db_error)?;
            Ok(())
        })
    }

    fn leave(&self, name: &str) -> StoreResult<()> {
        self.run(|c| {
            c.execute("DELETE FROM hosts WHERE name = $1", &[&name]).map_err(db_error)?;
            Ok(())
        })
    }

    fn hosts(&self) -> StoreResult<Vec<HostRecord>> {
        self.run(|c| {
            let rows = c
                .query(
                    "SELECT name, pid, version, started_at, heartbeat_at, machine FROM hosts ORDER BY name",
                    &[],
                )
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .map(|r| HostRecord {
                    name: r.get(0),
                    pid: r.get::<_, i32>(1).max(0) as u32,
                    version: r.get(2),
                    started_at: self
                        .host_time(r.get::<_, chrono::DateTime<chrono::Utc>>(3).timestamp_micros()),
                    heartbeat_at: self
                        .host_time(r.get::<_, chrono::DateTime<chrono::Utc>>(4).timestamp_micros()),
                    machine: r.get(5),
                })
                .collect())
        })
    }
}
