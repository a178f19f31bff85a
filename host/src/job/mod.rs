//! A job record and its life cycle: what is stored, the closed set of statuses, and the state
//! machine: which status may follow which, and what each transition sets on the record.
//!
//! **Invariant:** a job's record changes status only through the transitions below (stores
//! apply them, inside their transactions, and keep their indexes in step); every transition
//! is one of [`TRANSITIONS`], which a test checks the methods against.
//!
//! The files: `record` (the record, statuses, outcomes and the transitions), `edges` (what a
//! job waiting for others records, and its place in a group), `waiting` (the rules that move
//! a waiting job as its parents change).

mod edges;
mod record;
mod waiting;

pub use edges::{Callback, Deps, Membership, NewMembership, NewParent, OnFailure, Parent, Upon};
pub use record::*;
pub use waiting::{dependency_failed, Standing};

#[cfg(test)]
mod tests;
