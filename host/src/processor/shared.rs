//! What the workers share with the service above them: the store, the plugins, the clock, the
//! settings, events and metrics.

use std::sync::{Arc, RwLock};

use super::config::ProcessorConfig;
use super::plugins::Plugins;
use crate::clock::{Clock, Micros};
use crate::events::Events;
use crate::history::History;
use crate::metrics::Metrics;
use crate::plugins::{Catalog, FactoryInfo, Schemas};
use crate::store::{LeaseTerms, Store};
use crate::sync;

/// The host's parts that both the service (admission, reads, maintenance) and the workers
/// use: the store, the factories, the clock, the settings, events and metrics.
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Behind a lock so a reload can change them while jobs run.
    pub plugins: RwLock<Plugins>,
    pub clock: Arc<dyn Clock>,
    pub config: ProcessorConfig,
    pub events: Events,
    pub metrics: Metrics,
    pub history: History,
    /// Factories' input schemas, compiled: checked at submission and again at claim.
    pub schemas: Schemas,
}

impl Shared {
    pub fn new(
        store: Arc<dyn Store>,
        plugins: Plugins,
        clock: Arc<dyn Clock>,
        config: ProcessorConfig,
    ) -> Self {
        Shared {
            store,
            plugins: RwLock::new(plugins),
            clock,
            config,
            events: Events::default(),
            metrics: Metrics::default(),
            history: History::default(),
            schemas: Schemas::default(),
        }
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// What is known of a factory (its defaults), wherever its code runs.
    pub fn factory(&self, name: &str) -> Option<FactoryInfo> {
        self.catalog().factory(name).cloned()
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        sync::read(&self.plugins).catalog().clone()
    }

    pub fn lease_terms(&self) -> LeaseTerms {
        LeaseTerms { duration: self.config.lease }
    }
}
