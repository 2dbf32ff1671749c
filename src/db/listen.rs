//! PostgreSQL's LISTEN/NOTIFY: a write tells every replica, through one
//! dedicated connection each (never a pooled one: a pooled connection is
//! shared, and LISTEN belongs to its session).

use std::time::{Duration, Instant};

use diesel::{
    Connection, RunQueryDsl, connection::SimpleConnection, pg::PgConnection, sql_types::Text,
};

use super::{DbConnection, DbError};

/// Sends `payload` on `channel` from inside the caller's transaction, so it
/// is delivered on commit only. SQLite has no other process to tell: a no-op.
pub fn notify(conn: &mut DbConnection, channel: &str, payload: &str) -> diesel::QueryResult<()> {
    if let DbConnection::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(channel)
            .bind::<Text, _>(payload)
            .execute(pg)?;
    }
    Ok(())
}

/// How often a quiet listener checks that its connection is still alive:
/// reading alone does not notice a server that stopped answering.
pub const PING_EVERY: Duration = Duration::from_millis(250);

/// One connection that listens on a channel.
pub struct Listener {
    conn: PgConnection,
    pinged: Instant,
}

impl Listener {
    /// Connects to `url`, names the session `application_name` (so that
    /// operators can find it in `pg_stat_activity`) and listens on `channel`.
    /// Both names are identifiers chosen by the program, never by a client.
    pub fn connect(url: &str, channel: &str, application_name: &str) -> Result<Self, DbError> {
        let mut conn = PgConnection::establish(url).map_err(DbError::Connect)?;
        conn.batch_execute(&format!(
            "SET application_name = '{application_name}'; LISTEN \"{channel}\""
        ))?;
        Ok(Self {
            conn,
            pinged: Instant::now(),
        })
    }

    /// The payloads received since the last call, without waiting; an error
    /// when the connection is gone.
    pub fn drain(&mut self) -> Result<Vec<String>, DbError> {
        let payloads = self
            .conn
            .notifications_iter()
            .map(|n| n.map(|n| n.payload))
            .collect::<Result<Vec<_>, _>>()?;
        if payloads.is_empty() && self.pinged.elapsed() >= PING_EVERY {
            // Reading alone does not notice a connection that went silent.
            self.conn.batch_execute("SELECT 1")?;
            self.pinged = Instant::now();
        }
        Ok(payloads)
    }
}
