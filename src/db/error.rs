//! Errors of the database layer; `crate::error` maps them to HTTP, once.

use std::sync::Arc;

use diesel::{r2d2, result::DatabaseErrorKind};

/// A database operation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (pool timeout, server down).
    #[error("database unavailable")]
    Unavailable(#[source] r2d2::PoolError),
    /// Every connection stayed in use while the caller waited for one.
    #[error("every database connection stayed busy")]
    Busy,
    /// A dedicated (unpooled) connection could not be opened.
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    /// The database is known to be down; not tried again before the next probe.
    #[error("the database is down (no connection could be made moments ago)")]
    Down,
    /// A query failed.
    #[error("a query failed")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking task running the work was cancelled or panicked.
    #[error("the database task was interrupted")]
    Interrupted(#[source] actix_web::error::BlockingError),
    /// A batch thread (SQLite's writer, PostgreSQL's first logins) dropped
    /// the write: it panicked.
    #[error("the batch thread dropped the write")]
    WriterStopped,
    /// The write was queued with others whose batch could not be written
    /// (no connection, or the server went away).
    #[error("the write was not committed: its batch could not be written")]
    Batch(#[source] Arc<DbError>),
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Unavailable(e)
    }
}

impl DbError {
    /// Whether the database is out of reach (as opposed to a query being wrong).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::Error;
        match self {
            Self::Unavailable(_) | Self::Busy | Self::Connect(_) | Self::Down => true,
            Self::Batch(cause) => cause.is_unavailable(),
            Self::Query(Error::BrokenTransactionManager) => true,
            Self::Query(Error::DatabaseError(kind, _)) => matches!(
                kind,
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
            ),
            _ => false,
        }
    }

    /// Whether the row asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Query(diesel::result::Error::NotFound))
    }

    /// Whether a unique index refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Query(diesel::result::Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}
