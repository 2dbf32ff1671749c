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
//!
//! The thread and its queue ([`batches`]) also serve PostgreSQL's sightings
//! (`users::sightings`) and DPoP proofs ([`replay`](super::replay)), a few
//! statements for each batch.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, OnceLock},
};

use diesel::Connection;
use tokio::sync::{mpsc, oneshot};

use super::{DbConnection, DbError, DbPool, InTurn, transaction::sqlite_depth, write_transaction};

/// Items (writes, rows) handled together at most.
const MAX_BATCH: usize = 64;

/// Items waiting at most; callers beyond it wait to be queued.
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
/// [`single_write`](super::single_write) takes no turn of its own and a
/// [`write_transaction`] is a savepoint under the batch's turn; on
/// PostgreSQL, or without a writer thread, as [`run`](super::run) does.
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
    /// Runs the write in its own savepoint of the batch's transaction;
    /// `false` when it panicked.
    fn run(&mut self, conn: &mut DbConnection) -> bool;
    /// Answers the caller: the write's result once the batch committed;
    /// otherwise its own failure, or else why the batch did not commit.
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
    fn run(&mut self, conn: &mut DbConnection) -> bool {
        let work = &self.work;
        let ran = catch_unwind(AssertUnwindSafe(|| conn.transaction(|conn| work(conn))));
        let panicked = ran.is_err();
        if panicked {
            log::error!("a SQLite write panicked; the others of its batch are written again");
        }
        self.result = Some(ran.unwrap_or(Err(DbError::WriterStopped)));
        !panicked
    }

    fn answer(self: Box<Self>, not_committed: Option<DbError>) {
        let result = match (not_committed, self.result) {
            (None, Some(result)) => result,
            (Some(_), Some(Err(own))) => Err(own),
            (Some(e), _) => Err(e),
            // Never: a batch commits only after each of its writes ran.
            (None, None) => Err(DbError::WriterStopped),
        };
        // A caller that went away (its request was cancelled) needs no answer.
        let _ = self.answer.send(result);
    }
}

fn start(pool: DbPool) -> Option<mpsc::Sender<Box<dyn Write>>> {
    batches("sqlite-writer", move |batch| write(&pool, batch))
        .inspect_err(|e| log::warn!("no SQLite writer thread ({e}): writes take turns one by one"))
        .ok()
}

/// A queue of [`QUEUE`] items drained by a thread of its own, which hands
/// `handle` whatever waits (up to [`MAX_BATCH`] items) at once: the more
/// callers queue while a batch is handled, the larger the next. The thread
/// ends when the queue's last sender is dropped.
pub fn batches<T: Send + 'static>(
    name: &str,
    mut handle: impl FnMut(Vec<T>) + Send + 'static,
) -> std::io::Result<mpsc::Sender<T>> {
    let (queue, mut waiting) = mpsc::channel::<T>(QUEUE);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            while let Some(first) = waiting.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                handle(batch);
            }
        })?;
    Ok(queue)
}

/// A connection, taken in turn, for the items of `batch` whose caller is
/// still waiting (`gone` tells those who gave up, before and after the wait
/// for it: a write made for a caller who went away may not be undone, a
/// recorded DPoP proof for one), or `None` when no caller is left.
pub fn connection_for<T>(
    pool: &DbPool,
    batch: &mut Vec<T>,
    gone: impl Fn(&T) -> bool,
) -> Result<Option<InTurn>, DbError> {
    batch.retain(|item| !gone(item));
    if batch.is_empty() {
        return Ok(None);
    }
    let conn = pool.get_in_turn()?;
    batch.retain(|item| !gone(item));
    Ok((!batch.is_empty()).then_some(conn))
}

/// Why a batch did not commit.
enum Failed {
    /// No connection, or no transaction (another process holds the write
    /// lock): no write ran, and trying them one by one would only wait again.
    NotBegun(DbError),
    /// A write ended the transaction (it panicked, or SQLite rolled back all
    /// of it), or the commit failed.
    NotCommitted(DbError),
}

/// Commits `batch` and answers each write. When the writes ran but could
/// not commit together, each is written again alone, so that only a write
/// that fails by itself fails.
fn write(pool: &DbPool, mut batch: Vec<Box<dyn Write>>) {
    match commit(pool, &mut batch) {
        Ok(()) => batch.into_iter().for_each(|w| w.answer(None)),
        Err(Failed::NotBegun(e)) => {
            let e = Arc::new(e);
            for w in batch {
                w.answer(Some(DbError::Batch(e.clone())));
            }
        }
        Err(Failed::NotCommitted(e)) if batch.len() == 1 => {
            if let Some(alone) = batch.pop() {
                alone.answer(Some(e));
            }
        }
        Err(Failed::NotCommitted(_)) => batch.into_iter().for_each(|w| write(pool, vec![w])),
    }
}

