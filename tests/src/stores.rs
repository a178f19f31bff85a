//! Stores for tests, one per backend: the embedded store in a temporary directory, and the
//! PostgreSQL store in a schema of its own (created fresh, dropped afterwards) in the
//! database `JOBHOST_TEST_POSTGRES` names (default: the local server's `test` database).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use jobhost::store::{PgStore, SledStore, Store, StoreOptions};
use tempfile::TempDir;

/// Whether the PostgreSQL tests are skipped (`JOBHOST_TEST_POSTGRES=skip`, for a machine
/// without a server): then `test` says so on stderr, past the test harness's capture, so a
/// skip is never silent.
pub fn postgres_skipped(test: &str) -> bool {
    let skipped = std::env::var("JOBHOST_TEST_POSTGRES").is_ok_and(|v| v == "skip");
    if skipped {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: JOBHOST_TEST_POSTGRES=skip (no PostgreSQL)");
    }
    skipped
}

/// The database the PostgreSQL tests use.
pub fn postgres_url() -> String {
    std::env::var("JOBHOST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of its own in the test database, dropped with everything in it when this is.
pub struct Schema {
    pub name: String,
}

impl Schema {
    pub fn new() -> Schema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("jobhost_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL tests need a server at {} (set JOBHOST_TEST_POSTGRES): {e}",
                postgres_url()
            )
        });
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).unwrap();
        Schema { name }
    }

    /// Connection settings whose tables are this schema's.
    pub fn config(&self) -> postgres::Config {
        let mut config: postgres::Config = postgres_url().parse().unwrap();
        config.options(&format!("-c search_path={}", self.name));
        config
    }

    /// The store URL for `jobhost serve --store-url`.
    pub fn url(&self) -> String {
        let sep = if postgres_url().contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", postgres_url(), self.name)
    }

    pub fn client(&self) -> postgres::Client {
        self.config().connect(postgres::NoTls).unwrap()
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema::new()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Postgres,
}

/// A fresh, empty store of one backend, with what keeps it alive.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    _dir: Option<TempDir>,
    schema: Option<Schema>,
}

impl TestStore {
    pub fn new(backend: Backend) -> TestStore {
        match backend {
            Backend::Sled => {
                let dir = TempDir::new().unwrap();
                let store = SledStore::open(dir.path(), StoreOptions::default()).unwrap();
                TestStore { store: Arc::new(store), backend, _dir: Some(dir), schema: None }
            }
            Backend::Postgres => {
                let schema = Schema::new();
                let store = PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain).unwrap();
                TestStore { store: Arc::new(store), backend, _dir: None, schema: Some(schema) }
            }
        }
    }

    /// Another store on the same data: a second host on the same database (PostgreSQL only).
    pub fn another_host(&self) -> Arc<dyn Store> {
        let schema = self.schema.as_ref().expect("only a PostgreSQL store is shared");
        Arc::new(PgStore::open(schema.config(), jobhost::store::postgres::Tls::Plain).unwrap())
    }

    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}
