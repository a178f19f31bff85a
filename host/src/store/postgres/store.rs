//! The `PgStore` struct: the connection pool, opening (connect, migrate), the health the
//! host polls, and `run`, which every call goes through so that a lost database is noticed
//! and its return logged once each.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::Config;

use super::tls::Tls;

use super::errors::{db_error, pool_error, words};
use super::migrations::{self, Migrated};
use crate::clock::{Micros, SystemClock};
use crate::store::error::{StoreError, StoreResult};
use crate::sync;

use super::session::{Conn, Manager, Sql, Tx};

type Pool = r2d2::Pool<Manager>;

/// Connections kept open to the database: enough for every worker thread's claims and
/// outcomes, the API's requests and the maintenance loops without queueing behind each other.
const POOL_SIZE: u32 = 16;
/// How long a call waits for a connection before it fails as unavailable. Also the longest
/// pause between the pool's attempts to reconnect (it backs off up to this), so short: a
/// database back after a restart is used again within about this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The PostgreSQL store. Any number of hosts on any number of machines may open the same
/// database: every guarantee is the database's (row locks, unique indexes, transactions).
pub struct PgStore {
    /// Taken in `drop`, to close the connections off any async runtime (see there).
    pub(super) pool: std::mem::ManuallyDrop<Pool>,
    pub(super) config: Config,
    pub(super) tls: Tls,
    /// The database as logs and errors name it: never with its password.
    pub(super) shown: String,
    /// Why the last call could not reach the database, until one does.
    down: Mutex<Option<String>>,
    /// Set when the store is dropped: the listener thread ends.
    pub(super) closed: Arc<AtomicBool>,
    /// This host's name once it has beaten: its claims carry it.
    pub(super) me: Mutex<Option<String>>,
    /// The database's clock minus this host's, µs (measured at open and at every beat).
    offset: AtomicI64,
    /// When a count last compacted `job_counts` (see `PgStore::counts_compacted`).
    pub(super) compacted: Mutex<Option<std::time::Instant>>,
}

/// `postgres://user@host:port/db`, without the password, whatever the URL held.
pub fn describe(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() { String::new() } else { format!("{user}@") };
    format!("postgres://{at}{host}:{port}/{db}")
}

/// Parses a store URL (`postgres://user[:password]@host[:port]/db[?options]`, or the
/// key=value form); the error never repeats the password.
pub fn parse_url(url: &str) -> StoreResult<Config> {
    url.parse::<Config>().map_err(|e| {
        let scheme = url.split("://").next().unwrap_or("");
        let hint = if url.contains("://") && !matches!(scheme, "postgres" | "postgresql") {
            format!(" (the scheme is `{scheme}`; a store URL starts with postgres://)")
        } else {
            String::new()
        };
        StoreError::Unusable(format!("the store URL is not a PostgreSQL connection string: {e}{hint}"))
    })
}

impl PgStore {
    /// Connects, applies the migrations this build has (refusing a newer schema), and keeps
    /// a pool of connections.
    pub fn open(config: Config, tls: Tls) -> StoreResult<PgStore> {
        let shown = describe(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // One direct connection first: its error names the cause (refused, unknown
        // database, authentication), where the pool's would only say it timed out.
        let mut first = tls.connect(&config).map_err(|e| {
            StoreError::Unusable(format!("cannot connect to PostgreSQL at {shown}: {}", words(&e)))
        })?;
        migrations::migrate(&mut first, &shown)?;
        drop(first);
        let manager = Manager { config: config.clone(), tls: tls.clone() };
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            // Pooled connections are tested as they are handed out, so one the server closed
            // (a restart) is replaced rather than failing the call.
            .test_on_check_out(true)
            // Every failed connect would be a bare "db error" line of r2d2's own (a thousand
            // in an outage); `run_here` logs one line when the database is lost, with the
            // cause, and one when it answers again.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(manager);
        log::info!("store: PostgreSQL at {shown}, schema version {}", migrations::SCHEMA_VERSION);
        Ok(PgStore {
            pool: std::mem::ManuallyDrop::new(pool),
            config,
            tls,
            shown,
            down: Mutex::new(None),
            closed: Arc::new(AtomicBool::new(false)),
            me: Mutex::new(None),
            offset: AtomicI64::new(0),
            compacted: Mutex::new(None),
        })
        .inspect(|store| store.measure_clock())
    }

    /// Applies the migrations and returns, for `jobhost store migrate`.
    pub fn migrate(config: &Config, tls: &Tls) -> StoreResult<Migrated> {
        let shown = describe(config);
        let mut client = tls.connect(config).map_err(|e| {
            StoreError::Unusable(format!("cannot connect to PostgreSQL at {shown}: {}", words(&e)))
        })?;
        migrations::migrate(&mut client, &shown)
    }

    /// `now` on this host's clock as the database's clock reads it. Every time the store
    /// writes or compares for jobs (leases above all) is on the database's clock, so hosts
    /// whose clocks disagree still agree on when a lease expires.
    pub(super) fn db_now(&self, now: Micros) -> Micros {
        now.saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// A time on the database's clock, on this host's.
    pub(super) fn host_time(&self, at: Micros) -> Micros {
        at.saturating_sub(self.offset.load(Ordering::Relaxed))
    }

    /// Measures how far the database's clock is from this host's (half a round trip's
    /// error at most), warning when it is more than a second.
    pub(super) fn measure_clock(&self) {
        let before = SystemClock.now_micros();
        let read = self.run(|c| {
            let row = c
                .query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint", &[])
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0))
        });
        let after = SystemClock.now_micros();
        let Ok(db) = read else { return };
        // Below a quarter second the difference is the measurement's own noise (half a round
        // trip) and harmless to leases of seconds: times then stay exactly the host's.
        let offset = match db - (before + (after - before) / 2) {
            small if small.abs() < 250_000 => 0,
            offset => offset,
        };
        let previous = self.offset.swap(offset, Ordering::Relaxed);
        if offset.abs() > 1_000_000 && (previous - offset).abs() > 500_000 {
            log::warn!(
                "store: this host's clock is {:.1} s {} the database's at {}; job times and leases follow the database's",
                offset.abs() as f64 / 1e6,
                if offset > 0 { "behind" } else { "ahead of" },
                self.shown
            );
        }
    }

