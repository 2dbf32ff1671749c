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

/// How often a listener checks that the server still answers: reading alone
/// does not notice a server that stopped answering.
pub const PING_EVERY: Duration = Duration::from_millis(250);

/// One connection that listens on a channel.
pub struct Listener {
    conn: PgConnection,
    heard: Instant,
}

impl Listener {
    /// Connects to `url`, names the session `application_name` (so that
    /// operators can find it in `pg_stat_activity`) and listens on `channel`.
    /// Both names are identifiers chosen by the program, never by a client.
    pub fn connect(url: &str, channel: &str, application_name: &str) -> Result<Self, DbError> {
        let mut conn = PgConnection::establish(url).map_err(DbError::Connect)?;
        let sent = Instant::now();
        conn.batch_execute(&format!(
            "SET application_name = '{application_name}'; LISTEN \"{channel}\""
        ))?;
        Ok(Self { conn, heard: sent })
    }

    /// The payloads received since the last call, without waiting for any;
    /// an error when the connection is gone. Every [`PING_EVERY`] it asks
    /// the server for an answer first, which may wait: the answer comes
    /// after every notification committed before the question.
    pub fn drain(&mut self) -> Result<Vec<String>, DbError> {
        if self.heard.elapsed() >= PING_EVERY {
            let sent = Instant::now();
            self.conn.batch_execute("SELECT 1")?;
            self.heard = sent;
        }
        Ok(self
            .conn
            .notifications_iter()
            .map(|n| n.map(|n| n.payload))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// When the server was last known to be answering: every notification
    /// it sent before then has been read.
    pub fn heard(&self) -> Instant {
        self.heard
    }
}
