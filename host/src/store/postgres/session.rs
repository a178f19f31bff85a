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

/// Opens [`Conn`]s for the pool and checks them.
pub struct Manager {
    pub config: Config,
    pub tls: Tls,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn { client: self.tls.connect(&self.config)?, prepared: HashMap::new() })
    }

    /// An empty query: the cheapest round trip that proves the connection works.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}
