//! PostgreSQL's sightings that the cache could not answer, handled together.
//! Each alone would pay a hop to the blocking pool and a round trip to read
//! its row, and a first login a commit (a WAL flush, waited for) to insert
//! it. Here one thread per replica reads the rows of all the sightings
//! waiting in one statement (and records their stale sightings in one
//! more), answers those it found, then inserts the rows of the first logins
//! among them: a burst of requests pays a few statements a batch, not a
//! round trip and a commit each. (On SQLite, reads are cheap where
//! they are, and [`db::write_together`] commits all writes together.)

use std::{
    collections::HashMap,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::OnceLock,
};

use tokio::sync::{mpsc, oneshot};

use super::{User, model::NewUser, repo};
use crate::db::{self, DbConnection, DbError, DbPool};

/// What a sighting brings: its subject, and the row to insert should it be
/// the first.
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

/// What a sighting is told: its row, and whether this sighting inserted
/// it; `None` when it found no row and inserted none (another request or
/// replica inserted it meanwhile, or the subject is tombstoned), which the
/// caller tells apart by reading the row.
type Answer = Result<Option<(User, bool)>, DbError>;

/// A sighting waiting for its batch.
struct Sighting {
    sight: FirstSight,
    answer: oneshot::Sender<Answer>,
}

/// The thread of one replica's pool, started by its first sighting.
pub struct Sightings {
    pool: DbPool,
    queue: OnceLock<Option<mpsc::Sender<Sighting>>>,
}

impl Sightings {
    /// Sightings read from (and first logins inserted into) `pool`'s database.
    pub fn new(pool: DbPool) -> Self {
        Self {
            pool,
            queue: OnceLock::new(),
        }
    }

    /// The row of `sight`'s subject, read with the sightings queued
    /// meanwhile (its sighting recorded when the last is stale), or inserted
    /// with the first logins among them. [`DbError::Busy`] when no answer
    /// came within the wait for a connection (the insert may still happen).
    pub async fn find_or_insert(&self, sight: FirstSight) -> Answer {
        let Some(queue) = self.queue() else {
            return self.alone(sight).await;
        };
        let (answer, answered) = oneshot::channel();
        let waited = tokio::time::timeout(db::CONNECTION_WAIT, async {
            match queue.send(Sighting { sight, answer }).await {
                Ok(()) => answered.await.unwrap_or(Err(DbError::WriterStopped)),
                // The thread is gone: this sighting goes alone.
                Err(mpsc::error::SendError(sighting)) => self.alone(sighting.sight).await,
            }
        });
        waited.await.unwrap_or(Err(DbError::Busy))
    }

    /// Without the thread: the sighting by itself, on the blocking pool.
    async fn alone(&self, sight: FirstSight) -> Answer {
        db::run(&self.pool, move |conn| find_or_insert_alone(conn, &sight)).await
    }

    fn queue(&self) -> Option<&mpsc::Sender<Sighting>> {
        self.queue
            .get_or_init(|| {
                let pool = self.pool.clone();
                db::batches("sightings", move |batch| handle_batch(&pool, batch))
                    .inspect_err(|e| log::warn!("no sightings thread ({e}): each goes alone"))
                    .ok()
            })
            .as_ref()
    }
}

/// Reads the rows of `batch` in one statement and answers those found, then
/// inserts the others in one more and answers them. Should the insert fail,
/// each row is inserted again alone, so only its own failure reaches a
/// caller; without a connection, every caller is told so.
fn handle_batch(pool: &DbPool, mut batch: Vec<Sighting>) {
    let gone = |sighting: &Sighting| sighting.answer.is_closed();
    let mut conn = match db::connection_for(pool, &mut batch, gone) {
        Ok(Some(conn)) => conn,
        Ok(None) => return,
        Err(e) => return answer_all(batch, e),
    };
    let found = catch_unwind(AssertUnwindSafe(|| find_rows(&mut conn, &batch)));
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            let e = DbError::from(e);
            pool.note(&e);
            return answer_all(batch, e);
        }
        Err(_) => {
            log::error!("reading a batch of sightings panicked");
            return answer_all(batch, DbError::WriterStopped);
        }
    };
    let mut first_logins = Vec::new();
    for sighting in batch {
        match found.get(&sighting.sight.sub) {
            Some(user) => {
                let _ = sighting.answer.send(Ok(Some((user.clone(), false))));
            }
            None => first_logins.push(sighting),
        }
    }
    if !first_logins.is_empty() {
        insert_batch(pool, &mut conn, first_logins);
    }
}

/// The rows of the subjects of `batch` that exist, by subject, their stale
/// sightings recorded: two statements at most. A sighting that could not
/// be recorded leaves its row as it was read, to be recorded next time.
fn find_rows(
    conn: &mut DbConnection,
    batch: &[Sighting],
) -> diesel::QueryResult<HashMap<String, User>> {
    let subs: Vec<&str> = batch
        .iter()
        .map(|sighting| sighting.sight.sub.as_str())
        .collect();
    let mut found = repo::find_by_subs(conn, &subs)?;
    if let Err(e) = repo::touch_all_last_seen(conn, &mut found) {
        log::warn!("recording {} sightings failed: {e}", found.len());
    }
    Ok(found
        .into_iter()
        .map(|user| (user.sub.clone(), user))
        .collect())
}

/// Inserts the rows of `batch` in one statement and answers each login.
fn insert_batch(pool: &DbPool, conn: &mut DbConnection, batch: Vec<Sighting>) {
    let rows: Vec<NewUser<'_>> = batch.iter().map(|login| login.sight.row()).collect();
    let inserted = catch_unwind(AssertUnwindSafe(|| repo::create_absent(conn, &rows)));
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
                let alone = insert_alone(conn, &login.sight);
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
fn answer_inserted(batch: Vec<Sighting>, inserted: Vec<User>) {
    let mut inserted: HashMap<String, User> = inserted
        .into_iter()
        .map(|user| (user.sub.clone(), user))
        .collect();
    for login in batch {
        // One row per subject: a second login of it in the batch gets `None`.
        let row = inserted.remove(&login.sight.sub).map(|user| (user, true));
        let _ = login.answer.send(Ok(row));
    }
}

/// Answers every sighting of `batch` with why it could not be answered.
fn answer_all(mut batch: Vec<Sighting>, e: DbError) {
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
    Ok(inserted.pop().map(|user| (user, true)))
}

/// One sighting by itself: its row read (the sighting recorded when stale),
/// or else inserted.
fn find_or_insert_alone(conn: &mut DbConnection, sight: &FirstSight) -> Answer {
    match repo::find_by_sub(conn, &sight.sub)? {
        Some(mut user) => {
            if let Some(seen) = repo::touch_last_seen(conn, &user)? {
                user.last_seen_at = Some(seen);
            }
            Ok(Some((user, false)))
        }
        None => insert_alone(conn, sight),
    }
}
