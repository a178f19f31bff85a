//! The composition root: the one place the service is assembled from its parts. It chooses
//! the store backend from the configuration (the embedded store in a data directory, or a
//! PostgreSQL store shared with other hosts), builds the [`Host`] over it, and runs the whole
//! service on a listener: the host's upkeep and queues, the scheduler loop (by role), the HTTP
//! API, then the graceful stop.
//!
//! The files: `backend` (which store, and opening it under a host), `run` (starting and
//! stopping everything around the HTTP server).
//!
//! **Invariant:** only this module (and the CLI's offline store commands, through
//! `cli::stores`) names a concrete store; the server serves what it is handed, the service
//! works over any [`Store`](crate::store::Store).
//!
//! [`Host`]: crate::service::Host

mod backend;
mod run;

pub use backend::{open_host, open_host_with_store, postgres_connection, Backend};
pub use run::{run, Settings, Stopped};
