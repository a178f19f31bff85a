//! Idempotency keys on PostgreSQL: a keyed creation first claims its key in its transaction
//! (an insert that waits for a concurrent holder of the same key to commit or roll back), then
//! creates, then records what it created; a repeat reads the record.
//!
//! **Invariant:** a key and what its request created commit together or not at all, on any
//! number of hosts; a live key is never claimed twice.

use super::errors::db_error;
use super::rows::at;
use super::session::{Sql, Tx};
use super::store::PgStore;
use crate::clock::Micros;
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::{Created, Keyed, Once, Remembered};

/// Claims a key: inserted, or taking over a record expired at $4; no row when a live record
/// holds it (after waiting for an uncommitted one to settle).
const CLAIM: &str = "INSERT INTO idempotency_keys (key, fingerprint, created, expires_at) \
     VALUES ($1, $2, '', $3) ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
     created = '', expires_at = EXCLUDED.expires_at WHERE idempotency_keys.expires_at <= $4 RETURNING key";

/// One keyed creation's step inside its transaction.
pub(super) enum Step<T> {
    Done(T, Created),
    /// A statement failed in a way a new transaction may not (another host took a unique key
    /// meanwhile): the transaction is aborted, so its commit rolls everything back.
    Again,
}

/// What one transaction came to.
enum Outcome<T> {
    Created(T),
    KeyLive,
    Again,
}

impl PgStore {
    /// Runs `make` in a transaction that holds `once.key`, recording what it created; or
    /// returns the key's live record. Retried a few times when `make` asks to or the record
    /// vanished between the claim and the read (expired and swept).
    pub(super) fn keyed<T: Send>(
        &self,
        once: &Once,
        now: Micros,
        make: &(dyn Fn(&mut Tx<'_>) -> StoreResult<Step<T>> + Sync),
    ) -> StoreResult<Keyed<T>> {
        let db_now = self.db_now(now);
        let expires = self.db_now(once.expires_at);
        for _ in 0..10 {
            let outcome = self.transact(|tx| {
                let claimed = tx
                    .query_opt(CLAIM, &[&once.key, &once.fingerprint, &at(expires), &at(db_now)])
                    .map_err(db_error)?;
                if claimed.is_none() {
                    return Ok(Outcome::KeyLive);
                }
                match make(tx)? {
                    Step::Done(value, created) => {
                        let created = serde_json::to_string(&created).map_err(|e| {
                            StoreError::Database(format!("cannot encode a key's record: {e}"))
                        })?;
                        tx.execute(
                            "UPDATE idempotency_keys SET created = $2 WHERE key = $1",
                            &[&once.key, &created],
                        )
                        .map_err(db_error)?;
                        Ok(Outcome::Created(value))
                    }
                    Step::Again => Ok(Outcome::Again),
                }
            })?;
            match outcome {
                Outcome::Created(value) => return Ok(Keyed::New(value)),
                Outcome::KeyLive => {
                    if let Some(before) = self.lookup_key(&once.key, now)? {
                        return Ok(Keyed::Before(before));
                    }
                }
                Outcome::Again => {}
            }
        }
        Err(StoreError::Database(format!(
            "idempotency key {:?}: kept changing hands; try again",
            crate::text::clip(&once.key)
        )))
    }

    /// `key`'s record unless it expired before `now` (on this host's clock).
    pub(super) fn lookup_key(&self, key: &str, now: Micros) -> StoreResult<Option<Remembered>> {
        let db_now = self.db_now(now);
        let row = self.run(|c| {
            c.query_opt(
                "SELECT fingerprint, created, expires_at FROM idempotency_keys WHERE key = $1 AND expires_at > $2",
                &[&key, &at(db_now)],
            )
            .map_err(db_error)
        })?;
        let Some(row) = row else { return Ok(None) };
        let created: String = row.get(1);
        let created = serde_json::from_str(&created).map_err(|e| {
            StoreError::Database(format!(
                "idempotency key {:?}: unreadable record ({e})",
                crate::text::clip(key)
            ))
        })?;
        let expires: chrono::DateTime<chrono::Utc> = row.get(2);
        Ok(Some(Remembered {
            fingerprint: row.get(0),
            created,
            expires_at: self.host_time(expires.timestamp_micros()),
        }))
    }

    /// Deletes up to `limit` keys expired at `now`; how many.
    pub(super) fn forget_expired_keys(&self, now: Micros, limit: usize) -> StoreResult<usize> {
        let db_now = self.db_now(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let n = self.run(|c| {
            c.execute(
                "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys \
                 WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
                &[&at(db_now), &limit],
            )
            .map_err(db_error)
        })?;
        Ok(n as usize)
    }
}
