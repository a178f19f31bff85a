//! What the workers share with each other and with the service above them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use super::config::ProcessorConfig;
use super::queue::Queue;
use super::running::RunningJobs;
use crate::clock::{Clock, Micros};
use crate::events::Events;
use crate::metrics::Metrics;
use crate::plugins::{Factory, Registry};
use crate::store::{LeaseTerms, Store};
use crate::sync;

/// The host's parts that both the service (admission, reads, maintenance) and the workers
/// use: the store, the factories, the clock, the settings, events and metrics.
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Behind a lock so a rescan can add plugins while jobs run.
    pub registry: RwLock<Registry>,
    pub clock: Arc<dyn Clock>,
    pub config: ProcessorConfig,
    pub events: Events,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        config: ProcessorConfig,
    ) -> Self {
        Shared {
            store,
            registry: RwLock::new(registry),
            clock,
            config,
            events: Events::default(),
            metrics: Metrics::default(),
        }
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    pub fn factory(&self, name: &str) -> Option<Factory> {
        sync::read(&self.registry).get(name).cloned()
    }

    pub fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms { duration: self.config.lease }
    }
}

/// The worker pool's own state: the queues, the attempts running here, the supervisor.
pub(super) struct PoolState {
    pub shared: Arc<Shared>,
    pub queues: Mutex<BTreeMap<String, Arc<Queue>>>,
    pub running: RunningJobs,
    /// The attempt supervisor (leases, timeouts) runs once started (`supervisor::ensure`).
    pub supervisor_started: AtomicBool,
}
