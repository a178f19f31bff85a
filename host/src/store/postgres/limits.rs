//! Flow control on PostgreSQL: the limits (`job_limits`, one row per scope, its definition as
//! JSON and its rate's next start), read and locked by the claims they cover — so claims under
//! one limit take turns, on every host, and each counts the jobs running everywhere after the
//! previous one committed.

use super::errors::db_error;
use super::rows::at;
use super::session::Sql;
use crate::clock::Micros;
use crate::limits::{Limit, LimitState, Running, Scope};
use crate::store::error::{StoreError, StoreResult};

fn state_from(
    definition: &str,
    next_start: Option<chrono::DateTime<chrono::Utc>>,
) -> StoreResult<LimitState> {
    let limit: Limit = serde_json::from_str(definition)
        .map_err(|e| StoreError::Database(format!("stored limit unreadable: {e}: {definition}")))?;
    Ok(LimitState { limit, next_start: next_start.map_or(0, |t| t.timestamp_micros()) })
}

/// Every limit, by scope.
pub fn all(client: &mut impl Sql) -> StoreResult<Vec<LimitState>> {
    let rows = client
        .query("SELECT definition, next_start FROM job_limits ORDER BY scope", &[])
        .map_err(db_error)?;
    rows.iter().map(|r| state_from(&r.get::<_, String>(0), r.get(1))).collect()
}

/// The limits a claim from `queue` (any queue: `None`) must pass, locked until its commit:
/// that queue's (every queue's) and every factory's.
pub fn lock_covering(client: &mut impl Sql, queue: Option<&str>) -> StoreResult<Vec<LimitState>> {
    let queue_scope = queue.map(|q| Scope::Queue(q.to_owned()).key());
    let rows = client
        .query(
            "SELECT definition, next_start FROM job_limits \
             WHERE scope LIKE 'factory/%' OR scope = $1 OR ($1 IS NULL AND scope LIKE 'queue/%') \
             ORDER BY scope FOR UPDATE",
            &[&queue_scope],
        )
        .map_err(db_error)?;
    rows.iter().map(|r| state_from(&r.get::<_, String>(0), r.get(1))).collect()
}

/// Every job running now, on any host (the jobs a concurrency limit counts).
pub fn running(client: &mut impl Sql) -> StoreResult<Vec<Running>> {
    let rows = client
        .query("SELECT queue, factory, limit_key FROM jobs WHERE status = 'processing'", &[])
        .map_err(db_error)?;
    Ok(rows.iter().map(|r| Running { queue: r.get(0), factory: r.get(1), limit_key: r.get(2) }).collect())
}

/// Writes the paces of the limits a claim moved.
pub fn save_paces(client: &mut impl Sql, before: &[LimitState], after: &[LimitState]) -> StoreResult<()> {
    for (old, new) in before.iter().zip(after) {
        if old.next_start != new.next_start {
            client
                .execute(
                    "UPDATE job_limits SET next_start = $2 WHERE scope = $1",
                    &[&new.limit.scope.key(), &at(new.next_start as Micros)],
                )
                .map_err(db_error)?;
        }
    }
    Ok(())
}

/// Sets a limit, keeping its pace.
pub fn set(client: &mut impl Sql, limit: &Limit) -> StoreResult<LimitState> {
    let definition = serde_json::to_string(limit)
        .map_err(|e| StoreError::Database(format!("cannot encode a limit: {e}")))?;
    let row = client
        .query_one(
            "INSERT INTO job_limits (scope, definition) VALUES ($1, $2) \
             ON CONFLICT (scope) DO UPDATE SET definition = EXCLUDED.definition RETURNING definition, next_start",
            &[&limit.scope.key(), &definition],
        )
        .map_err(db_error)?;
    state_from(&row.get::<_, String>(0), row.get(1))
}

pub fn remove(client: &mut impl Sql, scope: &Scope) -> StoreResult<bool> {
    let n = client.execute("DELETE FROM job_limits WHERE scope = $1", &[&scope.key()]).map_err(db_error)?;
    Ok(n > 0)
}
