//! `jobhost run-once`: process every ready job on the store directly, then exit (Launchpad's
//! cron-script mode). Opens the embedded store itself, so no server may hold it; a
//! PostgreSQL store is shared with whatever hosts run on it.

use std::collections::BTreeMap;
use std::path::Path;

use super::local::PluginSetup;
use super::{EXIT_OK, EXIT_USAGE};
use crate::job::Status;
use crate::runtime::{self, Backend};
use crate::service::{ClaimFilter, ProcessorConfig};

/// Which store `run-once` works on.
pub enum Store<'a> {
    Embedded(&'a Path),
    Postgres(&'a str),
}

pub fn run(
    plugins: PluginSetup,
    store: Store<'_>,
    queue: Option<&str>,
    factory: Option<&str>,
    max_jobs: Option<u64>,
) -> u8 {
    let backend = match store {
        Store::Embedded(data_dir) => Backend::embedded(data_dir),
        Store::Postgres(url) => Backend::Postgres { url: url.to_owned(), password_file: None, ca_file: None },
    };
    let opened = plugins.open().and_then(|plugins| {
        let host = runtime::open_host(&backend, plugins, ProcessorConfig::default())?;
        Ok((host, super::local::runtime()?))
    });
    let (host, runtime) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let outcome = runtime.block_on(async {
        let mut seen: BTreeMap<Status, u64> = BTreeMap::new();
        // A job retried with no delay may come straight back; each pass takes what is ready now.
        let mut processed = 0;
        while max_jobs.is_none_or(|max| processed < max) {
            let Some(job) = host.process_next(ClaimFilter { queue, factory }).await? else { break };
            *seen.entry(job.status).or_insert(0) += 1;
            processed += 1;
        }
        host.flush()?;
        host.leave();
        Ok::<_, anyhow::Error>(seen)
    });
    match outcome {
        Ok(seen) => {
            let total: u64 = seen.values().sum();
            let parts: Vec<String> = seen.iter().map(|(s, n)| format!("{s} {n}")).collect();
            if parts.is_empty() {
                println!("processed 0 jobs");
            } else {
                println!("processed {total} job(s): {}", parts.join(", "));
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}
