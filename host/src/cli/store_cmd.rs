//! `jobhost store check|backup|restore`: the embedded store, offline (a store no server
//! holds) or, for a backup, through a running server; `jobhost store migrate`: a PostgreSQL
//! store's schema.
//!
//! Exit codes: 0 done (check: everything holds); 1 the check found problems, or the server
//! refused; 3 the command could not run (no store, a store in use, a damaged store or backup,
//! no server).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::client::{Client, ClientArgs};
use super::stores::{self, BackupSummary, CheckReport, JobStore, OnLoss};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Read every record and index entry of a store no server holds, and say what does not
    /// hold (exit 0: all of it holds; 1: something does not; 3: it cannot be opened).
    Check {
        /// The data directory (the embedded store).
        #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent backup of a store to FILE: of the store in --data-dir (no server may
    /// hold it), or through the running server given by --server (the token from
    /// JOBHOST_TOKEN). Writes wait while the copy is taken.
    Backup {
        /// Where to write it (replaced whole once complete).
        file: PathBuf,
        /// The data directory of a store no server holds.
        #[arg(long, conflicts_with = "server")]
        data_dir: Option<PathBuf>,
        /// A running server, e.g. `http://127.0.0.1:7878`.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
    },
    /// Bring a PostgreSQL store's schema to this jobhost's version (hosts do it themselves
    /// at start; this is for operators who migrate apart from starting hosts). Exit 0: the
    /// schema is current; 3: no database, or one migrated by a newer jobhost.
    Migrate {
        /// The PostgreSQL store, `postgres://user@host/db`.
        #[arg(long, value_name = "URL", env = "JOBHOST_STORE_URL", hide_env_values = true)]
        store_url: String,
        /// A file holding the password, when the URL has none (else PGPASSWORD).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// A PEM certificate to trust for TLS (`sslmode=require`), beside the system's roots.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Restore a backup into a new store at --data-dir, which must not exist or be empty
    /// (move the old store away first). The whole file is checked before anything is written.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Where the restored store goes.
        #[arg(long, default_value = super::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
}

pub fn run(command: &StoreCommand) -> u8 {
    match command {
        StoreCommand::Check { data_dir, json } => check(data_dir, *json),
        StoreCommand::Backup { file, data_dir, server } => {
            backup(file, data_dir.as_deref(), server.as_deref())
        }
        StoreCommand::Restore { file, data_dir } => restore(file, data_dir),
        StoreCommand::Migrate { store_url, password_file, ca_file } => {
            migrate(store_url, password_file.as_deref(), ca_file.as_deref())
        }
    }
}

fn migrate(url: &str, password_file: Option<&Path>, ca_file: Option<&Path>) -> u8 {
    match stores::migrate(url, password_file, ca_file) {
        Ok((from, to)) if from == to => {
            println!("schema at version {to} (current)");
            EXIT_OK
        }
        Ok((from, to)) => {
            println!("schema migrated from version {from} to {to}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn check(data_dir: &Path, json: bool) -> u8 {
    let report = stores::open_existing(data_dir, OnLoss::Inspect)
        .and_then(|store| store.check().map_err(|e| e.to_string()));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_report(data_dir, &report);
    }
    if report.ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn print_report(data_dir: &Path, report: &CheckReport) {
    let total: u64 = report.jobs.values().sum();
    let by_status: Vec<String> =
        report.jobs.iter().map(|(status, n)| format!("{n} {}", status.as_str())).collect();
    println!(
        "store at {}: {total} jobs ({}), {} schedules",
        data_dir.display(),
        if by_status.is_empty() { "none".to_owned() } else { by_status.join(", ") },
        report.schedules
    );
    let p = &report.progress;
    println!("job ids up to {}, schedule ids up to {}", p.last_job_id, p.last_schedule_id);
    match &report.lost {
        Some(lost) => println!("LOST: the state file says more was stored: {lost}"),
        None => println!("state file: the store holds everything it records"),
    }
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
    if report.more_problems > 0 {
        println!("... and {} more problems", report.more_problems);
    }
    println!("{}", if report.ok() { "OK" } else { "NOT OK" });
}

fn backup(file: &Path, data_dir: Option<&Path>, server: Option<&str>) -> u8 {
    // Written aside and renamed once complete: FILE is never a partial backup.
    let partial = file.with_extension("partial");
    let written = (|| -> Result<(BackupSummary, String), (u8, String)> {
        let mut out = File::create(&partial)
            .map_err(|e| (EXIT_USAGE, format!("cannot create {}: {e}", partial.display())))?;
        let (summary, from) = match server {
            Some(server) => {
                let client = Client::new(&ClientArgs { server: server.to_owned(), json: false });
                client.download("/v1/backup", &mut out).map_err(|e| (e.exit_code(), e.to_string()))?;
                out.flush().map_err(|e| (EXIT_USAGE, format!("cannot write {}: {e}", partial.display())))?;
                // What came over the network is checked whole before it counts as a backup.
                let summary = stores::inspect_backup(&partial).map_err(|e| (EXIT_FAILED, e.to_string()))?;
                (summary, format!("the server at {server}"))
            }
            None => {
                let data_dir = data_dir.unwrap_or(Path::new(super::DEFAULT_DATA_DIR));
                let store = stores::open_existing(data_dir, OnLoss::Refuse).map_err(|e| {
                    let hint = if e.contains("in use by another process") {
                        "; back it up through the server: jobhost store backup FILE --server URL"
                    } else {
                        ""
                    };
                    (EXIT_USAGE, format!("{e}{hint}"))
                })?;
                let summary = store.backup(&mut out).map_err(|e| (EXIT_USAGE, e.to_string()))?;
                (summary, data_dir.display().to_string())
            }
        };
        out.flush()
            .and_then(|_| out.sync_all())
            .map_err(|e| (EXIT_USAGE, format!("cannot write {}: {e}", partial.display())))?;
        std::fs::rename(&partial, file).map_err(|e| {
            (EXIT_USAGE, format!("cannot rename {} to {}: {e}", partial.display(), file.display()))
        })?;
        Ok((summary, from))
    })();
    match written {
        Ok((summary, from)) => {
            println!(
                "backup of {from} written to {}: {} jobs, {} schedules, {} bytes",
                file.display(),
                summary.jobs,
                summary.schedules,
                summary.bytes
            );
            EXIT_OK
        }
        Err((code, message)) => {
            let _ = std::fs::remove_file(&partial);
            eprintln!("error: {message}");
            code
        }
    }
}

fn restore(file: &Path, data_dir: &Path) -> u8 {
    match stores::restore(file, data_dir) {
        Ok(summary) => {
            println!(
                "restored {} into {}: {} jobs, {} schedules; start the service on it (jobs that were running when the backup was taken run again)",
                file.display(),
                data_dir.display(),
                summary.jobs,
                summary.schedules
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
