//! PostgreSQL's group commit for first logins. A first login inserts a row,
//! and each insert alone pays a commit (a WAL flush, waited for). Here the
//! rows of the first logins waiting are inserted by one thread per replica,
//! in one statement, so that a burst of new users pays one commit a batch.
//! (On SQLite, [`db::write_together`] commits all writes so.)

use std::{collections::HashMap, sync::OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::{User, model::NewUser, repo};
use crate::db::{self, DbError, DbPool};

/// The rows of a subject seen for the first time, owned until inserted.
#[derive(Clone)]
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

/// A first login waiting for its batch.
struct Login {
    sight: FirstSight,
    answer: oneshot::Sender<Result<Option<User>, DbError>>,
}

/// The inserting thread of one replica, started by the first login.
#[derive(Default)]
pub struct FirstLogins(OnceLock<Option<mpsc::Sender<Login>>>);

impl FirstLogins {
    /// Inserts `sight`'s row with the first logins queued meanwhile:
    /// `Some` with the row when this inserted it, `None` when its subject
    /// has a row already (another replica's or request's, just inserted);
    /// `NotFound` when the subject is tombstoned.
    pub async fn insert(&self, pool: &DbPool, sight: FirstSight) -> Result<Option<User>, DbError> {
        let queue = self.0.get_or_init(|| {
            let pool = pool.clone();
            db::batches("first-logins", move |batch| insert(&pool, batch))
                .inspect_err(|e| log::warn!("no first-login thread ({e}): each inserts alone"))
                .ok()
        });
        let Some(queue) = queue else {
            return db::run(pool, move |conn| insert_one(conn, &sight)).await;
        };
        let (answer, answered) = oneshot::channel();
        queue
            .send(Login { sight, answer })
            .await
            .map_err(|_| DbError::WriterStopped)?;
        answered.await.map_err(|_| DbError::WriterStopped)?
    }
}

/// Inserts the rows of `batch` in one statement and answers each login.
/// Should the statement fail (a tombstoned subject among them refuses it
/// all), each row is inserted again alone, so only its own failure reaches
/// a caller; without a connection, every caller is told so.
fn insert(pool: &DbPool, batch: Vec<Login>) {
    let mut conn = match pool.get_in_turn() {
        Ok(conn) => conn,
        Err(e) => {
            let e = std::sync::Arc::new(e);
            for login in batch {
                let _ = login.answer.send(Err(DbError::Batch(e.clone())));
            }
            return;
        }
    };
    let rows: Vec<NewUser<'_>> = batch.iter().map(|login| login.sight.row()).collect();
    match repo::create_absent(&mut conn, &rows) {
        Ok(inserted) => {
            let mut inserted: HashMap<String, User> = inserted
                .into_iter()
                .map(|user| (user.sub.clone(), user))
                .collect();
            for login in batch {
                // A caller that went away (its request was cancelled) needs no answer.
                let _ = login.answer.send(Ok(inserted.remove(&login.sight.sub)));
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(login) = batch.into_iter().next() {
                let _ = login.answer.send(Err(e.into()));
            }
        }
        Err(_) => {
            for login in batch {
                let alone = insert_one(&mut conn, &login.sight);
                let _ = login.answer.send(alone);
            }
        }
    }
}

fn insert_one(conn: &mut db::DbConnection, sight: &FirstSight) -> Result<Option<User>, DbError> {
    let mut inserted = repo::create_absent(conn, &[sight.row()])?;
    Ok(inserted.pop())
}