fn commit(pool: &DbPool, batch: &mut [Box<dyn Write>]) -> Result<(), Failed> {
    let mut conn = pool.get_in_turn().map_err(Failed::NotBegun)?;
    let mut began = false;
    write_transaction(&mut conn, |conn| {
        began = true;
        for w in batch.iter_mut() {
            // No later write may run outside the batch's transaction.
            if !w.run(conn) || depth(conn) != Some(1) {
                return Err(DbError::Query(diesel::result::Error::RollbackTransaction));
            }
        }
        Ok(())
    })
    .map_err(|e| {
        if began {
            Failed::NotCommitted(e)
        } else {
            Failed::NotBegun(e)
        }
    })
}

fn depth(conn: &mut DbConnection) -> Option<u32> {
    match conn {
        DbConnection::Sqlite(sqlite) => sqlite_depth(sqlite),
        DbConnection::Pg(_) => None,
    }
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

    /// `a` and `b`, queued behind [`slow_first`] (which must be written too).
    fn behind_a_slow_write<A, B>(
        pool: &DbPool,
        a: impl Fn(&mut DbConnection) -> Result<A, DbError> + Send + 'static,
        b: impl Fn(&mut DbConnection) -> Result<B, DbError> + Send + 'static,
    ) -> (Result<A, DbError>, Result<B, DbError>)
    where
        A: Send + 'static,
        B: Send + 'static,
    {
        let (first, a, b) = block_on(join3(
            write_together(pool, slow_first),
            write_together(pool, a),
            write_together(pool, b),
        ));
        first.expect("the slow first write");
        (a, b)
    }

    #[test]
    fn writes_queued_meanwhile_commit_together_and_single_writes_take_no_turn_inside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let path = dir.path().join("t.db");
        let (a, b) = behind_a_slow_write(
            &pool,
            |conn| insert(conn, "a"),
            move |conn| {
                insert(conn, "b")?;
                Ok((count(conn, "a"), count_elsewhere(&path, "a")))
            },
        );
        a.expect("a");
        // `b` sees `a`, which no other connection sees yet: one transaction.
        assert_eq!(b.expect("b"), (1, 0));
        let mut conn = pool.get().expect("connection");
        assert_eq!((count(&mut conn, "a"), count(&mut conn, "b")), (1, 1));
    }

    #[test]
    fn a_write_transaction_inside_a_write_is_a_savepoint_under_the_batch_s_turn() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (done, finished) = std::sync::mpsc::channel();
        let writer = pool.clone();
        std::thread::spawn(move || {
            let nested = block_on(write_together(&writer, |conn| {
                write_transaction(conn, |conn| insert(conn, "nested"))
            }));
            let _ = done.send(nested.is_ok());
        });
        // Taking the turn again would wait forever.
        let finished = finished.recv_timeout(Duration::from_secs(20));
        assert_eq!(finished, Ok(true));
        assert_eq!(count(&mut pool.get().expect("connection"), "nested"), 1);
    }

    #[test]
    fn a_write_that_fails_rolls_back_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (bad, good) = behind_a_slow_write(
            &pool,
            |conn| {
                insert(conn, "bad")?;
                Err::<(), _>(DbError::Query(diesel::result::Error::NotFound))
            },
            |conn| insert(conn, "good"),
        );
        assert!(bad.expect_err("bad").is_not_found());
        good.expect("good");
        let mut conn = pool.get().expect("connection");
        assert_eq!((count(&mut conn, "bad"), count(&mut conn, "good")), (0, 1));
    }

    #[test]
    fn a_write_that_panics_fails_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (panicked, good) = behind_a_slow_write(
            &pool,
            |conn| -> Result<(), DbError> {
                insert(conn, "doomed")?;
                panic!("a bug in a write");
            },
            |conn| insert(conn, "good"),
        );
        assert!(matches!(panicked, Err::<(), _>(DbError::WriterStopped)));
        good.expect("good, written again alone");
        let mut conn = pool.get().expect("connection");
        let counts = ["first", "doomed", "good"].map(|k| count(&mut conn, k));
        assert_eq!(counts, [1, 0, 1]);
    }

    #[test]
    fn a_batch_that_cannot_commit_is_written_again_one_by_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = pool_with_tables(&dir);
        let (orphan, good) = behind_a_slow_write(
            &pool,
            // A deferred foreign key: only the commit can refuse it.
            |conn| {
                diesel::sql_query("INSERT INTO child VALUES (42)").execute(conn)?;
                Ok(())
            },
            |conn| insert(conn, "good"),
        );
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
