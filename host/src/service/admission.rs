//! Adding jobs: what a caller asks for ([`AddJob`]), the checks against the registry and the
//! limits, the defaults filled in, and storing one job or a whole batch.
//!
//! **Invariant:** nothing is stored unless every check passed; a batch is stored whole or not
//! at all.

use std::time::Duration;

use super::error::HostError;
use super::host::Host;
use crate::clock::Micros;
use crate::job::{Job, NewJob, ScheduleId, DEFAULT_QUEUE, MAX_NAME_LEN};
use crate::store::Added;
use crate::text::clip;

/// A request to add a job.
#[derive(Debug, Clone, Default)]
pub struct AddJob {
    pub factory: String,
    /// JSON text; `None` is `null`.
    pub input: Option<String>,
    pub queue: Option<String>,
    pub priority: i32,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    /// Not before this time (the job is `scheduled` until then).
    pub run_at: Option<Micros>,
    /// Add it `held`: it waits for `start`.
    pub hold: bool,
    /// While a job of the same factory with this key is pending, return that job instead.
    pub unique_key: Option<String>,
    /// The schedule making this job (set by the scheduler).
    pub schedule_id: Option<ScheduleId>,
}

/// Longest unique key (it is part of an index key).
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

impl Host {
    /// Validates and stores a job; returns once it is durable (or the pending job holding its
    /// unique key). Blocking: async callers use `spawn_blocking`. Wakes the job's queue,
    /// starting it if it is new and autostarts.
    pub fn add(&self, req: AddJob) -> Result<Added, HostError> {
        let new = self.validate(req)?;
        let added = self.inner.shared.store.add(new, self.now())?;
        if !added.existing {
            self.announce(&added.job);
        }
        Ok(added)
    }

    /// Validates every job, then stores them all in one transaction and one flush, or none.
    /// Unique keys are refused in batches (the answer would differ job by job).
    pub fn add_batch(&self, reqs: Vec<AddJob>) -> Result<Vec<Job>, HostError> {
        let news = self.add_batch_check(reqs)?;
        let jobs = self.inner.shared.store.add_batch(news, self.now())?;
        self.announce_batch(&jobs);
        Ok(jobs)
    }

    /// Tells the listeners of each new job and wakes each queue once.
    pub(super) fn announce_batch(&self, jobs: &[Job]) {
        let mut queues: Vec<&str> = Vec::new();
        for job in jobs {
            self.inner.shared.events.publish(job);
            if !queues.contains(&job.queue.as_str()) {
                queues.push(&job.queue);
            }
        }
        for name in queues {
            self.inner.pool.wake(name);
        }
    }

    /// Checks every job of a batch; `InvalidBatch` lists each refused one by index.
    pub fn add_batch_check(&self, reqs: Vec<AddJob>) -> Result<Vec<NewJob>, HostError> {
        let total = reqs.len();
        let mut news = Vec::with_capacity(total);
        let mut items = Vec::new();
        for (index, req) in reqs.into_iter().enumerate() {
            if req.unique_key.is_some() {
                let message = "not accepted in a batch; add jobs with unique keys one at a time";
                items.push((index, HostError::invalid("unique_key", message)));
                continue;
            }
            match self.validate(req) {
                Ok(new) => news.push(new),
                Err(e) => items.push((index, e)),
            }
        }
        if items.is_empty() {
            Ok(news)
        } else {
            Err(HostError::InvalidBatch { total, items })
        }
    }

    /// Checks a request against the registry and the limits, and fills in the defaults.
    pub fn validate(&self, req: AddJob) -> Result<NewJob, HostError> {
        let catalog = self.inner.shared.catalog();
        let factory = catalog.factory(&req.factory).ok_or_else(|| HostError::UnknownFactory {
            name: req.factory.clone(),
            known: catalog.factory_names().iter().map(|s| s.to_string()).collect(),
        })?;
        let queue = req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        validate_name("queue", &queue)?;
        let input = req.input.unwrap_or_else(|| "null".to_owned());
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(HostError::invalid("input", format!("not valid JSON: {e}")));
        }
        let input = self
            .inner
            .shared
            .schemas
            .admit(factory, input)
            .map_err(|errors| HostError::InvalidInput { factory: factory.name.clone(), errors })?;
        let max_attempts = req
            .max_attempts
            .or(factory.defaults.max_attempts)
            .unwrap_or(self.inner.shared.config.default_max_attempts);
        if max_attempts == 0 {
            return Err(HostError::invalid("max_attempts", "must be at least 1"));
        }
        if let Some(key) = &req.unique_key {
            // Characters, as the API document's `maxLength` counts them.
            if key.is_empty() || key.chars().count() > MAX_UNIQUE_KEY_LEN {
                return Err(HostError::invalid(
                    "unique_key",
                    format!("must be 1 to {MAX_UNIQUE_KEY_LEN} characters long"),
                ));
            }
            // PostgreSQL's text cannot hold it: refused on every store alike.
            if key.contains('\0') {
                return Err(HostError::invalid("unique_key", "must not contain the NUL character"));
            }
        }
        Ok(NewJob {
            factory: req.factory,
            input,
            queue,
            priority: req.priority,
            max_attempts,
            timeout_ms: req.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            run_at: req.run_at,
            hold: req.hold,
            unique_key: req.unique_key,
            schedule_id: req.schedule_id,
        })
    }
}

fn validate_name(field: &'static str, name: &str) -> Result<(), HostError> {
    if crate::job::is_valid_name(name) {
        Ok(())
    } else {
        Err(HostError::invalid(
            field,
            format!(
                "{:?}: use 1 to {MAX_NAME_LEN} characters from a-z, A-Z, 0-9, `_`, `-`, `.`, not `.` or `..`",
                clip(name)
            ),
        ))
    }
}
