//! The DPoP replay store every replica shares: the `dpop_proofs` table. A
//! proof is recorded with `INSERT … ON CONFLICT DO NOTHING`, and whether it
//! was new is what the statement says it inserted. The proofs arriving
//! together are recorded by one thread per replica in one statement, so a
//! stream of DPoP requests pays one commit (a WAL flush, waited for) a
//! batch, not one a request.

use std::{
    collections::HashSet,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Arc,
    time::Duration,
};

use diesel::{
    PgConnection, RunQueryDsl,
    sql_types::{Array, BigInt, Text},
};
use tokio::sync::{mpsc, oneshot};

use super::{CONNECTION_WAIT, DbConnection, DbError, DbPool, batches, connection_for, run};
use crate::auth::{
    claims::unix_now,
    replay::{FirstUse, ReplayStore, ReplayStoreDown},
};

/// How often expired proofs are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The `dpop_proofs` table as a [`ReplayStore`]; cheap to clone.
#[derive(Clone)]
pub struct DbReplayStore {
    pool: DbPool,
    /// The recording thread's queue; `None` when it could not be started.
    queue: Option<mpsc::Sender<Proof>>,
}

/// A proof waiting for its batch: its key, its expiry and who to tell
/// whether it was new.
struct Proof {
    key: String,
    expires_at: i64,
    answer: oneshot::Sender<Result<bool, DbError>>,
}

impl DbReplayStore {
    /// The store on `pool`'s database, with its recording thread; purges
    /// expired proofs in the background.
    pub fn start(pool: DbPool) -> Self {
        let recorder = pool.clone();
        let queue = batches("dpop-proofs", move |batch| record_batch(&recorder, batch))
            .inspect_err(|e| log::warn!("no DPoP proof thread ({e}): each proof is recorded alone"))
            .ok();
        let purged = pool.clone();
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(PURGE_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = run(&purged, |conn| purge(conn, unix_now())).await {
                    log::warn!(
                        "purging expired DPoP proofs failed: {}",
                        crate::report::Chain(&e)
                    );
                }
            }
        });
        Self { pool, queue }
    }

    /// Whether `key` is new: recorded with the proofs queued meanwhile, or
    /// alone without the thread. [`DbError::Busy`] when no answer came
    /// within the wait for a connection.
    async fn record(&self, key: String, expires_at: i64) -> Result<bool, DbError> {
        let Some(queue) = &self.queue else {
            return run(&self.pool, move |conn| record(conn, &key, expires_at)).await;
        };
        let (answer, answered) = oneshot::channel();
        let proof = Proof {
            key,
            expires_at,
            answer,
        };
        let waited = tokio::time::timeout(CONNECTION_WAIT, async {
            match queue.send(proof).await {
                Ok(()) => answered.await.unwrap_or(Err(DbError::WriterStopped)),
                Err(mpsc::error::SendError(proof)) => {
                    let (key, expires_at) = (proof.key, proof.expires_at);
                    run(&self.pool, move |conn| record(conn, &key, expires_at)).await
                }
            }
        });
        waited.await.unwrap_or(Err(DbError::Busy))
    }
}

impl ReplayStore for DbReplayStore {
    fn first_use(&self, key: [u8; 32], expires_at: i64) -> FirstUse {
        let store = self.clone();
        let key = hex(&key);
        Box::pin(async move {
            store.record(key, expires_at).await.map_err(|e| {
                log::warn!("the DPoP replay store failed: {}", crate::report::Chain(&e));
                ReplayStoreDown
            })
        })
    }
}

/// Inserts the proof; `true` when no replica had recorded it yet.
fn record(conn: &mut DbConnection, key: &str, expires_at: i64) -> Result<bool, DbError> {
    let rows = match conn {
        DbConnection::Pg(pg) => diesel::sql_query(
            "INSERT INTO dpop_proofs (proof_key, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(expires_at)
        .execute(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::sql_query(
            "INSERT INTO dpop_proofs (proof_key, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(key)
        .bind::<BigInt, _>(expires_at)
        .execute(sqlite)?,
    };
    Ok(rows == 1)
}

/// Records the proofs of `batch` in one statement and tells each whether
/// it was new: only what the statement inserted is, so of two requests
/// bringing one proof in a batch, one is told so. Without a connection, or
/// should the statement fail, every proof is told why, and none recorded.
fn record_batch(pool: &DbPool, mut batch: Vec<Proof>) {
    let mut conn = match connection_for(pool, &mut batch, |proof| proof.answer.is_closed()) {
        Ok(Some(conn)) => conn,
        Ok(None) => return,
        Err(e) => return answer_all(batch, e),
    };
    let DbConnection::Pg(pg) = &mut *conn else {
        // One statement each, each answered with its own result.
        for proof in batch {
            let recorded = record(&mut conn, &proof.key, proof.expires_at);
            let _ = proof.answer.send(recorded);
        }
        return;
    };
    let inserted = catch_unwind(AssertUnwindSafe(|| insert_new(pg, &batch)));
    let mut new = match inserted {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => {
            pool.note(&e);
            return answer_all(batch, e);
        }
        Err(_) => {
            log::error!("recording a batch of DPoP proofs panicked");
            return answer_all(batch, DbError::WriterStopped);
        }
    };
    for proof in batch {
        let _ = proof.answer.send(Ok(new.remove(&proof.key)));
    }
}

/// Tells every proof of `batch` why it could not be recorded.
fn answer_all(batch: Vec<Proof>, e: DbError) {
    let e = Arc::new(e);
    for proof in batch {
        let _ = proof.answer.send(Err(DbError::Batch(e.clone())));
    }
}

/// The keys of `batch` that no replica had recorded, now recorded, in one
/// statement.
fn insert_new(pg: &mut PgConnection, batch: &[Proof]) -> Result<HashSet<String>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Text)]
        proof_key: String,
    }
    let keys: Vec<&str> = batch.iter().map(|proof| proof.key.as_str()).collect();
    let expiries: Vec<i64> = batch.iter().map(|proof| proof.expires_at).collect();
    // A key twice in the batch conflicts with its own first row: DO NOTHING.
    let inserted: Vec<Inserted> = diesel::sql_query(
        "INSERT INTO dpop_proofs (proof_key, expires_at) \
         SELECT * FROM unnest($1, $2) ON CONFLICT DO NOTHING RETURNING proof_key",
    )
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<BigInt>, _>(expiries)
    .load(pg)?;
    Ok(inserted.into_iter().map(|row| row.proof_key).collect())
}

/// Deletes the proofs that can no longer be accepted anyway.
fn purge(conn: &mut DbConnection, now: i64) -> Result<usize, DbError> {
    Ok(match conn {
        DbConnection::Pg(pg) => diesel::sql_query("DELETE FROM dpop_proofs WHERE expires_at < $1")
            .bind::<BigInt, _>(now)
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => {
            diesel::sql_query("DELETE FROM dpop_proofs WHERE expires_at < ?")
                .bind::<BigInt, _>(now)
                .execute(sqlite)?
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
