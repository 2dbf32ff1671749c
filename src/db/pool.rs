//! The pool, the one way to run work on it, and migrations.

use std::{sync::Arc, time::Duration};

use actix_web::web;
use diesel::{RunQueryDsl, r2d2, r2d2::R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{
    ConnectionManager, DatabaseUrl, DbConnection, DbError,
    breaker::{Breaker, PROBE_TIMEOUT},
};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The pool every request borrows from. Once the database is known to be
/// down, callers get [`DbError::Down`] at once instead of each waiting for
/// the pool's timeout; one caller per probe interval tries it again.
#[derive(Clone)]
pub struct DbPool {
    inner: r2d2::Pool<ConnectionManager>,
    breaker: Arc<Breaker>,
}

impl DbPool {
    /// A connection, unless the database is known to be down.
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, DbError> {
        self.admit()?;
        self.inner.get().map_err(DbError::Unavailable)
    }

    /// `Down` at once while the database is known to be down; then, once per
    /// probe interval, a probe on its own thread finds out whether it is back,
    /// so no caller ever waits for it.
    fn admit(&self) -> Result<(), DbError> {
        if !self.breaker.is_down() {
            return Ok(());
        }
        if self.breaker.admit() {
            let pool = self.inner.clone();
            let breaker = self.breaker.clone();
            std::thread::spawn(move || {
                if pool.get_timeout(PROBE_TIMEOUT).is_ok() {
                    breaker.record_success();
                }
            });
        }
        Err(DbError::Down)
    }

    /// Connections open and idle.
    pub fn state(&self) -> r2d2::State {
        self.inner.state()
    }

    /// The pool's size.
    pub fn max_size(&self) -> u32 {
        self.inner.max_size()
    }
}

/// Builds the pool without connecting; connections are opened on demand, so
/// after start-up (which runs the migrations) the server rides out outages
/// and `/readyz` tells when the database answers.
pub fn build_pool(url: &DatabaseUrl, size: u32) -> DbPool {
    let breaker = Arc::new(Breaker::default());
    let inner = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(3))
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(url.clone(), breaker.clone()));
    DbPool { inner, breaker }
}

/// Runs `f` with a pooled connection on the blocking pool, off the workers.
/// While the database is known to be down it answers at once, on the worker.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    pool.admit()?;
    let pool = pool.clone();
    web::block(move || {
        let result = f(&mut *pool.inner.get().map_err(DbError::Unavailable)?);
        if result.as_ref().is_err_and(DbError::is_unavailable) {
            // A connection in use was lost: the server went away.
            pool.breaker.record_failure();
        }
        result
    })
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

/// One round trip to the database, for readiness: it tells the truth even
/// while the database is known to be down, waiting at most a probe's time.
pub async fn ping(pool: &DbPool) -> Result<(), DbError> {
    let pool = pool.clone();
    web::block(move || {
        let mut conn = if pool.breaker.is_down() {
            pool.inner.get_timeout(PROBE_TIMEOUT)
        } else {
            pool.inner.get()
        }
        .map_err(DbError::Unavailable)?;
        conn.ping().map_err(DbError::Query)?;
        pool.breaker.record_success();
        Ok(())
    })
    .await
    .map_err(DbError::Interrupted)?
}
