//! Transactions that write, with the locking each backend needs.

use std::sync::{Mutex, MutexGuard, PoisonError};

use diesel::{
    Connection, SqliteConnection,
    connection::{AnsiTransactionManager, TransactionManager},
    result::Error,
};

use super::DbConnection;

/// SQLite writers of this process queue here, so that SQLite's busy
/// handler (which sleeps 1 to 100 ms between tries) only ever waits for
/// another process. One per process, not per file: a server serves one
/// file, and a write holds it for tens of microseconds.
static SQLITE_WRITER: Mutex<()> = Mutex::new(());

/// This process's turn to write to SQLite, until the guard is dropped. The
/// lock protects no data: a panicking holder left nothing half done.
fn sqlite_turn() -> MutexGuard<'static, ()> {
    SQLITE_WRITER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` in a transaction meant to write. On SQLite it starts with
/// `BEGIN IMMEDIATE`, which takes the write lock before the first read: a
/// check made inside (a tombstone, say) cannot be overtaken by another
/// writer, and the upgrade from reader to writer can never fail with "database
/// is locked"; this process's writers take turns before that, without
/// sleeping. On PostgreSQL it is an ordinary (read committed) transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<Error>,
{
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    let _turn = sqlite_turn();
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    // The multi-backend connection's transaction manager delegates to the
    // SQLite one just begun, so commit and rollback go through it.
    match f(conn) {
        Ok(value) => {
            <DbConnection as TransactionManager<DbConnection>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => {
            match <DbConnection as TransactionManager<DbConnection>>::rollback_transaction(conn) {
                Ok(()) | Err(Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            }
        }
    }
}

/// Runs `f`, one statement that writes in its own (implicit) transaction:
/// on SQLite after this process's other writers, as [`write_transaction`]
/// does (inside one, which holds the turn already, at once); on PostgreSQL
/// as it is, one round trip.
pub fn single_write<T, F>(conn: &mut DbConnection, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut DbConnection) -> Result<T, Error>,
{
    let _turn = match conn {
        DbConnection::Sqlite(sqlite) => (!in_transaction(sqlite)).then(sqlite_turn),
        DbConnection::Pg(_) => None,
    };
    f(conn)
}

/// Whether `sqlite` is in a transaction begun by diesel. A broken
/// transaction manager counts as one: better SQLite's busy handler than
/// waiting forever for a turn this thread may hold.
fn in_transaction(sqlite: &mut SqliteConnection) -> bool {
    <AnsiTransactionManager as TransactionManager<SqliteConnection>>::transaction_manager_status_mut(
        sqlite,
    )
    .transaction_depth()
    .map_or(true, |depth| depth.is_some())
}
