//! Worker processes: where plugin code runs with `isolation = "process"` (the default), so a
//! plugin that hangs, crashes or exits costs only its own job, never the host.
//!
//! The files: `protocol` (the frames between host and worker), `process` (a worker from the
//! host's side: spawn, run a job, stop it), `death` (how it died, its last output), `output` (its output into the host's log, bounded), `child` (the worker's own main, the hidden
//! `jobhost worker` command), `limits` (its resource limits), `tree` (a process and everything it started, killed
//! together), `probe` (each plugin file tried in a throwaway process first), `orphans` (what
//! dead workers leave behind), `sandbox` (what a worker may not do: Landlock and a seccomp filter),
//! `fds` (the descriptors a worker is handed).

pub mod child;
mod death;
mod fds;
mod limits;
mod orphans;
mod output;
mod probe;
mod process;
mod protocol;
mod sandbox;
mod spec;
mod tree;

pub use death::{signal_name, Death};
pub use limits::{format_bytes, parse_bytes, Limits};
pub use orphans::{adopt as adopt_orphans, end_all as end_all_workers};
pub use output::DEFAULT_OUTPUT_PER_JOB;
pub use probe::{Probed, Prober, DEFAULT_LOAD_TIMEOUT};
pub use process::{Control, Received, SpawnError, WorkerProcess};
pub use protocol::{RunJob, WireFailure, PROTOCOL_VERSION};
pub use sandbox::{RunAs, Sandbox};
pub use spec::Spec;
pub use tree::cpu_times;
