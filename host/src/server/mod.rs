//! The HTTP API (`/v1`, JSON in and out) over the service's [`Host`], and the dashboard that
//! reads it (at `/`): routes, auth, limits,
//! the OpenAPI document generated from the same route declarations, and [`run`], which serves
//! it over the host it is handed until told to stop (`runtime::run` assembles the rest).
//!
//! **Invariant:** every response to bad input is a JSON error with a stable code (see
//! [`error`]), never a 500, and is decided before anything is stored. Blocking store calls run
//! on blocking threads. Nothing here names the store: handlers speak to the service only.
//!
//! [`Host`]: crate::service::Host

mod admin;
mod auth;
mod contract;
mod dashboard;
pub mod error;
mod etag;
mod extract;
mod groups;
mod guard;
mod head;
mod http;
mod job_lists;
mod job_search;
mod jobs;
mod limits;
mod opening;
mod operations;
mod quiet;
mod replay;
mod router;
mod run;
mod schedules;
mod state;
pub mod types;

pub use auth::Token;
pub use opening::Opening;
pub use router::app;
pub use run::{run, Settings};
pub use state::AppState;
