//! Dependencies on PostgreSQL: a new dependent admitted against its parents (locked `FOR
//! SHARE`, so a parent finishing on another host either commits first, and is read
//! finished, or waits, and then finds the new edge), and a job's change walked to its
//! dependents (`job_dependents`, locked `FOR UPDATE` by id) with the shared walk of
//! `store::dependents`.

use std::collections::BTreeMap;

use super::errors::db_error;
use super::rows::{at, id_sql, jobs_from_rows, save_jobs, JOB_COLUMNS};
use super::session::{Sql, Tx};
use crate::clock::Micros;
use crate::job::{Callback, Job, JobId, OnFailure, Parent, Status};
use crate::store::dependents::{self, Graph, Moved};
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::{Group, GroupState};

/// New jobs (not yet inserted) learn where their parents stand; their edges are written.
/// A parent that is neither stored nor among `jobs` is `UnknownParent`.
pub fn admit(tx: &mut Tx<'_>, jobs: &mut [Job], now: Micros) -> StoreResult<()> {
    let new: std::collections::BTreeSet<JobId> = jobs.iter().map(|j| j.id).collect();
    let mut outside: Vec<i64> = Vec::new();
    let (mut parents, mut children, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for job in jobs.iter() {
        for p in job.parents() {
            parents.push(id_sql(p.id));
            children.push(id_sql(job.id));
            run.push(p.on_failure == OnFailure::Run);
            if !new.contains(&p.id) {
                outside.push(id_sql(p.id));
            }
        }
    }
    if parents.is_empty() {
        return Ok(());
    }
    outside.sort_unstable();
    outside.dedup();
    let rows = tx
        .query("SELECT id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR SHARE", &[&outside])
        .map_err(db_error)?;
    let mut existing = BTreeMap::new();
    for row in &rows {
        let status: String = row.get(1);
        let status: Status = status.parse().map_err(StoreError::Database)?;
        existing.insert(JobId(row.get::<_, i64>(0) as u64), status);
    }
    if let Some(missing) = outside.iter().find(|id| !existing.contains_key(&JobId(**id as u64))) {
        return Err(StoreError::UnknownParent(JobId(*missing as u64)));
    }
    dependents::admit(jobs, &existing, now);
    tx.execute(
        "INSERT INTO job_dependents (parent, child, run_on_failure) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[]) ON CONFLICT DO NOTHING",
        &[&parents, &children, &run],
    )
    .map_err(db_error)?;
    Ok(())
}

/// Stores a batch's group record.
pub fn insert_group(tx: &mut Tx<'_>, group: &Group) -> StoreResult<()> {
    let members: Vec<i64> = group.members.iter().map(|id| id_sql(*id)).collect();
    let callbacks = serde_json::to_string(&group.callbacks)
        .map_err(|e| StoreError::Database(format!("group {}: cannot encode: {e}", group.id)))?;
    tx.execute(
        "INSERT INTO job_groups (id, name, created_at, members, callbacks) VALUES ($1, $2, $3, $4, $5)",
        &[&id_sql(group.id), &group.name, &at(group.created_at), &members, &callbacks],
    )
    .map_err(db_error)?;
    Ok(())
}

/// Group `id` and the statuses of its jobs, in two statements.
pub fn group(client: &mut impl Sql, id: JobId) -> StoreResult<Option<GroupState>> {
    let Some(row) = client
        .query_opt(
            "SELECT name, created_at, members, callbacks FROM job_groups WHERE id = $1",
            &[&id_sql(id)],
        )
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let members: Vec<i64> = row.get(2);
    let callbacks: String = row.get(3);
    let callbacks: Vec<(Callback, JobId)> = serde_json::from_str(&callbacks)
        .map_err(|e| StoreError::Database(format!("group {id}: stored callbacks unreadable: {e}")))?;
    let group = Group {
        id,
        name: row.get(0),
        created_at: row.get::<_, chrono::DateTime<chrono::Utc>>(1).timestamp_micros(),
        members: members.iter().map(|m| JobId(*m as u64)).collect(),
        callbacks,
    };
    let all: Vec<i64> = members.into_iter().chain(group.callbacks.iter().map(|(_, j)| id_sql(*j))).collect();
    let rows = client.query("SELECT id, status FROM jobs WHERE id = ANY($1)", &[&all]).map_err(db_error)?;
    let mut statuses = std::collections::HashMap::new();
    for row in rows {
        let status: String = row.get(1);
        let status: Status = status.parse().map_err(StoreError::Database)?;
        statuses.insert(JobId(row.get::<_, i64>(0) as u64), status);
    }
    Ok(Some(dependents::group_state(group, |job| statuses.get(&job).copied())))
}

/// Tells the dependents of the jobs in `moved` (changed and saved in this transaction), and
/// theirs; their changes are saved here.
pub fn propagate(tx: &mut Tx<'_>, moved: &[Moved], now: Micros) -> StoreResult<()> {
    if moved.is_empty() {
        return Ok(());
    }
    dependents::propagate(&mut PgGraph(tx), moved, now)?;
    Ok(())
}

struct PgGraph<'t, 'c>(&'t mut Tx<'c>);

impl Graph for PgGraph<'_, '_> {
    type Error = StoreError;

    fn children_of(&mut self, parents: &[JobId]) -> StoreResult<Vec<(Parent, JobId)>> {
        let ids: Vec<i64> = parents.iter().map(|p| id_sql(*p)).collect();
        let rows = self
            .0
            .query("SELECT parent, child, run_on_failure FROM job_dependents WHERE parent = ANY($1)", &[&ids])
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                let on_failure = if r.get::<_, bool>(2) { OnFailure::Run } else { OnFailure::Cancel };
                (
                    Parent { id: JobId(r.get::<_, i64>(0) as u64), on_failure },
                    JobId(r.get::<_, i64>(1) as u64),
                )
            })
            .collect())
    }

    fn load(&mut self, ids: &[JobId]) -> StoreResult<Vec<Job>> {
        let ids: Vec<i64> = ids.iter().map(|p| id_sql(*p)).collect();
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE");
        let rows = self.0.query(&sql, &[&ids]).map_err(db_error)?;
        jobs_from_rows(&rows)
    }

    fn save(&mut self, changed: &[(Job, Job)], _now: Micros) -> StoreResult<()> {
        // A row's columns are its indexes: writing the records moves them, in one statement.
        save_jobs(self.0, &changed.iter().map(|(_, after)| after).collect::<Vec<_>>(), None)
    }
}