    /// The database as logs name it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs `f` on a pooled connection, noting whether the database answered.
    ///
    /// The driver blocks on a runtime of its own, which tokio forbids on a thread that drives
    /// a runtime: a call made there (the scheduler and the supervisor are async tasks that
    /// call the store directly, as its embedded sibling allows) leaves the runtime first
    /// (`block_in_place`), or, on a single-threaded runtime, runs on a thread of its own.
    pub(super) fn run<T: Send>(&self, f: impl FnOnce(&mut Conn) -> StoreResult<T> + Send) -> StoreResult<T> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let flavor = Handle::try_current().map(|h| h.runtime_flavor());
        if flavor.as_ref().is_ok_and(|f| *f == RuntimeFlavor::MultiThread) {
            // On a worker thread, hands the worker's other tasks to another thread for the
            // call's duration; on a blocking-pool thread, just runs it.
            return tokio::task::block_in_place(|| self.run_here(f));
        }
        if flavor.is_ok() {
            return std::thread::scope(|scope| {
                let handoff = std::thread::Builder::new().name("jobhost-pg-call".into());
                match handoff.spawn_scoped(scope, || self.run_here(f)) {
                    Ok(call) => call
                        .join()
                        .unwrap_or_else(|_| Err(StoreError::Database("a PostgreSQL call panicked".into()))),
                    Err(e) => {
                        Err(StoreError::Unavailable(format!("cannot start a thread for a store call: {e}")))
                    }
                }
            });
        }
        self.run_here(f)
    }

    fn run_here<T>(&self, f: impl FnOnce(&mut Conn) -> StoreResult<T>) -> StoreResult<T> {
        let result = self.pool.get().map_err(|e| pool_error(e, &self.shown)).and_then(|mut c| f(&mut c));
        match &result {
            Err(e) if e.is_unavailable() => {
                let why = match e {
                    StoreError::Unavailable(why) => why.clone(),
                    other => other.to_string(),
                };
                let mut down = sync::lock(&self.down);
                if down.is_none() {
                    log::error!("store: lost PostgreSQL at {}: {why}", self.shown);
                }
                *down = Some(why);
            }
            _ => {
                let mut down = sync::lock(&self.down);
                if down.take().is_some() {
                    log::warn!("store: PostgreSQL at {} answers again", self.shown);
                }
            }
        }
        result
    }

    /// Runs `f` in one transaction (committed if it returns `Ok`, rolled back otherwise).
    pub(super) fn transact<T: Send>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<T> {
        self.run(|client| {
            let mut tx = client.transaction().map_err(db_error)?;
            let value = f(&mut tx)?;
            // The COMMIT was sent: a connection lost now leaves its outcome unknown.
            tx.commit().map_err(|e| match db_error(e) {
                StoreError::Unavailable(why) => StoreError::OutcomeUnknown(why),
                other => other,
            })?;
            Ok(value)
        })
    }

    pub(super) fn unavailable_reason(&self) -> Option<String> {
        sync::lock(&self.down).clone()
    }

    /// Whether the database answers now.
    pub(super) fn probe(&self) -> bool {
        self.run(|c| c.simple("SELECT 1").map_err(db_error)).is_ok()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // SAFETY: the pool is taken once, here, and `self` is never used again.
        let pool = unsafe { std::mem::ManuallyDrop::take(&mut self.pool) };
        // A blocking `postgres::Client` closes through a runtime of its own, which panics
        // ("Cannot start a runtime from within a runtime") on a thread that runs async tasks:
        // where a host's last handle may go at the end of `serve`. There, the connections are
        // closed on a thread of their own.
        if tokio::runtime::Handle::try_current().is_ok() {
            let closing =
                std::thread::Builder::new().name("jobhost-pg-close".to_owned()).spawn(move || drop(pool));
            if let Ok(thread) = closing {
                let _ = thread.join();
            }
        } else {
            drop(pool);
        }
    }
}
