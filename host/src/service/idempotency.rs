//! Creating requests under an `Idempotency-Key`: a repeat within the window gets what the
//! first request created, whatever happened to the first answer; the same key with another
//! request is refused. The key is stored in the transaction that creates (see the stores), so
//! a request whose answer was lost (a connection cut at commit) is found by its repeat.
//!
//! **Invariant:** with a key, a request creates at most once within the window, on any
//! number of hosts sharing the store.

use super::admission::AddJob;
use super::error::HostError;
use super::host::Host;
use super::schedules::NewSchedule;
use crate::clock::duration_micros;
use crate::job::Job;
use crate::schedule::Schedule;
use crate::store::{Added, Created, Keyed, Once, Remembered};

/// A creating request's key, as the API hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The client's key (checked by the API: 1 to 255 visible ASCII characters).
    pub key: String,
    /// A digest of the request's method, path and body.
    pub fingerprint: String,
}

impl Host {
    /// What an earlier request with `key` created, if the key is live: `KeyReused` if that
    /// request was another one. Looked up before a repeat is checked again, so a repeat gets
    /// the first answer even if its request would be refused now (a factory removed since).
    pub fn repeat_of(&self, key: &RequestKey) -> Result<Option<Created>, HostError> {
        match self.inner.shared.store.remembered(&key.key, self.now())? {
            Some(record) => self.matching(key, record).map(|r| Some(r.created)),
            None => Ok(None),
        }
    }

    /// [`add`](Host::add) under `key`.
    pub fn add_keyed(&self, req: AddJob, key: &RequestKey) -> Result<Keyed<Added>, HostError> {
        let new = self.validate(req)?;
        match self.inner.shared.store.add_keyed(new, self.now(), &self.once(key))? {
            Keyed::New(added) => {
                if !added.existing {
                    self.announce(&added.job);
                }
                Ok(Keyed::New(added))
            }
            Keyed::Before(record) => self.matching(key, record).map(Keyed::Before),
        }
    }

    /// [`add_batch`](Host::add_batch) under `key`.
    pub fn add_batch_keyed(&self, reqs: Vec<AddJob>, key: &RequestKey) -> Result<Keyed<Vec<Job>>, HostError> {
        let news = self.add_batch_check(reqs)?;
        match self.inner.shared.store.add_batch_keyed(news, self.now(), &self.once(key))? {
            Keyed::New(jobs) => {
                self.announce_batch(&jobs);
                Ok(Keyed::New(jobs))
            }
            Keyed::Before(record) => self.matching(key, record).map(Keyed::Before),
        }
    }

    /// [`add_schedule`](Host::add_schedule) under `key`.
    pub fn add_schedule_keyed(
        &self,
        req: NewSchedule,
        key: &RequestKey,
    ) -> Result<Keyed<Schedule>, HostError> {
        let schedule = self.new_schedule(req)?;
        match self.inner.shared.store.add_schedule_keyed(schedule, self.now(), &self.once(key))? {
            Keyed::New(schedule) => {
                self.inner.schedules_changed.notify_one();
                Ok(Keyed::New(schedule))
            }
            Keyed::Before(record) => self.matching(key, record).map(Keyed::Before),
        }
    }

    /// Deletes every idempotency key whose window has passed, a bounded batch per
    /// transaction; how many.
    pub fn forget_expired_keys(&self) -> Result<usize, HostError> {
        const BATCH: usize = 10_000;
        let now = self.now();
        let mut total = 0;
        loop {
            let n = self.inner.shared.store.forget_keys(now, BATCH)?;
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    fn once(&self, key: &RequestKey) -> Once {
        let window = duration_micros(self.inner.shared.config.idempotency_window);
        Once {
            key: key.key.clone(),
            fingerprint: key.fingerprint.clone(),
            expires_at: self.now().saturating_add(window),
        }
    }

    /// `record` if it came with the same request as `key`.
    fn matching(&self, key: &RequestKey, record: Remembered) -> Result<Remembered, HostError> {
        if record.fingerprint == key.fingerprint {
            Ok(record)
        } else {
            Err(HostError::KeyReused(key.key.clone()))
        }
    }
}
