//! The database layer against the real servers.

use diesel::{Connection, RunQueryDsl, pg::PgConnection};

use crate::helpers::{Backend, create_pg_database};

#[derive(diesel::QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

#[test]
fn postgres_connections_can_require_tls() {
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        return;
    };
    let mut conn = PgConnection::establish(&base).expect("plain connection");
    let show: Vec<ShowSsl> = diesel::sql_query("SHOW ssl")
        .load(&mut conn)
        .expect("SHOW ssl");
    if show.first().map(|r| r.ssl.as_str()) != Some("on") {
        eprintln!(
            "skipped: this PostgreSQL server has TLS off, so sslmode=require cannot be tried"
        );
        return;
    }
    let url = create_pg_database(&base);
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut tls = PgConnection::establish(&format!("{url}{separator}sslmode=require"))
        .expect("libpq is built with TLS, so sslmode=require connects");
    let rows: Vec<Ssl> =
        diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .load(&mut tls)
            .expect("pg_stat_ssl");
    assert!(
        rows.first().is_some_and(|r| r.ssl),
        "the session is encrypted"
    );
}

#[derive(diesel::QueryableByName)]
struct ShowSsl {
    #[diesel(sql_type = diesel::sql_types::Text)]
    ssl: String,
}
