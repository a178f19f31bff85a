//! Command-line parsing and dispatch. Each subcommand lives in its own module; this file only
//! declares the grammar and maps outcomes to exit codes.
//!
//! Exit codes: 0 success (a job: completed); 1 the job or check failed, or the server refused
//! the request; 2 the job was cancelled; 3 bad usage, no server, or an error before any work
//! (unreadable file, plugin that would not load, store held by another process).

mod add_cmd;
mod bench;
pub(crate) mod client;
mod group_cmd;
mod jobs_cmd;
mod limit_cmd;
mod local;
mod logs;
mod plugins_cmd;
mod run_once;
mod schedule_cmd;
mod serve;
mod store_cmd;
mod stores;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Success.
pub const EXIT_OK: u8 = 0;
/// The job failed, or a check found problems.
pub const EXIT_FAILED: u8 = 1;
/// The job was cancelled.
pub const EXIT_CANCELLED: u8 = 2;
/// Bad usage, no server, or an error that stopped the command before it did its work.
pub const EXIT_USAGE: u8 = 3;

pub use crate::config::DEFAULT_DATA_DIR;

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
    /// Run the service: the HTTP API and the queue processors.
    Serve(serve::ServeArgs),
    /// Add a job (prints its id; with --wait, its result).
    Add(add_cmd::AddArgs),
    /// Show a job.
    Status(jobs_cmd::IdArgs),
    /// Print a job's result (exit 0 completed, 1 error or not finished, 2 cancelled).
    Result(jobs_cmd::IdArgs),
    /// Print a job's error history, oldest first.
    Errors(jobs_cmd::IdArgs),
    /// Cancel a job (a running one stops when its factory returns).
    Cancel(jobs_cmd::IdArgs),
    /// Run a job that ended in error or cancelled again, with fresh attempts.
    Retry(jobs_cmd::IdArgs),
    /// Queue a held job (or a scheduled one, now).
    Start(jobs_cmd::IdArgs),
    /// List jobs, oldest first.
    List(jobs_cmd::ListArgs),
    /// Remove finished jobs.
    Remove(jobs_cmd::RemoveArgs),
    /// List the queues.
    Queues(jobs_cmd::ClientOnly),
    /// Start or stop a queue's processor.
    #[command(subcommand)]
    Queue(jobs_cmd::QueueCommand),
    /// List the job factories the server has; `factories show NAME`: one, with its input schema.
    Factories(jobs_cmd::FactoriesArgs),
    /// Flow control: `limit list`, `limit set queue NAME --concurrency 2 --rate 100/1s`,
    /// `limit remove queue NAME`.
    #[command(subcommand)]
    Limit(limit_cmd::LimitCommand),
    /// A batch's group: `group show ID`, `group cancel ID`.
    #[command(subcommand)]
    Group(group_cmd::GroupCommand),
    /// Manage schedules (cron and delay items).
    #[command(subcommand)]
    Schedule(schedule_cmd::ScheduleCommand),
    /// Preview cron expressions (locally, no server needed).
    #[command(subcommand)]
    Cron(schedule_cmd::CronCommand),
    /// Check, back up and restore the embedded store.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Inspect and try plugin libraries.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Process every ready job on the embedded store, print a summary, and exit.
    /// The store must not be held by a running server.
    RunOnce {
        /// The data directory (the embedded store).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// A PostgreSQL store instead (`postgres://user@host/db`; the password in the URL or
        /// PGPASSWORD; `sslmode=require` verifies against the system's roots).
        #[arg(long, value_name = "URL", env = "JOBHOST_STORE_URL", hide_env_values = true)]
        store_url: Option<String>,
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
        /// Where plugin code runs: `process` (a worker process) or `none` (this process).
        #[arg(long, value_enum, default_value_t = crate::config::Isolation::Process)]
        isolation: crate::config::Isolation,
    },
    /// Measure submit and drain throughput and idle latency with the real `echo` plugin on a
    /// temporary store.
    Bench(bench::BenchArgs),
    /// A worker process (started by the host, not by hand): loads the plugins and runs the
    /// jobs its host sends over the socket on file descriptor 3.
    #[command(hide = true)]
    Worker(crate::workers::child::WorkerArgs),
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
/// The host's own memory comes from jemalloc (main.rs); glibc's malloc still serves plugin code
/// (a plugin library allocates through the C library), in the host with `isolation =
/// "in-process"` and in every worker process. glibc gives each thread that allocates under
/// contention an arena of its own (up to 8 per CPU) and rarely returns their memory: two
/// arenas bound what plugins' threads leave fragmented. Must run before any thread starts;
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator tunable; called before any thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

pub fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors.
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    // The service (and its worker processes) log their life at `info`; other commands only
    // warnings, to keep output clean. `serve` starts its logger once its config is read.
    match cli.command {
        Command::Serve(_) => {}
        Command::Worker(_) => logs::init_worker(),
        _ => {
            logs::init("warn", crate::config::LogFormat::Text);
            // A command whose output goes to a closed pipe (`| head`) ends quietly, as Unix
            // tools do, instead of panicking in `println!`. Not `serve` or a worker: they keep
            // SIGPIPE ignored, as the runtime sets it, for their sockets.
            // SAFETY: setting a signal's disposition before any other thread exists.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        }
    }
    let options = crate::plugins::LoadOptions::trusting(cli.allow_insecure_plugins);
    let code = match cli.command {
        Command::Serve(args) => serve::run(&args, cli.allow_insecure_plugins),
        Command::Add(args) => add_cmd::add(&args),
        Command::Status(args) => jobs_cmd::status(&args),
        Command::Result(args) => jobs_cmd::result(&args),
        Command::Errors(args) => jobs_cmd::errors(&args),
        Command::Cancel(args) => jobs_cmd::cancel(&args),
        Command::Retry(args) => jobs_cmd::retry(&args),
        Command::Start(args) => jobs_cmd::start(&args),
        Command::List(args) => jobs_cmd::list(&args),
        Command::Remove(args) => jobs_cmd::remove(&args),
        Command::Queues(args) => jobs_cmd::queues(&args),
        Command::Queue(command) => jobs_cmd::queue(&command),
        Command::Factories(args) => jobs_cmd::factories(&args),
        Command::Group(command) => group_cmd::group(&command),
        Command::Limit(command) => limit_cmd::limit(&command),
        Command::Schedule(command) => schedule_cmd::schedule(&command),
        Command::Cron(command) => schedule_cmd::cron(&command),
        Command::Store(command) => store_cmd::run(&command),
        Command::Plugins(PluginsCommand::Check { paths, json }) => plugins_cmd::check(options, &paths, json),
        Command::Plugins(PluginsCommand::Run { plugin, factory, input }) => {
            plugins_cmd::run(options, &plugin, &factory, input.as_deref())
        }
        Command::RunOnce { data_dir, store_url, plugins, queue, factory, max_jobs, isolation } => {
            let setup = plugins.setup(isolation, cli.allow_insecure_plugins);
            let store = match &store_url {
                Some(url) => run_once::Store::Postgres(url),
                None => run_once::Store::Embedded(&data_dir),
            };
            run_once::run(setup, store, queue.as_deref(), factory.as_deref(), max_jobs)
        }
        Command::Bench(args) => bench::run(cli.allow_insecure_plugins, &args),
        Command::Worker(args) => crate::workers::child::run(&args, cli.allow_insecure_plugins),
    };
    ExitCode::from(code)
}
