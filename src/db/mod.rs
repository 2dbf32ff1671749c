//! One connection type over PostgreSQL and SQLite, its pool and migrations.

pub mod schema;

use std::time::Duration;

use diesel::{
    connection::SimpleConnection,
    pg::PgConnection,
    prelude::*,
    r2d2::{self, ManageConnection, R2D2Connection},
    sqlite::SqliteConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for replicas that share one database.
    Pg(PgConnection),
    /// An embedded SQLite file, for one process.
    Sqlite(SqliteConnection),
}

/// The pool every request borrows from.
pub type DbPool = r2d2::Pool<ConnectionManager>;

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

/// Opens connections of the backend the URL names, so that its real error
/// reaches the user (diesel's generic `establish` hides it).
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    fn connect(&self) -> ConnectionResult<DbConnection> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers run beside the writer; the busy timeout makes
                // concurrent writers queue instead of failing with "database is
                // locked". It comes first: switching to WAL takes a lock too.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
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
        ConnectionManager::connect(self).map_err(r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had (pool timeout, server down).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Builds the pool without connecting; connections are opened on demand, so
/// after start-up (which runs the migrations) the server rides out outages
/// and `/readyz` tells when the database answers.
pub fn build_pool(url: &DatabaseUrl, size: u32) -> DbPool {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(3))
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(url.clone()))
}

/// Runs pending migrations on one connection of the pool.
pub fn run_migrations(pool: &DbPool) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    run_migrations_on(&mut conn)
}

/// Runs the backend's pending migrations; on PostgreSQL under an advisory
/// lock, so replicas starting together don't race.
pub fn run_migrations_on(conn: &mut DbConnection) -> Result<(), DbError> {
    let migration_error =
        |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Pg(pg) => {
            // The key is arbitrary but the same in every replica. No digit
            // separators: PostgreSQL before 16 refuses `7_590_…` as a literal.
            diesel::sql_query("SELECT pg_advisory_lock(7590944467386593637)").execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(migration_error);
            diesel::sql_query("SELECT pg_advisory_unlock(7590944467386593637)").execute(pg)?;
            result
        }
        // BEGIN IMMEDIATE takes the write lock before the pending list is read,
        // so processes starting together on one file migrate one after the
        // other instead of both creating the tables.
        DbConnection::Sqlite(sqlite) => sqlite.immediate_transaction(|sqlite| {
            sqlite
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|_| ())
                .map_err(migration_error)
        }),
    }
}

/// One round trip to the database, for readiness.
pub fn ping(pool: &DbPool) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    conn.ping().map_err(DbError::Query)
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
    fn debug_hides_postgres_credentials() {
        let url = DatabaseUrl::parse("postgres://u:secret@h/db").expect("valid");
        assert!(!format!("{url:?}").contains("secret"));
    }
}
