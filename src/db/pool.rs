//! The pool, the one way to run work on it, and migrations.

use std::time::Duration;

use actix_web::web;
use diesel::{RunQueryDsl, r2d2, r2d2::R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{ConnectionManager, DatabaseUrl, DbConnection, DbError, DbPool};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

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

/// Runs `f` with a pooled connection on the blocking pool, off the workers.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    web::block(move || f(&mut *pool.get()?))
        .await
        .map_err(DbError::Interrupted)?
}

/// Runs pending migrations on one connection of the pool.
pub fn run_migrations(pool: &DbPool) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    run_migrations_on(&mut conn)
}

/// Runs the backend's pending migrations; on PostgreSQL under an advisory
/// lock, so replicas starting together don't race.
pub fn run_migrations_on(conn: &mut DbConnection) -> Result<(), DbError> {
    match conn {
        DbConnection::Pg(pg) => {
            // The key is arbitrary but the same in every replica. No digit
            // separators: PostgreSQL before 16 refuses `7_590_…` as a literal.
            diesel::sql_query("SELECT pg_advisory_lock(7590944467386593637)").execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(DbError::Migration);
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
                .map_err(DbError::Migration)
        }),
    }
}

/// One round trip to the database, for readiness.
pub fn ping(pool: &DbPool) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    conn.ping().map_err(DbError::Query)
}
