//! Connections as the store uses them: each keeps the statements it prepared, so a statement
//! costs one round trip to the server after its first use instead of three (prepare, run,
//! close), and the pool (r2d2) hands them out. [`Sql`] is what the store's queries run on: a
//! connection, or a transaction on one.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Config, Row, Statement};

use super::tls::Tls;

/// One connection and the statements prepared on it, by their text.
pub struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// Prepares `sql` on `client` once per connection.
fn prepare(
    prepared: &mut HashMap<String, Statement>,
    client: &mut impl postgres::GenericClient,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = prepared.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    prepared.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// Runs the store's statements, each prepared once per connection.
pub trait Sql {
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error>;
    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error>;

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error>;

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let mut rows = self.query(sql, params)?;
        Ok(if rows.is_empty() { None } else { Some(rows.remove(0)) })
    }
}

impl Conn {
    /// Begins a transaction whose statements use this connection's prepared ones.
    pub fn transaction(&mut self) -> Result<Tx<'_>, postgres::Error> {
        Ok(Tx { tx: self.client.transaction()?, prepared: &mut self.prepared })
    }

    pub fn simple(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.simple_query(sql).map(|_| ())
    }
}

impl Sql for Conn {
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        let statement = prepare(&mut self.prepared, &mut self.client, sql)?;
        self.client.query(&statement, params)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let statement = prepare(&mut self.prepared, &mut self.client, sql)?;
        self.client.execute(&statement, params)
    }

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error> {
        let statement = prepare(&mut self.prepared, &mut self.client, sql)?;
        self.client.query_one(&statement, params)
    }
}

/// A transaction on a [`Conn`]: committed by [`Tx::commit`], rolled back if dropped.
pub struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    prepared: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    pub fn commit(self) -> Result<(), postgres::Error> {
        self.tx.commit()
    }
}

impl Sql for Tx<'_> {
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, postgres::Error> {
        let statement = prepare(self.prepared, &mut self.tx, sql)?;
        self.tx.query(&statement, params)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let statement = prepare(self.prepared, &mut self.tx, sql)?;
        self.tx.execute(&statement, params)
    }

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error> {
        let statement = prepare(self.prepared, &mut self.tx, sql)?;
        self.tx.query_one(&statement, params)
    }
}

/// Set on every pooled connection before its first statement.
///
/// `enable_seqscan = off`: every statement the store runs reaches `jobs` through an index
/// (claims through `jobs_ready`, outcomes and writes by primary key, lists by their filter's
/// index), and a sequential scan of it is always a misjudgement of the planner's. Without
/// statistics (no ANALYZE; without autovacuum none runs) and pricing each probe as a disk
/// seek, it judged a scan of the whole table cheaper than probing a batch's ids once the
/// batch was a few percent of the table: at 40,000 jobs, writing back a batch of 300
/// claimed jobs read all 40,000 (20–40 ms a batch, growing with the table), and a generic
/// plan made while the table was small kept doing so for the connection's life. Disabled,
/// the index is taken wherever one applies; a table with none is still scanned. (A join may
/// still walk an index whole: the statements that touch a batch of jobs name their ids,
/// `id = ANY($1)`, so the index is read for those ids only; see `rows::save_jobs`.)
///
/// `jit = off`: a disabled path is priced high, not removed, so a statement that must scan
/// (the few rows of `job_counts`) crossed the threshold for compiling itself: 120 ms of JIT
/// for a 0.3 ms query. The store's statements are short; none gains from JIT.
pub const SESSION_SETTINGS: &str = "SET enable_seqscan = off; SET jit = off";

/// Opens [`Conn`]s for the pool and checks them.
pub struct Manager {
    pub config: Config,
    pub tls: Tls,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.tls.connect(&self.config)?;
        client.batch_execute(SESSION_SETTINGS)?;
        Ok(Conn { client, prepared: HashMap::new() })
    }

    /// An empty query: the cheapest round trip that proves the connection works.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
