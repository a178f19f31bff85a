//! Throughput history on PostgreSQL: `throughput_history`, one row per minute and queue. Each
//! host adds its own counts to the row (histograms element by element), so a row is every
//! host's sum and the dashboard of any host shows them all.

use super::errors::db_error;
use super::session::Sql;
use crate::clock::Micros;
use crate::history::{Counts, Histogram, Row, KEEP_MINUTES, MAX_QUEUES_PER_MINUTE, OTHER_QUEUES};
use crate::store::error::StoreResult;

/// The sum of two histograms' arrays, element by element (the shorter padded with zeros).
const ADD_HIST: &str = "ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(h.{c}, EXCLUDED.{c}) \
                        WITH ORDINALITY AS t(a, b, n) ORDER BY n)";

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn hist_param(h: &Histogram) -> Vec<i64> {
    h.buckets.iter().map(|&c| big(c)).collect()
}

fn hist_from(buckets: Vec<i64>, max: i64) -> Histogram {
    Histogram { buckets: buckets.into_iter().map(|c| c.max(0) as u64).collect(), max: max.max(0) as u64 }
}

/// Adds `rows` in one transaction, in (minute, queue) order, so that two hosts adding the same
/// rows lock them in the same order and never deadlock. A queue new to a minute that holds
/// `MAX_QUEUES_PER_MINUTE` already is counted under `OTHER_QUEUES` (two hosts adding at once
/// may each add one past the bound: it bounds, it is not exact).
pub fn add(client: &mut super::session::Conn, rows: &[Row], now: Micros) -> StoreResult<()> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| (a.minute, &a.queue).cmp(&(b.minute, &b.queue)));
    let sql = format!(
        "INSERT INTO throughput_history AS h \
         (minute, queue, completed, failed, retried, run_hist, run_max, wait_hist, wait_max) \
         SELECT $1, CASE WHEN EXISTS (SELECT 1 FROM throughput_history WHERE minute = $1 AND queue = $2) \
           OR (SELECT count(*) FROM (SELECT 1 FROM throughput_history WHERE minute = $1 LIMIT $11) AS q) < $11 \
           THEN $2 ELSE $10 END, $3, $4, $5, $6, $7, $8, $9 \
         ON CONFLICT (minute, queue) DO UPDATE SET \
         completed = h.completed + EXCLUDED.completed, failed = h.failed + EXCLUDED.failed, \
         retried = h.retried + EXCLUDED.retried, \
         run_hist = {}, run_max = GREATEST(h.run_max, EXCLUDED.run_max), \
         wait_hist = {}, wait_max = GREATEST(h.wait_max, EXCLUDED.wait_max)",
        ADD_HIST.replace("{c}", "run_hist"),
        ADD_HIST.replace("{c}", "wait_hist"),
    );
    let mut tx = client.transaction().map_err(db_error)?;
    for row in sorted {
        let c = &row.counts;
        tx.execute(
            &sql,
            &[
                &row.minute,
                &row.queue,
                &big(c.completed),
                &big(c.failed),
                &big(c.retried),
                &hist_param(&c.run),
                &big(c.run.max),
                &hist_param(&c.wait),
                &big(c.wait.max),
                &OTHER_QUEUES,
                &(MAX_QUEUES_PER_MINUTE as i64),
            ],
        )
        .map_err(db_error)?;
    }
    let cutoff = now.div_euclid(60_000_000) - KEEP_MINUTES;
    tx.execute("DELETE FROM throughput_history WHERE minute < $1", &[&cutoff]).map_err(db_error)?;
    tx.commit().map_err(db_error)
}

pub fn from(client: &mut impl Sql, from_minute: i64) -> StoreResult<Vec<Row>> {
    let rows = client
        .query(
            "SELECT minute, queue, completed, failed, retried, run_hist, run_max, wait_hist, wait_max \
             FROM throughput_history WHERE minute >= $1 ORDER BY minute, queue",
            &[&from_minute],
        )
        .map_err(db_error)?;
    Ok(rows
        .iter()
        .map(|r| Row {
            minute: r.get(0),
            queue: r.get(1),
            counts: Counts {
                completed: r.get::<_, i64>(2).max(0) as u64,
                failed: r.get::<_, i64>(3).max(0) as u64,
                retried: r.get::<_, i64>(4).max(0) as u64,
                run: hist_from(r.get(5), r.get(6)),
                wait: hist_from(r.get(7), r.get(8)),
            },
        })
        .collect())
}
