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
/// sleeping. Inside another write transaction (a batch of
/// [`write_together`](super::write_together)) it is a savepoint, under the
/// turn that one holds. On PostgreSQL it is an ordinary (read committed)
/// transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<Error>,
{
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    if sqlite_depth(sqlite) != Some(0) {
        return conn.transaction(f);
    }
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
    // A broken transaction manager takes no turn either: better SQLite's
    // busy handler than waiting forever for a turn this thread may hold.
    let _turn = match conn {
        DbConnection::Sqlite(sqlite) => (sqlite_depth(sqlite) == Some(0)).then(sqlite_turn),
        DbConnection::Pg(_) => None,
    };
    f(conn)
}

/// How many of diesel's transactions are open on `sqlite` (0: none, 2: a
/// savepoint in a transaction); `None` when its transaction manager is broken.
pub(super) fn sqlite_depth(sqlite: &mut SqliteConnection) -> Option<u32> {
    <AnsiTransactionManager as TransactionManager<SqliteConnection>>::transaction_manager_status_mut(
        sqlite,
    )
    .transaction_depth()
    .ok()
    .map(|depth| depth.map_or(0, |d| d.get()))
}
