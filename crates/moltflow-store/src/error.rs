//! The store's own error: callers ask what kind of failure it was (the database is away, the pool
//! is busy, a unique key was taken) without depending on sqlx.

use std::fmt;

/// What went wrong, in the terms a caller decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No connection within the pool's acquire timeout: every one is in use, or none can be
    /// opened because the database is unreachable (the pool keeps trying until the timeout).
    /// Retry shortly.
    Busy,
    /// The database cannot be reached or cannot write (connection gone or refused, SQLite
    /// read-only, disk full, I/O error; PostgreSQL shutting down or out of connections or disk).
    /// The same request may succeed once it is back.
    Unavailable,
    /// A unique constraint refused the write (an email or a key already taken).
    UniqueViolation,
    /// Anything else: a bug or corrupt data, never the caller's fault.
    Other,
}

#[derive(Debug)]
pub struct StoreError(sqlx::Error);

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// A row the store read does not decode into its typed value (a bad enum string, say).
    pub fn corrupt(what: impl Into<String>) -> StoreError {
        StoreError(sqlx::Error::Protocol(format!("corrupt: {}", what.into())))
    }

    /// Converts the result of a sqlx call (used by `on_conn!`).
    #[doc(hidden)]
    pub fn lift<T>(result: std::result::Result<T, sqlx::Error>) -> Result<T> {
        result.map_err(StoreError)
    }

    pub fn kind(&self) -> StoreErrorKind {
        use sqlx::Error as E;
        match &self.0 {
            E::PoolTimedOut => StoreErrorKind::Busy,
            E::Io(_) | E::Tls(_) | E::PoolClosed | E::WorkerCrashed => StoreErrorKind::Unavailable,
            E::Database(db) if db.is_unique_violation() => StoreErrorKind::UniqueViolation,
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                let unavailable = if code.len() == 5 {
                    // PostgreSQL SQLSTATE classes: 08 connection, 53 insufficient resources (disk
                    // full, too many connections), 57P operator intervention (shutting down).
                    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
                } else {
                    // SQLite (extended) result codes, by primary code: BUSY 5, LOCKED 6,
                    // READONLY 8, IOERR 10, FULL 13, CANTOPEN 14.
                    code.parse::<u32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
                };
                if unavailable { StoreErrorKind::Unavailable } else { StoreErrorKind::Other }
            }
            // A broken connection surfaces as a protocol error on PostgreSQL; a corrupt row is
            // built with `corrupt` and stays `Other`.
            E::Protocol(message) if !message.starts_with("corrupt:") => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        self.kind() == StoreErrorKind::UniqueViolation
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError(err)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
