//! The wire contract: request and response bodies of the HTTP API, shared by the server and the
//! CLI client so that both sides agree by construction, one file per resource as the handlers
//! are. Field names are part of the contract: add fields freely, never rename.

mod admin;
mod jobs;
mod limits;
mod operations;
mod schedules;
mod stats;

pub use admin::{
    ConflictView, FactoryView, Health, HostView, PauseView, PluginView, PluginsView, QueueView,
    RejectionView, WorkerView,
};
pub use jobs::{
    AddJobRequest, AddedView, BatchAdded, BatchItem, BatchRequest, CallbackView, DependencyEdge,
    DependencyRef, GroupAdded, GroupCancelled, GroupRequest, GroupView, JobCount, JobPage, JobSummary,
    JobView, Removed, Retried, SummaryPage,
};
pub use limits::{LimitRequest, LimitView, RateView};
pub use operations::{OperationRequest, OperationView};
pub use schedules::{CronCheck, CronTimes, MissedView, SchedulePatchRequest, ScheduleRequest, ScheduleView};
pub use stats::{PercentilesView, QueueTotals, StatsPoint, StatsView};
