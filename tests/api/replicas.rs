//! Two replicas on one PostgreSQL database: what an admin does through one
//! is seen by the other within a second, also across a lost or hung listener.

use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    lifecycle::{
        ALL, DELETED, assert_refused, json_of, patch_user, pg_backends,
        race_deletes_with_first_logins,
    },
    support::{
        app::{Options, TestApp},
        assert::{metrics_text, series_value},
        db::Backend,
    },
};

/// The contract: a write through one replica reaches every other within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Replica A on a fresh database, and replica B on the same database,
/// trusting A's issuer; `None` without PostgreSQL.
async fn two_replicas() -> Option<(TestApp, TestApp)> {
    two_replicas_with(&[]).await
}

/// [`two_replicas`], both with the variables of `env` set.
pub async fn two_replicas_with(env: &[(&str, &str)]) -> Option<(TestApp, TestApp)> {
    let backend = Backend::postgres()?;
    let with_env = |options: Options| {
        env.iter()
            .fold(options, |options, (name, value)| options.env(name, value))
    };
    let a = TestApp::spawn_with(with_env(Options::new(backend.clone()))).await;
    let b = TestApp::spawn_with(with_env(
        Options::new(backend)
            .env("DATABASE_URL", &a.database_url)
            .env("AUTH0_ISSUER", &a.issuer.issuer),
    ))
    .await;
    Some((a, b))
}

