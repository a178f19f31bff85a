//! Paused queues in the embedded store: one `meta` entry per queue (`keys::pause_key`), so a
//! backup carries them and a restart finds them.

use super::codec;
use super::keys::{self, META_PAUSE_PREFIX};
use super::store::SledStore;
use crate::store::error::{StoreError, StoreResult};
use crate::store::types::QueuePause;

impl SledStore {
    pub(super) fn paused_queues(&self) -> StoreResult<Vec<QueuePause>> {
        let live = self.live()?;
        let mut pauses = Vec::new();
        for entry in live.trees.meta.scan_prefix(META_PAUSE_PREFIX) {
            let (key, value) = entry?;
            let pause = codec::decode::<QueuePause>(&value).map_err(|error| StoreError::Corrupt {
                what: format!("pause {:?}", String::from_utf8_lossy(&key)),
                error,
            })?;
            pauses.push(pause);
        }
        Ok(pauses)
    }

    pub(super) fn pause_queue(&self, pause: &QueuePause) -> StoreResult<QueuePause> {
        let key = keys::pause_key(&pause.queue);
        let stored = self.live()?.trees.transact(|tx| match tx.meta.get(&key)? {
            Some(old) => Ok(codec::decode::<QueuePause>(&old).unwrap_or_else(|_| pause.clone())),
            None => {
                tx.meta.insert(key.as_slice(), codec::encode(pause))?;
                Ok(pause.clone())
            }
        })?;
        self.durable()?;
        Ok(stored)
    }

    pub(super) fn resume_queue(&self, queue: &str) -> StoreResult<bool> {
        let key = keys::pause_key(queue);
        let removed = self.live()?.trees.transact(|tx| Ok(tx.meta.remove(key.as_slice())?.is_some()))?;
        self.durable()?;
        Ok(removed)
    }
}
