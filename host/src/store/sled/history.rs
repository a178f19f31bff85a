//! Throughput history in the embedded store: the `history` tree, one entry per minute and
//! queue (`keys::history_key`, in time order), outside the job transactions: a row is this
//! host's own sum, written by one thread every few seconds, and losing its last seconds to a
//! crash costs a chart a dent, never a job.

use super::codec;
use super::keys;
use super::store::SledStore;
use crate::clock::Micros;
use crate::history::{Counts, Row, KEEP_MINUTES, MAX_QUEUES_PER_MINUTE, OTHER_QUEUES};
use crate::store::error::StoreResult;

/// The tree's name.
const TREE: &str = "history";

impl SledStore {
    pub(super) fn add_history_rows(&self, rows: &[Row], now: Micros) -> StoreResult<()> {
        let tree = self.live()?.db.open_tree(TREE)?;
        // Queues a minute holds already: past the bound, a new one is counted as the others.
        let mut queues_in: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for row in rows {
            let mut key = keys::history_key(row.minute, &row.queue);
            if !tree.contains_key(&key)? {
                let held = match queues_in.get(&row.minute) {
                    Some(&n) => n,
                    None => {
                        let minute = keys::history_key(row.minute, "")..keys::history_key(row.minute + 1, "");
                        tree.range(minute).keys().take(MAX_QUEUES_PER_MINUTE).count()
                    }
                };
                if held >= MAX_QUEUES_PER_MINUTE {
                    key = keys::history_key(row.minute, OTHER_QUEUES);
                } else {
                    queues_in.insert(row.minute, held + 1);
                }
            }
            let mut counts = row.counts.clone();
            // An unreadable stored row is replaced: it is a chart's history, and keeping it
            // would stop every later minute of the queue from being counted.
            if let Some(old) = tree.get(&key)? {
                match codec::decode::<Counts>(&old) {
                    Ok(old) => counts.merge(&old),
                    Err(e) => log::warn!(
                        "history row of minute {} queue {:?} is unreadable ({e}); replaced",
                        row.minute,
                        row.queue
                    ),
                }
            }
            tree.insert(key, codec::encode(&counts))?;
        }
        let cutoff = keys::history_key(now.div_euclid(60_000_000) - KEEP_MINUTES, "");
        for key in tree.range(..cutoff).keys() {
            tree.remove(key?)?;
        }
        Ok(())
    }

    pub(super) fn history_rows(&self, from_minute: i64) -> StoreResult<Vec<Row>> {
        let tree = self.live()?.db.open_tree(TREE)?;
        let mut rows = Vec::new();
        for entry in tree.range(keys::history_key(from_minute, "")..) {
            let (key, value) = entry?;
            let decoded = keys::history_of_key(&key).zip(codec::decode::<Counts>(&value).ok());
            match decoded {
                Some(((minute, queue), counts)) => rows.push(Row { minute, queue, counts }),
                None => {
                    log::warn!("history entry {:?} is unreadable; left out", String::from_utf8_lossy(&key))
                }
            }
        }
        Ok(rows)
    }
}
