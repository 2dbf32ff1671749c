//! Transactions that write, with the locking each backend needs.

use diesel::{
    Connection,
    connection::{AnsiTransactionManager, TransactionManager},
    result::Error,
};

use super::DbConnection;

/// Runs `f` in a transaction meant to write. On SQLite it starts with
/// `BEGIN IMMEDIATE`, which takes the write lock before the first read: a
/// check made inside (a tombstone, say) cannot be overtaken by another
/// writer, and the upgrade from reader to writer can never fail with "database
/// is locked". On PostgreSQL it is an ordinary (read committed) transaction.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<Error>,
{
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
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
