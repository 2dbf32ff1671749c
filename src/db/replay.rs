//! The DPoP replay store every replica shares: the `dpop_proofs` table. A
//! proof is recorded with one `INSERT … ON CONFLICT DO NOTHING`: one round
//! trip, and the row count says whether it was new.

use std::time::Duration;

use diesel::{
    RunQueryDsl,
    sql_types::{BigInt, Text},
};

use super::{DbConnection, DbError, DbPool, run};
use crate::auth::{
    claims::unix_now,
    replay::{FirstUse, ReplayStore, ReplayStoreDown},
};

/// How often expired proofs are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The `dpop_proofs` table as a [`ReplayStore`].
pub struct DbReplayStore {
    pool: DbPool,
}

impl DbReplayStore {
    /// The store on `pool`'s database; purges expired proofs in the background.
    pub fn start(pool: DbPool) -> Self {
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
        Self { pool }
    }
}

impl ReplayStore for DbReplayStore {
    fn first_use(&self, key: [u8; 32], expires_at: i64) -> FirstUse {
        let pool = self.pool.clone();
        let key = hex(&key);
        Box::pin(async move {
            run(&pool, move |conn| record(conn, &key, expires_at))
                .await
                .map_err(|e| {
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