/// Polls `GET /users/me` on `app` until `done` holds for the answer's
/// status and body; returns how long that took, failing past [`WITHIN`].
async fn seen_within(
    app: &TestApp,
    token: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let r = app.get_me(token).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json body");
        if done(status, &body) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: still {status} {body} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Polls B's first page of users until `done` holds for it, failing half
/// of [`WITHIN`] after `listed` (when B read the page it keeps for
/// `LIST_TTL`, as long as `WITHIN`): only A's notice makes B forget it in time.
async fn listed_within(
    b: &TestApp,
    admin: &str,
    what: &str,
    listed: Instant,
    done: impl Fn(&Value) -> bool,
) {
    let start = listed;
    loop {
        let page = b.list(admin, "").await;
        if done(&page) {
            return;
        }
        assert!(
            start.elapsed() < WITHIN / 2,
            "{what}: B still lists {page} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn refused_as(slug: &'static str) -> impl Fn(u16, &Value) -> bool {
    move |status, body| status == 403 && body["type"] == format!("urn:usergate:problem:{slug}")
}

/// Seen twice on `app`: its row is now in that replica's cache.
async fn cached_on(app: &TestApp, token: &str) -> Value {
    json_of(app.get_me(token).await, 200, "first sight").await;
    json_of(app.get_me(token).await, 200, "from the cache").await
}

#[actix_web::test]
async fn a_rename_deactivation_deletion_and_recreation_through_one_replica_reach_the_other_within_a_second()
 {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let admin = a.token("auth0|fleet-admin", ALL);
    let sub = "auth0|fleet-user";
    let user = a.token(sub, &[]);
    let id = cached_on(&b, &user).await["id"].clone();
    let renamed = |page: &Value| {
        let listed = page["results"]
            .as_array()
            .and_then(|users| users.iter().find(|u| u["id"] == id));
        listed.expect("the user is listed")["name"] == "Renamed"
    };
    // B keeps this page for a second: A's notice must forget it well
    // before it would age out.
    assert!(!renamed(&b.list(&admin, "").await), "renamed already");
    let listed = Instant::now();

    patch_user(&a, &admin, &id, json!({"name": "Renamed"})).await;
    seen_within(&b, &user, "rename", |s, u| {
        s == 200 && u["name"] == "Renamed"
    })
    .await;
    listed_within(&b, &admin, "rename", listed, renamed).await;
    patch_user(&a, &admin, &id, json!({"is_active": false})).await;
    seen_within(&b, &user, "deactivation", refused_as("user-inactive")).await;
    let r = a.delete(&format!("/users/{id}"), &admin).await;
    assert_eq!(r.status(), 204, "DELETE");
    seen_within(&b, &user, "deletion", refused_as("user-deleted")).await;
    assert_refused(
        b.get_me(&user).await,
        "user-deleted",
        DELETED,
        "deleted, on B",
    )
    .await;
    a.create_user(&admin, json!({"sub": sub, "name": "Back"}))
        .await;
    seen_within(&b, &user, "re-creation", |s, u| {
        s == 200 && u["name"] == "Back"
    })
    .await;
}

/// Polls B's count of all users until it is `expected`, failing past [`WITHIN`].
async fn count_seen_within(b: &TestApp, admin: &str, expected: i64, what: &str) {
    let start = Instant::now();
    loop {
        let count = b.count_users(admin).await;
        if count == expected {
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: B still counts {count} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// B caches its count of `GET /users`; creates and deletes through A
/// reach it by notification, first logins as its count ages out: each
/// within a second.
#[actix_web::test]
async fn first_logins_creates_and_deletes_through_one_replica_change_the_others_count_within_a_second()
 {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let admin = a.token("auth0|count-admin", ALL);
    json_of(b.get_me(&admin).await, 200, "the admin's first sight").await;
    assert_eq!(b.count_users(&admin).await, 1, "counted");
    assert_eq!(b.count_users(&admin).await, 1, "from B's cache");

    json_of(
        a.get_me(&a.token("auth0|count-newcomer", &[])).await,
        200,
        "first login on A",
    )
    .await;
    count_seen_within(&b, &admin, 2, "a first login on A").await;
    let made = a
        .create_user(&admin, json!({"sub": "auth0|count-made"}))
        .await;
    count_seen_within(&b, &admin, 3, "a create on A").await;
    let r = a.delete(&format!("/users/{}", made["id"]), &admin).await;
    assert_eq!(r.status(), 204, "DELETE");
    count_seen_within(&b, &admin, 2, "a delete on A").await;
}

/// Listener connections on the database of `database_url`, terminated
/// when `terminate`.
fn listeners(admin: &mut PgConnection, database_url: &str, terminate: bool) -> i64 {
    let per_pid = if terminate {
        "pg_terminate_backend"
    } else {
        ""
    };
    pg_backends(
        admin,
        database_url,
        per_pid,
        "application_name = 'usergate-invalidation'",
    )
}

/// [`two_replicas`] once both listen, with a connection of the test's own
/// to their database server; `None` without PostgreSQL.
async fn two_listening_replicas() -> Option<(TestApp, TestApp, PgConnection)> {
    let (a, b) = two_replicas().await?;
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        return None;
    };
    let mut admin_db = PgConnection::establish(&base).expect("admin connection");
    await_listeners(
        &mut admin_db,
        &a.database_url,
        Duration::from_secs(5),
        "at start",
    )
    .await;
    Some((a, b, admin_db))
}

/// Waits, at most `within`, until both replicas on `database_url` listen.
async fn await_listeners(
    admin: &mut PgConnection,
    database_url: &str,
    within: Duration,
    when: &str,
) {
    let deadline = Instant::now() + within;
    while listeners(admin, database_url, false) < 2 {
        assert!(Instant::now() < deadline, "both replicas listen {when}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_replica_whose_listener_is_killed_serves_no_stale_row_and_listens_again() {
    let Some((a, b, mut admin_db)) = two_listening_replicas().await else {
        return;
    };
    let name = url::Url::parse(&a.database_url).expect("url").path()[1..].to_owned();
    let admin = a.token("auth0|killed-admin", ALL);
    let user = a.token("auth0|killed-user", &[]);
    let id = cached_on(&b, &user).await["id"].clone();

    // Pooled connections stay; only the listeners go, and may not come back.
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin_db)
        .expect("refuse connections");
    assert_eq!(listeners(&mut admin_db, &a.database_url, true), 2, "killed");
    tokio::time::sleep(Duration::from_millis(200)).await;

    // No announcement can reach B now: its cache must not answer.
    patch_user(&a, &admin, &id, json!({"is_active": false})).await;
    assert_refused(
        b.get_me(&user).await,
        "user-inactive",
        "this user is deactivated",
        "B, listener down",
    )
    .await;
    patch_user(
        &a,
        &admin,
        &id,
        json!({"is_active": true, "name": "while down"}),
    )
    .await;
    let back = json_of(b.get_me(&user).await, 200, "B, listener down").await;
    assert_eq!(back["name"], "while down", "read from the database");

    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin_db)
        .expect("allow connections");
    await_listeners(
        &mut admin_db,
        &a.database_url,
        Duration::from_secs(10),
        "again",
    )
    .await;
    // Listening again: B caches again, and hears of changes again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    cached_on(&b, &user).await;
    patch_user(&a, &admin, &id, json!({"name": "after"})).await;
    seen_within(&b, &user, "rename after reconnection", |s, u| {
        s == 200 && u["name"] == "after"
    })
    .await;
}

/// The server processes of `pids`, stopped (SIGSTOP) until this is dropped:
/// their connections hang without failing, as across a lost network.
struct Frozen(Vec<i32>);

impl Frozen {
    /// Stops `pids`, each of them a PostgreSQL server process of this host.
    fn new(pids: Vec<i32>) -> Self {
        for pid in &pids {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            assert!(
                comm.starts_with("postgres"),
                "pid {pid} is not a local PostgreSQL process ({comm:?}): \
                 this test needs TEST_DATABASE_URL on this host"
            );
        }
        assert!(signal("STOP", &pids), "SIGSTOP to {pids:?}");
        Self(pids)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.0);
    }
}

/// Sends signal `name` to `pids`; whether `kill` succeeded.
fn signal(name: &str, pids: &[i32]) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(i32::to_string))
        .status()
        .is_ok_and(|status| status.success())
}

/// How often `app` flushed its user cache to trust it again after its
/// listener went unanswered.
async fn trust_lapses(app: &TestApp) -> u64 {
    series_value(
        &metrics_text(app).await,
        "usergate_user_cache_trust_lapses_total",
    )
    .unwrap_or(0)
}

/// The server processes of the listener connections on `database_url`.
fn listener_pids(admin: &mut PgConnection, database_url: &str) -> Vec<i32> {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let name = url::Url::parse(database_url).expect("url").path()[1..].to_owned();
    diesel::sql_query(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = 'usergate-invalidation'",
    )
    .bind::<diesel::sql_types::Text, _>(name)
    .load::<Pid>(admin)
    .expect("pg_stat_activity")
    .into_iter()
    .map(|p| p.pid)
    .collect()
}

#[actix_web::test]
async fn a_replica_whose_listener_hangs_serves_no_stale_row_and_trusts_its_cache_again_once_it_answers()
 {
    let Some((a, b, mut admin_db)) = two_listening_replicas().await else {
        return;
    };
    let admin = a.token("auth0|hung-admin", ALL);
    let user = a.token("auth0|hung-user", &[]);
    let id = cached_on(&b, &user).await["id"].clone();

    // The connections stay open and the pings go unanswered: nothing fails,
    // and no announcement reaches B, from the moment of the stop.
    let frozen = Frozen::new(listener_pids(&mut admin_db, &a.database_url));
    patch_user(&a, &admin, &id, json!({"is_active": false})).await;
    seen_within(
        &b,
        &user,
        "deactivation, listener hung",
        refused_as("user-inactive"),
    )
    .await;
    patch_user(
        &a,
        &admin,
        &id,
        json!({"is_active": true, "name": "while hung"}),
    )
    .await;
    seen_within(&b, &user, "reactivation, listener hung", |s, u| {
        s == 200 && u["name"] == "while hung"
    })
    .await;

    // Answering again: B flushes its cache and trusts it again, and hears
    // of changes again.
    drop(frozen);
    let deadline = Instant::now() + Duration::from_secs(5);
    while trust_lapses(&b).await < 1 {
        assert!(Instant::now() < deadline, "B trusts its cache again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cached_on(&b, &user).await;
    patch_user(&a, &admin, &id, json!({"name": "after"})).await;
    seen_within(&b, &user, "rename after the listener answered", |s, u| {
        s == 200 && u["name"] == "after"
    })
    .await;
}

#[actix_web::test]
async fn a_delete_racing_first_logins_on_two_replicas_leaves_no_row_behind_a_tombstone() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    race_deletes_with_first_logins(&[&a, &b], 20).await;
}

/// The cross-replica delay, measured: deactivate through A, poll B until it
/// refuses. Prints the median and the maximum; each must be under a second.
#[actix_web::test]
async fn a_deactivation_through_one_replica_is_refused_by_the_other_within_a_second_in_100_trials()
{
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let admin = a.token("auth0|delay-admin", ALL);
    let mut delays = Vec::new();
    for trial in 0..100 {
        let user = a.token(&format!("auth0|delay-{trial}"), &[]);
        let id = cached_on(&b, &user).await["id"].clone();
        let r = a
            .send_json(
                Method::PATCH,
                &format!("/users/{id}"),
                &admin,
                &json!({"is_active": false}),
            )
            .await;
        let start = Instant::now();
        assert_eq!(r.status(), 200, "trial {trial}: deactivation");
        seen_within(
            &b,
            &user,
            &format!("trial {trial}"),
            refused_as("user-inactive"),
        )
        .await;
        delays.push(start.elapsed());
    }
    delays.sort_unstable();
    println!(
        "cross-replica deactivation delay over {} trials: median {:?}, p99 {:?}, max {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() * 99 / 100 - 1],
        delays[delays.len() - 1]
    );
}
