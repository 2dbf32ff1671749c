//! PostgreSQL's group commit for first logins. A first login inserts a row,
//! and each insert alone pays a commit (a WAL flush, waited for). Here the
//! rows of the first logins waiting are inserted by one thread per replica,
//! in one statement, so that a burst of new users pays one commit a batch.
//! (On SQLite, [`db::write_together`] commits all writes so.)

use std::{
    collections::HashMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::OnceLock,
};

use tokio::sync::{mpsc, oneshot};

use super::{User, model::NewUser, repo};
use crate::db::{self, DbConnection, DbError, DbPool};

/// The row of a subject seen for the first time, owned until inserted.
pub struct FirstSight {
    /// The subject.
    pub sub: String,
    /// The token's `email`, if any.
    pub email: Option<String>,
    /// The token's `name`, if any.
    pub name: Option<String>,
}

impl FirstSight {
    /// The row to insert, created and seen now.
    pub fn row(&self) -> NewUser<'_> {
        NewUser::first_sight(&self.sub, self.email.as_deref(), self.name.as_deref())
    }
}

/// What a first login is told: its row when it inserted it, `None` when the
/// subject has a row already or is tombstoned.
type Answer = Result<Option<User>, DbError>;

/// A first login waiting for its batch.
struct Login {
    sight: FirstSight,
    answer: oneshot::Sender<Answer>,
}

/// The inserting thread of one replica's pool, started by its first login.
pub struct FirstLogins {
    pool: DbPool,
    queue: OnceLock<Option<mpsc::Sender<Login>>>,
}

impl FirstLogins {
    /// First logins into `pool`'s database.
    pub fn new(pool: DbPool) -> Self {
        Self {
            pool,
            queue: OnceLock::new(),
        }
    }

    /// Inserts `sight`'s row with the first logins queued meanwhile:
    /// `Some` with the row when this inserted it; `None` when its subject
    /// has a row already (another request's or replica's, just inserted) or
    /// a tombstone, which the caller tells apart by reading the row.
    /// [`DbError::Busy`] when no answer came within the wait for a
    /// connection (the insert may still happen).
    pub async fn insert(&self, sight: FirstSight) -> Answer {
        let Some(queue) = self.queue() else {
            return self.insert_alone(sight).await;
        };
        let (answer, answered) = oneshot::channel();
        let waited = tokio::time::timeout(db::CONNECTION_WAIT, async {
            match queue.send(Login { sight, answer }).await {
                Ok(()) => answered.await.unwrap_or(Err(DbError::WriterStopped)),
                // The thread is gone: this login inserts alone.
                Err(mpsc::error::SendError(login)) => self.insert_alone(login.sight).await,
            }
        });
        waited.await.unwrap_or(Err(DbError::Busy))
    }

    /// Without the thread: the row inserted by itself, on the blocking pool.
    async fn insert_alone(&self, sight: FirstSight) -> Answer {
        db::run(&self.pool, move |conn| insert_alone(conn, &sight)).await
    }

    fn queue(&self) -> Option<&mpsc::Sender<Login>> {
        self.queue
            .get_or_init(|| {
                let pool = self.pool.clone();
                db::batches("first-logins", move |batch| insert_batch(&pool, batch))
                    .inspect_err(|e| log::warn!("no first-login thread ({e}): each inserts alone"))
                    .ok()
            })
            .as_ref()
    }
}

/// Inserts the rows of `batch` in one statement and answers each login.
/// Should the statement fail, each row is inserted again alone, so only
/// its own failure reaches a caller; without a connection, every caller is
/// told so.
fn insert_batch(pool: &DbPool, mut batch: Vec<Login>) {
    // A caller that went away (its request was cancelled or timed out)
    // needs no row.
    batch.retain(|login| !login.answer.is_closed());
    if batch.is_empty() {
        return;
    }
    let mut conn = match pool.get_in_turn() {
        Ok(conn) => conn,
        Err(e) => return answer_all(batch, e),
    };
    let rows: Vec<NewUser<'_>> = batch.iter().map(|login| login.sight.row()).collect();
    let inserted = catch_unwind(AssertUnwindSafe(|| repo::create_absent(&mut conn, &rows)));
    match inserted {
        Ok(Ok(inserted)) => answer_inserted(batch, inserted),
        Ok(Err(e)) => {
            let e = DbError::from(e);
            pool.note(&e);
            if e.is_unavailable() || batch.len() == 1 {
                return answer_all(batch, e);
            }
            // A tombstone committed since the statement looked for them, say.
            log::warn!(
                "a batch of {} first logins failed ({e}); each is inserted alone",
                batch.len()
            );
            for login in batch {
                let alone = insert_alone(&mut conn, &login.sight);
                let _ = login.answer.send(alone);
            }
        }
        Err(_) => {
            log::error!("inserting a batch of first logins panicked");
            answer_all(batch, DbError::WriterStopped);
        }
    }
}

/// Answers each login with its row if the batch inserted it.
fn answer_inserted(batch: Vec<Login>, inserted: Vec<User>) {
    let mut inserted: HashMap<String, User> = inserted
        .into_iter()
        .map(|user| (user.sub.clone(), user))
        .collect();
    for login in batch {
        // One row per subject: a second login of it in the batch gets `None`.
        let _ = login.answer.send(Ok(inserted.remove(&login.sight.sub)));
    }
}

/// Answers every login of `batch` with why it could not be written.
fn answer_all(mut batch: Vec<Login>, e: DbError) {
    if batch.len() == 1 {
        if let Some(login) = batch.pop() {
            let _ = login.answer.send(Err(e));
        }
        return;
    }
    let e = std::sync::Arc::new(e);
    for login in batch {
        let _ = login.answer.send(Err(DbError::Batch(e.clone())));
    }
}

fn insert_alone(conn: &mut DbConnection, sight: &FirstSight) -> Answer {
    let mut inserted = repo::create_absent(conn, &[sight.row()])?;
    Ok(inserted.pop())
}
