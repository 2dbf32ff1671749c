//! Group commit for SQLite: the writes of many requests in one transaction.
//!
//! SQLite has one writer at a time. Taking turns write by write makes the
//! blocking threads queue on the writer lock (a thread switch each) and pays
//! a commit (its WAL frames, and every other connection's page cache
//! discarded) per write. Here one thread per pool drains the writes waiting,
//! runs each in its own savepoint inside one `BEGIN IMMEDIATE` transaction,
//! commits once, and only then answers each caller: one write's failure
//! rolls back its savepoint only, and when the batch itself cannot commit,
//! each write is tried again alone, so every caller gets its own answer.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::OnceLock,
};

use diesel::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{DbConnection, DbError, DbPool, write_transaction};

/// Writes committed together at most.
const MAX_BATCH: usize = 64;

/// Writes waiting at most; callers beyond it wait to be queued.
const QUEUE: usize = 1024;

/// The writer thread of one pool, started by its first write. The thread
/// holds a pool without it, so dropping the pool's last clone stops it.
#[derive(Default)]
pub struct Writer(OnceLock<Option<mpsc::Sender<Box<dyn Write>>>>);

impl Writer {
    /// The queue of `pool`'s writer thread, started now if need be; `None`
    /// when no thread could be started.
    fn queue(&self, pool: &DbPool) -> Option<&mpsc::Sender<Box<dyn Write>>> {
        self.0.get_or_init(|| start(pool.without_writer())).as_ref()
    }
}

/// Runs the write `work`: on SQLite in a savepoint of one transaction with
/// the writes other requests queue meanwhile (so `work` may run twice: the
/// first time in a batch that could not commit), where
/// [`single_write`](super::single_write) takes no turn of its own (and
/// `work` must not begin a [`write_transaction`], whose turn the batch
/// holds); on PostgreSQL, or without a writer thread, as [`run`](super::run)
/// does.
pub async fn write_together<T, F>(pool: &DbPool, work: F) -> Result<T, DbError>
where
    F: Fn(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    let Some(writer) = pool.writer().and_then(|writer| writer.queue(pool)) else {
        return super::run(pool, work).await;
    };
    pool.admit()?;
    let (answer, answered) = oneshot::channel();
    let pending = Box::new(Pending {
        work,
        result: None,
        answer,
    });
    writer
        .send(pending)
        .await
        .map_err(|_| DbError::WriterStopped)?;
    answered.await.map_err(|_| DbError::WriterStopped)?
}

/// A queued write, whatever its result type.
trait Write: Send {
    /// Runs the write in its own savepoint of the batch's transaction.
    fn run(&mut self, conn: &mut DbConnection);
    /// Answers the caller: the write's result once the batch committed, or
    /// why it could not commit.
    fn answer(self: Box<Self>, not_committed: Option<DbError>);
}

struct Pending<T, F> {
    work: F,
    result: Option<Result<T, DbError>>,
    answer: oneshot::Sender<Result<T, DbError>>,
}

impl<T, F> Write for Pending<T, F>
where
    F: Fn(&mut DbConnection) -> Result<T, DbError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        self.result = Some(conn.transaction(|conn| (self.work)(conn)));
    }

    fn answer(self: Box<Self>, not_committed: Option<DbError>) {
        let result = match (not_committed, self.result) {
            (None, Some(result)) => result,
            (Some(e), _) => Err(e),
            // Never: a batch commits only after each of its writes ran.
            (None, None) => Err(DbError::WriterStopped),
        };
        // A caller that went away (its request was cancelled) needs no answer.
        let _ = self.answer.send(result);
    }
}

fn start(pool: DbPool) -> Option<mpsc::Sender<Box<dyn Write>>> {
    let (queue, mut waiting) = mpsc::channel::<Box<dyn Write>>(QUEUE);
    let spawned = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            // Ends when the pool, and with it the queue's sender, is dropped.
            while let Some(first) = waiting.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                // A write that panics drops its batch's answers (those
                // callers get `WriterStopped`), not the thread.
                if catch_unwind(AssertUnwindSafe(|| write(&pool, batch))).is_err() {
                    log::error!("a SQLite write panicked; its batch was not committed");
                }
            }
        });
    match spawned {
        Ok(_) => Some(queue),
        Err(e) => {
            log::warn!("no SQLite writer thread ({e}): writes take turns one by one");
            None
        }
    }
}

