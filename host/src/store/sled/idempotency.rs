//! Idempotency keys on sled: each key's record (the request's fingerprint, what it created,
//! its expiry) written in the transaction that creates, an index by expiry for the sweep, and
//! the look-up a repeat makes.
//!
//! **Invariant:** a key and what its request created are written in one transaction, so a
//! crash or a failed flush leaves both or neither; keyed creations take `unique_lock`, so two
//! requests with one key never both create.

use super::codec;
use super::keys;
use super::store::SledStore;
use super::tx::{Tx, TxResult};
use crate::clock::Micros;
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::{Created, Once, Remembered};

impl Tx<'_> {
    /// Stores `once` with what its request created, replacing an expired record of the key.
    pub fn remember(&self, once: &Once, created: &Created) -> TxResult<()> {
        if let Some(old) = self.idempotency.get(once.key.as_bytes())? {
            if let Ok(old) = codec::decode::<Remembered>(&old) {
                self.idempotency_expiry.remove(keys::expiry_key(old.expires_at, &once.key))?;
            }
        }
        let record = Remembered {
            fingerprint: once.fingerprint.clone(),
            created: created.clone(),
            expires_at: once.expires_at,
        };
        self.idempotency.insert(once.key.as_bytes(), codec::encode(&record))?;
        self.idempotency_expiry.insert(keys::expiry_key(once.expires_at, &once.key), &[])?;
        Ok(())
    }
}

impl SledStore {
    /// `key`'s record unless it expired before `now`.
    pub(super) fn remembered_key(&self, key: &str, now: Micros) -> StoreResult<Option<Remembered>> {
        let Some(bytes) = self.live()?.trees.idempotency.get(key.as_bytes())? else { return Ok(None) };
        let record: Remembered = codec::decode(&bytes).map_err(|error| StoreError::Corrupt {
            what: format!("idempotency key {:?}", crate::text::clip(key)),
            error,
        })?;
        Ok((record.expires_at > now).then_some(record))
    }

    /// Deletes up to `limit` keys expired at `now`, oldest first, in one transaction.
    pub(super) fn forget_expired_keys(&self, now: Micros, limit: usize) -> StoreResult<usize> {
        let live = self.live()?;
        let trees = &live.trees;
        let mut expired = Vec::new();
        for entry in trees.idempotency_expiry.range(..keys::expiry_key(now.saturating_add(1), "")).take(limit)
        {
            let (index, _) = entry?;
            expired.push(index);
        }
        if expired.is_empty() {
            return Ok(0);
        }
        trees.transact(|tx| {
            for index in &expired {
                tx.idempotency_expiry.remove(index)?;
                let Some(key) = keys::expiry_key_name(index) else { continue };
                // A key used anew after it expired has a later expiry: keep its record.
                let current = tx.idempotency.get(key)?.and_then(|v| codec::decode::<Remembered>(&v).ok());
                if current.is_none_or(|record| record.expires_at <= now) {
                    tx.idempotency.remove(key)?;
                }
            }
            Ok(())
        })?;
        Ok(expired.len())
    }
}
