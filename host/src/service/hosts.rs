//! The hosts sharing a store: this host tells the store it is alive every half lease (with
//! the reaper), and `/v1/hosts` lists every host that did, alive or not. With the embedded
//! store, which one process opens, the list is this host alone.

use crate::store::HostRecord;

use super::error::HostError;
use super::host::Host;

/// A host as `/v1/hosts` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatus {
    pub record: HostRecord,
    /// It beat within the last lease (hosts beat every half lease).
    pub alive: bool,
    /// It is the host answering.
    pub this: bool,
}

impl Host {
    /// Tells the store this host is alive now.
    pub fn beat(&self) -> Result<(), HostError> {
        let me = HostRecord { heartbeat_at: self.now(), ..self.inner.me.clone() };
        Ok(self.inner.shared.store.beat(&me)?)
    }

    /// This host's name among the hosts sharing its store.
    pub fn name(&self) -> &str {
        &self.inner.me.name
    }

    /// Every host registered in the store (this one alone for the embedded store), by name.
    pub fn hosts(&self) -> Result<Vec<HostStatus>, HostError> {
        let now = self.now();
        let lease = crate::clock::duration_micros(self.inner.shared.config.lease);
        let mut hosts = self.inner.shared.store.hosts()?;
        if !hosts.iter().any(|h| h.name == self.inner.me.name) {
            hosts.push(HostRecord { heartbeat_at: now, ..self.inner.me.clone() });
        }
        Ok(hosts
            .into_iter()
            .map(|record| HostStatus {
                alive: record.heartbeat_at >= now.saturating_sub(lease),
                this: record.name == self.inner.me.name,
                record,
            })
            .collect())
    }
}
