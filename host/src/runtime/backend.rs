//! Which store a host runs on, and opening it: the embedded store in a data directory (what
//! `serve`, `run-once` and the benchmark share), or a PostgreSQL store (connection settings from
//! the URL, the password file or `PGPASSWORD`, and TLS as the URL's `sslmode` asks).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::service::{Host, HostError, Plugins, ProcessorConfig};
use crate::store::postgres::Tls;
use crate::store::{OnLoss, PgStore, SledStore, Store, StoreError, StoreOptions};

/// The store a host runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The embedded store in `data_dir`, created if needed.
    Embedded { data_dir: PathBuf, options: StoreOptions },
    /// A PostgreSQL store: the URL as configured, with where its password and the certificate
    /// authorities may come from.
    Postgres { url: String, password_file: Option<PathBuf>, ca_file: Option<PathBuf> },
}

impl Backend {
    /// The backend `config` selects: `[store] url` when set, else the data directory.
    pub fn from_config(config: &Config) -> Backend {
        match &config.store.url {
            Some(url) => Backend::Postgres {
                url: url.0.clone(),
                password_file: config.store.password_file.clone(),
                ca_file: config.store.ca_file.clone(),
            },
            None => Backend::Embedded { data_dir: config.data_dir.clone(), options: config.store_options() },
        }
    }

    /// The embedded store in `data_dir` with default options.
    pub fn embedded(data_dir: &Path) -> Backend {
        Backend::Embedded { data_dir: data_dir.to_owned(), options: StoreOptions::default() }
    }

    /// Starts on an embedded store that lost data instead of refusing it (`--accept-data-loss`).
    pub fn accept_data_loss(mut self) -> Backend {
        if let Backend::Embedded { options, .. } = &mut self {
            options.on_loss = OnLoss::Accept;
        }
        self
    }

    /// Checks what can be checked without opening the store (the URL, the password and
    /// certificate files), so `serve --check-config` refuses what `serve` would.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Backend::Embedded { .. } => Ok(()),
            Backend::Postgres { url, password_file, ca_file } => {
                postgres_connection(url, password_file.as_deref(), ca_file.as_deref()).map(|_| ())
            }
        }
    }

    /// Opens the store (the embedded one creating its directory; PostgreSQL connecting and
    /// migrating).
    pub fn open(&self) -> Result<Arc<dyn Store>, HostError> {
        match self {
            Backend::Embedded { data_dir, options } => Ok(open_embedded(data_dir, *options)?),
            Backend::Postgres { url, password_file, ca_file } => {
                let (connection, tls) =
                    postgres_connection(url, password_file.as_deref(), ca_file.as_deref())
                        .map_err(StoreError::Unusable)?;
                Ok(Arc::new(PgStore::open(connection, tls)?))
            }
        }
    }
}

/// Opens `backend` and builds a host over it, recovering the jobs a dead host left running
/// (on PostgreSQL, jobs other hosts left are recovered when their leases expire, by whichever
/// host sees it).
pub fn open_host(backend: &Backend, plugins: Plugins, config: ProcessorConfig) -> Result<Host, HostError> {
    Host::with_plugins(backend.open()?, plugins, Arc::new(SystemClock), config)
}

/// [`open_host`] on the embedded store, also handing back the store itself: for the benchmark,
/// which measures the store alone beside the host.
pub fn open_host_with_store(
    data_dir: &Path,
    options: StoreOptions,
    plugins: Plugins,
    config: ProcessorConfig,
) -> Result<(Host, Arc<SledStore>), HostError> {
    let store = open_embedded(data_dir, options)?;
    let host = Host::with_plugins(store.clone(), plugins, Arc::new(SystemClock), config)?;
    Ok((host, store))
}

fn open_embedded(data_dir: &Path, options: StoreOptions) -> Result<Arc<SledStore>, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Io {
        what: format!("cannot create data directory {}", data_dir.display()),
        error: e,
    })?;
    Ok(Arc::new(SledStore::open(data_dir, options)?))
}

/// The connection settings of a PostgreSQL store URL, with the password from `password_file`
/// or `PGPASSWORD` when the URL carries none, and TLS as its `sslmode` asks (verified against
/// the system's roots and `ca_file`). Errors name what is wrong, never the password.
pub fn postgres_connection(
    url: &str,
    password_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> Result<(postgres::Config, Tls), String> {
    let mut config = crate::store::postgres::parse_url(url).map_err(|e| e.to_string())?;
    if config.get_password().is_none() {
        if let Some(path) = password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read store.password_file {}: {e}", path.display()))?;
            config.password(text.trim_end_matches(['\n', '\r']));
        } else if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    let tls = Tls::for_config(&config, ca_file).map_err(|e| e.to_string())?;
    Ok((config, tls))
}
