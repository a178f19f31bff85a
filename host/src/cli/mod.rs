//! Command-line parsing and dispatch. Each subcommand lives in its own module; this file only
//! declares the grammar and maps outcomes to exit codes.
//!
//! Exit codes: 0 success; 1 the job or check failed; 2 bad usage or an error before any work
//! (unreadable file, plugin that would not load).

mod bench;
mod local;
mod plugins_cmd;
mod run_once;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The job failed, or a check found problems.
pub const EXIT_FAILED: u8 = 1;
/// Bad usage, or an error that stopped the command before it did its work.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "jobhost", version, about = "A job-processing host with native plugins")]
pub struct Cli {
    /// Load plugin files even if group/world-writable or owned by another user.
    #[arg(long, global = true)]
    pub allow_insecure_plugins: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and try plugin libraries.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Process every ready job on the embedded store, print a summary, and exit.
    /// The store must not be held by a running server.
    RunOnce {
        /// The data directory (the embedded store).
        #[arg(long, default_value = local::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        #[command(flatten)]
        plugins: local::PluginArgs,
        /// Only jobs of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only jobs of this factory.
        #[arg(long)]
        factory: Option<String>,
        /// Stop after this many jobs (`--max-jobs 1`: process exactly the next one).
        #[arg(long, value_name = "N")]
        max_jobs: Option<u64>,
    },
    /// Measure submit and drain throughput and idle latency with the real `echo` plugin on a
    /// temporary store.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Load plugin files or directories and list their factories, or why they were rejected.
    /// Exits 0 only when every plugin was accepted.
    Check {
        /// Plugin files, or directories scanned for `*.so` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one factory of one plugin once, in this process, and print the result JSON.
    Run {
        /// The plugin file.
        plugin: PathBuf,
        /// The factory name.
        factory: String,
        /// The job's input as JSON (default: null).
        input: Option<String>,
    },
}

/// Parses the command line, runs the command, and returns its exit code.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let options = crate::plugins::LoadOptions { allow_insecure: cli.allow_insecure_plugins };
    let code = match cli.command {
        Command::Plugins(PluginsCommand::Check { paths, json }) => plugins_cmd::check(options, &paths, json),
        Command::Plugins(PluginsCommand::Run { plugin, factory, input }) => {
            plugins_cmd::run(options, &plugin, &factory, input.as_deref())
        }
        Command::RunOnce { data_dir, plugins, queue, factory, max_jobs } => {
            run_once::run(options, &data_dir, &plugins, queue.as_deref(), factory.as_deref(), max_jobs)
        }
        Command::Bench(args) => bench::run(options, &args),
    };
    ExitCode::from(code)
}

/// Logs go to stderr; `JOBHOST_LOG` (env_logger syntax, e.g. `debug` or `jobhost=debug`) sets
/// the filter, default `warn` for CLI commands so their stdout/stderr stay readable.
fn init_logging() {
    let env = env_logger::Env::default().filter_or("JOBHOST_LOG", "warn");
    let _ = env_logger::Builder::from_env(env).format_timestamp_micros().try_init();
}
