//! The PostgreSQL store: any number of hosts on any number of machines share one queue in
//! one database. Selected by a store URL (`[store] url`, `--store-url`,
//! `JOBHOST_STORE_URL`); without one the embedded store is used.
//!
//! **Invariant:** every change is one transaction that locks the rows it changes and
//! applies `crate::job`'s transitions to them, so the two stores share one state machine;
//! a claim takes only rows no other transaction holds (`SKIP LOCKED`) and counts the
//! attempt before it commits; a pending job's unique key is unique by index; a notification
//! is sent by the transaction that makes jobs ready, never before its commit.

mod dependents;
mod errors;
mod history;
mod idempotency;
mod jobs;
mod limits;
mod listen;
mod migrations;
mod pauses;
mod rows;
mod schedules;
mod session;
mod store;
mod tls;
mod work;

pub use migrations::{Migrated, SCHEMA_VERSION};
pub use store::{describe, parse_url, PgStore};
pub use tls::Tls;
pub use work::{claim_sql, claim_sql_with, NEXT_DUE_SQL};