/// Commits `batch` and answers each write; when it cannot commit, each
/// write is tried alone, so that only a write that fails by itself fails.
fn write(pool: &DbPool, mut batch: Vec<Box<dyn Write>>) {
    match commit(pool, &mut batch) {
        Ok(()) => batch.into_iter().for_each(|w| w.answer(None)),
        Err(e) if batch.len() == 1 => {
            if let Some(alone) = batch.pop() {
                alone.answer(Some(e));
            }
        }
        Err(_) => batch.into_iter().for_each(|w| write(pool, vec![w])),
    }
}

fn commit(pool: &DbPool, batch: &mut [Box<dyn Write>]) -> Result<(), DbError> {
    let mut conn = pool.get()?;
    write_transaction(&mut conn, |conn| {
        batch.iter_mut().for_each(|w| w.run(conn));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::{path::Path, thread::sleep, time::Duration};

    use diesel::{RunQueryDsl, connection::SimpleConnection, sql_types::BigInt};
    use futures::{executor::block_on, future::join3};

    use super::*;
    use crate::db::{DatabaseUrl, build_pool, single_write};

    fn pool_with_tables(dir: &tempfile::TempDir) -> DbPool {
        let path = dir.path().join("t.db");
        let pool = build_pool(&DatabaseUrl::Sqlite(path.display().to_string()), 4);
        pool.get()
            .expect("connection")
            .batch_execute(
                "CREATE TABLE t (k TEXT PRIMARY KEY);
                 CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .expect("tables");
        pool
    }

    fn insert(conn: &mut DbConnection, key: &str) -> Result<(), DbError> {
        single_write(conn, |conn| {
            diesel::sql_query(format!("INSERT INTO t VALUES ('{key}')")).execute(conn)
        })?;
        Ok(())
    }

    fn count(conn: &mut DbConnection, key: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(format!("SELECT count(*) AS n FROM t WHERE k = '{key}'"))
            .get_result::<Count>(conn)
            .expect("count")
            .n
    }

    fn count_elsewhere(path: &Path, key: &str) -> i64 {
        let url = DatabaseUrl::Sqlite(path.display().to_string());
        count(&mut build_pool(&url, 1).get().expect("connection"), key)
    }

    /// Holds the writer while the writes after it queue up.
    fn slow_first(conn: &mut DbConnection) -> Result<(), DbError> {
        sleep(Duration::from_millis(100));
        insert(conn, "first")
    }

    #[test]
    fn writes_queued_meanwhile_commit_together_and_single_writes_take_no_turn_inside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let path = dir.path().join("t.db");
        let (first, a, b) = block_on(join3(
            write_together(&pool, slow_first),
            write_together(&pool, |conn| insert(conn, "a")),
            write_together(&pool, move |conn| {
                insert(conn, "b")?;
                Ok((count(conn, "a"), count_elsewhere(&path, "a")))
            }),
        ));
        first.expect("first");
        a.expect("a");
        // `b` sees `a`, which no other connection sees yet: one transaction.
        assert_eq!(b.expect("b"), (1, 0));
        let mut conn = pool.get().expect("connection");
        assert_eq!((count(&mut conn, "a"), count(&mut conn, "b")), (1, 1));
    }

    #[test]
    fn a_write_that_fails_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (first, bad, good) = block_on(join3(
            write_together(&pool, slow_first),
            write_together(&pool, |conn| {
                insert(conn, "bad")?;
                Err::<(), _>(DbError::Query(diesel::result::Error::NotFound))
            }),
            write_together(&pool, |conn| insert(conn, "good")),
        ));
        first.expect("first");
        assert!(bad.expect_err("bad").is_not_found());
        good.expect("good");
        let mut conn = pool.get().expect("connection");
        assert_eq!((count(&mut conn, "bad"), count(&mut conn, "good")), (0, 1));
    }

    #[test]
    fn a_batch_that_cannot_commit_is_written_again_one_by_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (first, orphan, good) = block_on(join3(
            write_together(&pool, slow_first),
            // A deferred foreign key: only the commit can refuse it.
            write_together(&pool, |conn| {
                diesel::sql_query("INSERT INTO child VALUES (42)").execute(conn)?;
                Ok(())
            }),
            write_together(&pool, |conn| insert(conn, "good")),
        ));
        first.expect("first");
        let refused = orphan.expect_err("no parent 42");
        assert!(
            matches!(
                refused,
                DbError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                    _
                ))
            ),
            "{refused:?}"
        );
        good.expect("good, written again alone");
        let mut conn = pool.get().expect("connection");
        assert_eq!(count(&mut conn, "good"), 1);
    }
}
