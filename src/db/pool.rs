//! The pool, the one way to run work on it, and migrations.

use std::{sync::Arc, time::Duration};

use actix_web::web;
use diesel::{RunQueryDsl, connection::SimpleConnection, r2d2, r2d2::R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{
    ConnectionManager, DatabaseUrl, DbConnection, DbError, SQLITE_WAIT_FOR_LOCKS,
    breaker::{Breaker, PROBE_TIMEOUT},
    group::Writer,
};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a caller waits for a connection before it is answered 503.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(3);

/// The pool every request borrows from. Once the database is known to be
/// down, callers get [`DbError::Down`] at once instead of each waiting for
/// the pool's timeout; one caller per probe interval tries it again.
#[derive(Clone)]
pub struct DbPool {
    inner: r2d2::Pool<ConnectionManager>,
    breaker: Arc<Breaker>,
    /// One permit per connection, handed out in arrival order: r2d2 keeps
    /// no queue, so a newcomer could take a connection just given back
    /// ahead of a caller that has waited long, and every waiter would hold
    /// a blocking thread meanwhile.
    turns: Arc<Semaphore>,
    /// Reads may run on the calling worker ([`read_here`]).
    reads_here: bool,
    /// SQLite's group commit ([`write_together`](super::write_together)).
    writer: Option<Arc<Writer>>,
}

impl DbPool {
    /// A connection, unless the database is known to be down.
    pub fn get(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, DbError> {
        self.admit()?;
        self.inner.get().map_err(DbError::Unavailable)
    }

    /// A connection for a thread of the pool's own (a batch's), taken in
    /// turn with the callers of [`run`]: this thread blocks until those that
    /// came first had theirs, so no caller holding a turn waits for the
    /// connection this thread took. It waits as long as the callers ahead
    /// hold their turns (their work has no time limit), then up to
    /// [`CONNECTION_WAIT`] for the connection.
    pub fn get_in_turn(&self) -> Result<InTurn, DbError> {
        self.admit()?;
        // The semaphore is never closed.
        let turn = futures_executor::block_on(self.turns.clone().acquire_owned())
            .map_err(|_| DbError::Busy)?;
        Ok(InTurn {
            conn: self.inner.get()?,
            _turn: turn,
        })
    }

    /// `Down` at once while the database is known to be down; then, once per
    /// probe interval, a probe on its own thread finds out whether it is back,
    /// so no caller ever waits for it.
    pub(super) fn admit(&self) -> Result<(), DbError> {
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

    /// A turn with a connection, once the callers that came first had
    /// theirs; [`DbError::Busy`] after [`CONNECTION_WAIT`].
    async fn turn(&self) -> Result<OwnedSemaphorePermit, DbError> {
        match tokio::time::timeout(CONNECTION_WAIT, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(turn),
            // The semaphore is never closed.
            Ok(Err(_)) | Err(_) => Err(DbError::Busy),
        }
    }

    /// Connections open and idle.
    pub fn state(&self) -> r2d2::State {
        self.inner.state()
    }

    /// The pool's size.
    pub fn max_size(&self) -> u32 {
        self.inner.max_size()
    }

    /// Tells the breaker when `error`, met on a connection in use, shows
    /// that the server went away.
    pub fn note(&self, error: &DbError) {
        if error.is_unavailable() {
            self.breaker.record_failure();
        }
    }

    /// Whether the database is PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        !self.reads_here
    }

    /// Its group-commit writer (SQLite only).
    pub(super) fn writer(&self) -> Option<&Writer> {
        self.writer.as_deref()
    }

    /// The same connections, without the writer: for the writer's own thread.
    pub(super) fn without_writer(&self) -> Self {
        Self {
            writer: None,
            ..self.clone()
        }
    }
}

/// A pooled connection and the turn it was taken in, both given back when
/// dropped ([`DbPool::get_in_turn`]).
pub struct InTurn {
    conn: r2d2::PooledConnection<ConnectionManager>,
    _turn: OwnedSemaphorePermit,
}

impl std::ops::Deref for InTurn {
    type Target = DbConnection;

    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for InTurn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
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
        .connection_timeout(CONNECTION_WAIT)
        .test_on_check_out(false)
        .build_unchecked(ConnectionManager::new(url.clone(), breaker.clone()));
    let sqlite = matches!(url, DatabaseUrl::Sqlite(_));
    DbPool {
        inner,
        breaker,
        turns: Arc::new(Semaphore::new(size as usize)),
        reads_here: sqlite,
        writer: sqlite.then(Arc::default),
    }
}

/// Runs `f` with a pooled connection on the blocking pool, off the workers,
/// once the callers that came first had their turn; waiting takes no
/// thread. While the database is known to be down it answers at once, on
/// the worker.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    pool.admit()?;
    let turn = pool.turn().await?;
    let pool = pool.clone();
    web::block(move || {
        let _turn = turn;
        let result = f(&mut *pool.inner.get().map_err(DbError::Unavailable)?);
        if let Err(e) = &result {
            pool.note(e);
        }
        result
    })
    .await
    .map_err(DbError::Interrupted)?
}

/// Reads with `f` on the calling worker when it can ([`read_here`]: SQLite,
/// a connection idle), else through [`run`].
pub async fn read<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    F: Fn(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    match read_here(pool, &f) {
        Some(Ok(read)) => Ok(read),
        _ => run(pool, f).await,
    }
}

/// Runs the read `f` on the calling worker, without the two thread switches
/// of [`run`]'s hop to the blocking pool, when that cannot stall the worker:
/// on SQLite, whose reads of a few rows take microseconds and do not wait
/// for a writer (WAL), with a connection idle in the pool, and with SQLite's
/// busy timeout off meanwhile: should SQLite ask the read to wait (another
/// process's crash recovery, say), it fails at once instead. `None` when it
/// did not run (PostgreSQL, where a read is a round trip; no idle
/// connection; the database known to be down).
fn read_here<T>(
    pool: &DbPool,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Option<Result<T, DbError>> {
    if !pool.reads_here || pool.breaker.is_down() {
        return None;
    }
    let mut conn = pool.inner.try_get()?;
    conn.batch_execute("PRAGMA busy_timeout = 0").ok()?;
    let read = f(&mut conn);
    // Setting it touches no file, so it does not fail in practice; if it
    // did, this connection's writes would fail at once on another process's
    // lock instead of waiting for it.
    if let Err(e) = conn.batch_execute(SQLITE_WAIT_FOR_LOCKS) {
        log::warn!("a SQLite connection could not restore its busy timeout: {e}");
    }
    Some(read)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_pool(dir: &tempfile::TempDir, size: u32) -> DbPool {
        let path = dir.path().join("t.db").display().to_string();
        build_pool(&DatabaseUrl::Sqlite(path), size)
    }

    fn read_one(pool: &DbPool) -> Option<Result<i32, DbError>> {
        read_here(pool, |conn| {
            Ok(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                    .get_result(conn)?,
            )
        })
    }

    #[test]
    fn sqlite_reads_run_here_only_with_a_connection_idle() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = sqlite_pool(&dir, 1);
        assert!(read_one(&pool).is_none(), "connections open on demand");
        drop(pool.get().expect("the one connection"));
        assert_eq!(read_one(&pool).map(Result::ok), Some(Some(1)));
        let held = pool.get().expect("the one connection");
        assert!(read_one(&pool).is_none(), "no idle connection: not here");
        drop(held);
        assert!(read_one(&pool).is_some(), "idle again");
        // The read ran without a busy timeout; the connection has it back.
        let timeout: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "(SELECT timeout FROM pragma_busy_timeout)",
        ))
        .get_result(&mut *pool.get().expect("the one connection"))
        .expect("busy timeout");
        assert_eq!(timeout, 10_000);
    }

    #[test]
    fn callers_wait_for_a_connection_in_arrival_order_without_holding_a_thread() {
        use std::sync::{Mutex, mpsc};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .max_blocking_threads(2)
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = sqlite_pool(&dir, 1);
        runtime.block_on(async {
            let (release, held) = mpsc::channel::<()>();
            let (holding, started) = tokio::sync::oneshot::channel();
            let spawn_run = |f: Box<dyn FnOnce() + Send>| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    run(&pool, move |_| {
                        f();
                        Ok(())
                    })
                    .await
                })
            };
            let holder = spawn_run(Box::new(move || {
                let _ = holding.send(());
                let _ = held.recv();
            }));
            started.await.expect("the holder has the one connection");
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut waiters = Vec::new();
            for i in 1..=3 {
                let order = order.clone();
                waiters.push(spawn_run(Box::new(move || {
                    order.lock().expect("order").push(i);
                })));
                // Let it join the queue before the next one comes.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Two blocking threads: one is the holder's; waiting took none.
            let other_work = tokio::task::spawn_blocking(|| ());
            tokio::time::timeout(Duration::from_secs(2), other_work)
                .await
                .expect("other blocking work runs while callers wait")
                .expect("it ran");
            release.send(()).expect("the holder waits");
            holder.await.expect("holder").expect("its run");
            for waiter in waiters {
                waiter.await.expect("waiter").expect("its run");
            }
            assert_eq!(*order.lock().expect("order"), [1, 2, 3]);
        });
    }

    #[test]
    fn postgres_reads_are_never_made_on_the_worker() {
        // Never connected: it may not even try.
        let url = DatabaseUrl::Postgres("postgres://nobody@127.0.0.1:1/none".into());
        let pool = build_pool(&url, 1);
        assert!(read_one(&pool).is_none());
    }
}
