//! PostgreSQL errors in the store's terms: a lost or refused connection is `Unavailable`
//! (the call may succeed later and nothing it asked for was acknowledged), anything else a
//! `Database` error carrying the server's message.

use crate::store::error::StoreError;

/// SQLSTATE classes and codes that mean the database is away rather than the request wrong:
/// connection exceptions (08), the server shutting down or starting (57P01–57P03), too many
/// connections (53300), and a read-only standby (25006).
fn is_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
        }
        // No SQLSTATE: an I/O error on the socket, a timeout, a failed connect.
        None => true,
    }
}

/// The error in words: the server's message (with its detail) when it sent one.
pub fn words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        // The driver's own words ("error connecting to server") name no cause: add the
        // underlying one ("Connection refused (os error 111)").
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

pub fn db_error(e: postgres::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("PostgreSQL: {}", words(&e)))
    } else {
        StoreError::Database(words(&e))
    }
}

/// A connection the pool could not give: the database is down or unreachable.
pub fn pool_error(e: r2d2::Error, shown: &str) -> StoreError {
    StoreError::Unavailable(format!("no connection to PostgreSQL at {shown}: {e}"))
}

/// Whether `e` is a unique-index violation (another pending job holds the key).
pub fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}
