//! Databases for the tests: the backends, a fresh database per test, direct
//! access to rows, and an outage on demand.

use actix_web::web;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::{Connection, ExpressionMethods, QueryDsl, QueryResult, RunQueryDsl, pg::PgConnection};
use usergate::{
    db::{DatabaseUrl, DbConnection, build_pool, schema::users},
    users::model::{NewUser, now},
};

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the server of `TEST_DATABASE_URL`.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `TEST_DATABASE_URL` is set; in CI its absence is a failure.
    pub fn postgres() -> Option<Self> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI is set but TEST_DATABASE_URL is not: PostgreSQL tests must run in CI")
            }
            _ => {
                eprintln!(
                    "skipped: TEST_DATABASE_URL is not set, so the PostgreSQL variant does not run"
                );
                None
            }
        }
    }

    /// A new, empty database; returns its URL and what keeps it alive.
    pub fn fresh_database(&self) -> (String, Option<tempfile::TempDir>) {
        match self {
            Self::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("usergate.db");
                (format!("sqlite://{}", path.display()), Some(dir))
            }
            Self::Postgres(base) => (create_pg_database(base), None),
        }
    }
}

/// Creates a uniquely named database next to `base` and returns its URL.
pub fn create_pg_database(base: &str) -> String {
    let name = format!("usergate_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(base).expect("TEST_DATABASE_URL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("create test database");
    let mut url = url::Url::parse(base).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Runs each listed `async fn name(Backend)` as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::support::db::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(backend) = $crate::support::db::Backend::postgres() {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

/// Runs `f` on a connection of its own to the database at `database_url`,
/// off the runtime that serves the app.
pub async fn with_db<T, F>(database_url: &str, f: F) -> QueryResult<T>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let url = DatabaseUrl::parse(database_url).expect("database url");
    web::block(move || {
        let pool = build_pool(&url, 1);
        let mut conn = pool.get().expect("test connection");
        f(&mut conn)
    })
    .await
    .expect("blocking task")
}

/// How many rows the users table holds.
pub async fn user_rows(database_url: &str) -> i64 {
    with_db(database_url, |conn| users::table.count().get_result(conn))
        .await
        .expect("the users table exists")
}

/// Rows holding `sub`, counted with diesel on the app's own connection type.
pub async fn rows_with_sub(database_url: &str, sub: &str) -> i64 {
    let sub = sub.to_owned();
    with_db(database_url, move |conn| {
        users::table
            .filter(users::sub.eq(sub))
            .count()
            .get_result(conn)
    })
    .await
    .expect("count")
}

/// Inserts `n` users straight into the table (quicker than `n` requests).
pub async fn seed(database_url: &str, n: usize) {
    with_db(database_url, move |conn| {
        conn.transaction(|conn| {
            for i in 0..n {
                let at = now();
                let sub = format!("auth0|seed-{i:03}");
                diesel::insert_into(users::table)
                    .values(NewUser {
                        sub: &sub,
                        email: None,
                        name: None,
                        is_active: true,
                        created_at: at,
                        updated_at: at,
                        last_seen_at: None,
                    })
                    .execute(conn)?;
            }
            Ok(())
        })
    })
    .await
    .expect("seed users");
}

/// Sets the `last_seen_at` of the row of `sub`.
pub async fn set_last_seen(database_url: &str, sub: &str, at: Option<NaiveDateTime>) {
    let sub = sub.to_owned();
    let updated = with_db(database_url, move |conn| {
        diesel::update(users::table.filter(users::sub.eq(sub)))
            .set(users::last_seen_at.eq(at))
            .execute(conn)
    })
    .await
    .expect("update last_seen_at");
    assert_eq!(updated, 1, "one row's last_seen_at set");
}

/// Sets the `created_at` of the row of `sub`.
pub async fn set_created_at(database_url: &str, sub: &str, at: NaiveDateTime) {
    let sub = sub.to_owned();
    let updated = with_db(database_url, move |conn| {
        diesel::update(users::table.filter(users::sub.eq(sub)))
            .set(users::created_at.eq(at))
            .execute(conn)
    })
    .await
    .expect("update created_at");
    assert_eq!(updated, 1, "one row's created_at set");
}

/// Noon on day `d` of January 2024.
pub fn day(d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 1, d)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date")
}

/// A PostgreSQL database made unreachable: new connections are refused and
/// open ones are ended, as when the server goes away.
pub struct Outage {
    admin: PgConnection,
    name: String,
}

impl Outage {
    /// Cuts the database at `database_url` off, through an admin connection to `base`.
    pub fn begin(base: &str, database_url: &str) -> Self {
        let name = url::Url::parse(database_url)
            .expect("database url")
            .path()
            .trim_start_matches('/')
            .to_owned();
        let mut outage = Self {
            admin: PgConnection::establish(base).expect("admin connection"),
            name,
        };
        outage.admin_sql(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS false",
            outage.name
        ));
        outage.admin_sql(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            outage.name
        ));
        outage
    }

    /// Lets connections in again.
    pub fn end(mut self) {
        self.admin_sql(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            self.name
        ));
    }

    fn admin_sql(&mut self, sql: String) {
        diesel::sql_query(sql)
            .execute(&mut self.admin)
            .expect("admin statement");
    }
}
