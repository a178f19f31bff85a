//! Flow control's limits as callers set them: checked, stored (every host sharing the store
//! then claims under them), and the queues woken so that what a change lets start, starts.

use super::error::HostError;
use super::host::Host;
use crate::job::is_valid_name;
use crate::limits::{Limit, LimitState, Rate, Scope};

/// The longest interval a rate may be given over, in milliseconds (a day).
pub const MAX_RATE_PER_MS: u64 = 86_400_000;

impl Host {
    /// Every limit, with its rate's next start.
    pub fn limits(&self) -> Result<Vec<LimitState>, HostError> {
        Ok(self.inner.shared.store.limits()?)
    }

    /// Sets (adds or replaces) a limit.
    pub fn set_limit(&self, limit: Limit) -> Result<LimitState, HostError> {
        check(&limit)?;
        let state = self.inner.shared.store.set_limit(limit)?;
        // A narrower limit must hold for the jobs this host claimed ahead too, and a wider
        // one lets jobs start that waited.
        self.inner.pool.limits_changed();
        Ok(state)
    }

    /// Removes the limit on `scope`; what it was.
    pub fn remove_limit(&self, scope: &Scope) -> Result<LimitState, HostError> {
        let missing =
            || HostError::LimitNotFound(format!("{} {}", scope.kind(), crate::text::clip(scope.name())));
        let found = self.limits()?.into_iter().find(|l| l.limit.scope == *scope).ok_or_else(missing)?;
        if !self.inner.shared.store.remove_limit(scope)? {
            return Err(missing());
        }
        self.inner.pool.limits_changed();
        Ok(found)
    }
}

fn check(limit: &Limit) -> Result<(), HostError> {
    if !is_valid_name(limit.scope.name()) {
        return Err(HostError::invalid(
            "name",
            format!("`{}` is not a queue or factory name", crate::text::clip(limit.scope.name())),
        ));
    }
    if limit.concurrency.is_none() && limit.per_key.is_none() && limit.rate.is_none() {
        return Err(HostError::invalid("limit", "give at least one of concurrency, per_key and rate"));
    }
    if limit.concurrency == Some(0) || limit.per_key == Some(0) {
        return Err(HostError::invalid(
            "limit",
            "concurrency and per_key are at least 1 (stop the queue to run none)",
        ));
    }
    if let Some(Rate { starts, per_ms }) = limit.rate {
        if starts == 0 || per_ms == 0 || per_ms > MAX_RATE_PER_MS {
            return Err(HostError::invalid("rate", "at least 1 start per interval, over 1 ms to a day"));
        }
    }
    Ok(())
}
