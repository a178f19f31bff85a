//! The worker pool's own state: its queues, the attempts running here, the supervisor.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::execute::Executor;
use super::queue::Queue;
use super::running::RunningJobs;
use super::shared::Shared;

/// The worker pool's own state: the queues, the attempts running here, the supervisor.
pub(super) struct PoolState {
    pub shared: Arc<Shared>,
    pub queues: Mutex<BTreeMap<String, Arc<Queue>>>,
    pub running: RunningJobs,
    /// The attempt supervisor (leases, timeouts) runs once started (`supervisor::ensure`).
    pub supervisor_started: AtomicBool,
    /// The executor of `process_next` (`run-once`), kept so that its worker process serves
    /// job after job.
    pub one_shot: Mutex<Option<Executor>>,
}
