//! Paused queues on PostgreSQL: one `queue_pauses` row per queue, read by every host each
//! second (see `service::pauses`), so a pause holds on all of them.

use chrono::{DateTime, Utc};

use super::errors::db_error;
use super::rows::at;
use super::session::Sql;
use crate::store::error::StoreResult;
use crate::store::types::QueuePause;

fn pause_from(row: &postgres::Row) -> QueuePause {
    QueuePause { queue: row.get(0), by: row.get(1), at: row.get::<_, DateTime<Utc>>(2).timestamp_micros() }
}

pub fn all(client: &mut impl Sql) -> StoreResult<Vec<QueuePause>> {
    let rows = client
        .query("SELECT queue, paused_by, paused_at FROM queue_pauses ORDER BY queue", &[])
        .map_err(db_error)?;
    Ok(rows.iter().map(pause_from).collect())
}

/// Pauses a queue; one paused already keeps its first record. One statement: a resume
/// between an insert and a read could otherwise leave nothing to read.
pub fn pause(client: &mut impl Sql, pause: &QueuePause) -> StoreResult<QueuePause> {
    let row = client
        .query_one(
            "INSERT INTO queue_pauses (queue, paused_by, paused_at) VALUES ($1, $2, $3) \
             ON CONFLICT (queue) DO UPDATE SET paused_by = queue_pauses.paused_by \
             RETURNING queue, paused_by, paused_at",
            &[&pause.queue, &pause.by, &at(pause.at)],
        )
        .map_err(db_error)?;
    Ok(pause_from(&row))
}

pub fn resume(client: &mut impl Sql, queue: &str) -> StoreResult<bool> {
    let n = client.execute("DELETE FROM queue_pauses WHERE queue = $1", &[&queue]).map_err(db_error)?;
    Ok(n > 0)
}
