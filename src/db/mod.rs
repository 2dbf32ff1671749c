//! One connection type over PostgreSQL and SQLite, its pool and migrations.

mod breaker;
mod error;
mod group;
mod listen;
mod pool;
pub mod replay;
pub mod schema;
mod timestamp;
mod transaction;

use diesel::{
    connection::SimpleConnection,
    pg::PgConnection,
    prelude::*,
    r2d2::{self, ManageConnection, R2D2Connection},
    sqlite::SqliteConnection,
};

pub use error::DbError;
pub use group::{batches, connection_for, write_together};
pub use listen::{Listener, PING_EVERY, notify};
pub use pool::{
    CONNECTION_WAIT, DbPool, InTurn, build_pool, ping, read, run, run_migrations, run_migrations_on,
};
pub use timestamp::{MaybeStamp, Stamp};
pub use transaction::{single_write, write_transaction};

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for replicas that share one database.
    Pg(PgConnection),
    /// An embedded SQLite file, for one process.
    Sqlite(SqliteConnection),
}

/// A database URL whose backend is known.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`, passed to libpq as is.
    Postgres(String),
    /// A file path, from `sqlite://PATH`, `file:` or a bare path.
    Sqlite(String),
}

impl std::fmt::Debug for DatabaseUrl {
    // A PostgreSQL URL may hold a password: show the backend only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres(_) => f.write_str("DatabaseUrl::Postgres(..)"),
            Self::Sqlite(path) => write!(f, "DatabaseUrl::Sqlite({path:?})"),
        }
    }
}

impl DatabaseUrl {
    /// Picks the backend from the scheme; anything without a scheme is a SQLite path.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.starts_with("file:") {
            url
        } else if url.contains("://") {
            return Err(format!(
                "unsupported scheme in {:?}: use sqlite://PATH, a file path, or postgres://…",
                url.split("://").next().unwrap_or_default()
            ));
        } else {
            url
        };
        if path.is_empty() {
            return Err("the SQLite path is empty".into());
        }
        if path == ":memory:" {
            return Err(
                ":memory: gives every pooled connection its own empty database; use a file".into(),
            );
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }
}

/// How long a SQLite statement waits for another process's lock: 10 s.
const SQLITE_WAIT_FOR_LOCKS: &str = "PRAGMA busy_timeout = 10000";

/// Opens connections of the backend the URL names, so that its real error
/// reaches the user (diesel's generic `establish` hides it).
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    breaker: std::sync::Arc<breaker::Breaker>,
}

impl ConnectionManager {
    /// A manager for `url`, telling `breaker` whether connections succeed.
    pub fn new(url: DatabaseUrl, breaker: std::sync::Arc<breaker::Breaker>) -> Self {
        Self { url, breaker }
    }

    fn connect(&self) -> ConnectionResult<DbConnection> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; the busy timeout makes
                // concurrent writers queue instead of failing with "database is
                // locked". It comes first: switching to WAL takes a lock too.
                // Each pooled connection keeps at most 256 KiB of pages (not
                // SQLite's 2 MiB): the kernel's page cache holds the file once
                // for all of them, and the b-tree's inner pages, the ones read
                // on every lookup, fit.
                conn.batch_execute(&format!(
                    "{SQLITE_WAIT_FOR_LOCKS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                     PRAGMA cache_size = -256;",
                ))
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let connected = ConnectionManager::connect(self);
        match &connected {
            Ok(_) => self.breaker.record_success(),
            Err(_) => self.breaker.record_failure(),
        }
        connected.map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        let cases = [
            (
                "sqlite://usergate.db",
                Ok(DatabaseUrl::Sqlite("usergate.db".into())),
            ),
            (
                "sqlite:///var/lib/u.db",
                Ok(DatabaseUrl::Sqlite("/var/lib/u.db".into())),
            ),
            ("data/u.db", Ok(DatabaseUrl::Sqlite("data/u.db".into()))),
            (
                "postgres://u@h/db",
                Ok(DatabaseUrl::Postgres("postgres://u@h/db".into())),
            ),
            (
                "postgresql://h/db",
                Ok(DatabaseUrl::Postgres("postgresql://h/db".into())),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(DatabaseUrl::parse(input), expected, "{input}");
        }
        for bad in ["mysql://h/db", "sqlite://", ":memory:", "sqlite://:memory:"] {
            assert!(DatabaseUrl::parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn sqlite_keeps_one_plan_per_prepared_statement() {
        // Set in .cargo/config.toml: without it, every `.first()` and page
        // is parsed and planned again on each run, its bound LIMIT being a
        // parameter the plan looked at.
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let qpsg: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "sqlite_compileoption_used('ENABLE_QPSG')",
        ))
        .get_result(&mut conn)
        .expect("compile options");
        assert_eq!(
            qpsg, 1,
            "the bundled SQLite is built with SQLITE_ENABLE_QPSG"
        );
    }

    #[test]
    fn a_sqlite_connection_keeps_a_quarter_megabyte_of_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("t.db").display().to_string());
        let manager = ConnectionManager::new(url, std::sync::Arc::default());
        let Ok(DbConnection::Sqlite(mut conn)) = manager.connect() else {
            panic!("a SQLite connection");
        };
        let kib: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "(SELECT cache_size FROM pragma_cache_size)",
        ))
        .get_result(&mut conn)
        .expect("cache_size");
        assert_eq!(kib, -256, "negative: KiB, not pages");
    }

    #[test]
    fn debug_hides_postgres_credentials() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").expect("valid");
        assert!(!format!("{url:?}").contains("secret"));
    }
}
