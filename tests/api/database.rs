//! The users table under stress: migrations, the get-or-create race (in one
//! process, across threads, across two processes) and a database outage.

use std::{
    collections::HashSet,
    sync::{Arc, Barrier},
    time::Duration,
};

use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use futures::future::join_all;
use serde_json::Value;
use usergate::{
    db::{self, DatabaseUrl},
    users::{model::NewUser, repo},
};

use crate::support::{
    app::TestApp,
    assert::{assert_problem, header},
    db::{Backend, Outage, create_pg_database, rows_with_sub, user_rows},
    issuer::TestIssuer,
    keys::keys,
    process::{Running, command, free_ports, run, serve_env},
};

// ------------------------------------------------------ migrations (C)

async fn migrate_creates_the_users_table_and_running_it_twice_is_fine(backend: Backend) {
    let (database_url, _db_dir) = backend.fresh_database();
    let cwd = tempfile::tempdir().expect("temp dir");
    let env = [("DATABASE_URL", database_url.clone())];
    for attempt in ["first run", "second run"] {
        let (status, _, stderr) = run(command(&["migrate"], &env, cwd.path())).await;
        assert!(status.success(), "{attempt}: {status}\n{stderr}");
    }
    assert_eq!(user_rows(&database_url).await, 0);
}

// ------------------------------------------ get-or-create race (D)

async fn fifty_concurrent_first_requests_of_one_sub_make_one_row(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let sub = "auth0|race-http";
    let token = app.token(sub, &[]);
    let responses = join_all((0..50).map(|_| app.get_me(&token))).await;
    let mut ids = HashSet::new();
    for (i, r) in responses.into_iter().enumerate() {
        assert_eq!(r.status(), 200, "request {i}");
        let user: Value = r.json().await.expect("user json");
        assert_eq!(user["sub"], sub, "request {i}");
        ids.insert(user["id"].as_i64().expect("id"));
    }
    assert_eq!(ids.len(), 1, "every request sees the same row: {ids:?}");

    let admin = app.token("auth0|race-admin", &["read:users"]);
    let r = app.get("/users?search=race-http", &admin).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.expect("page json");
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(rows_with_sub(&app.database_url, sub).await, 1);
}

async fn fifty_threads_racing_get_or_create_make_one_row(backend: Backend) {
    let (database_url, _dir) = backend.fresh_database();
    let pool = db::build_pool(&DatabaseUrl::parse(&database_url).expect("url"), 10);
    db::run_migrations(&pool).expect("migrations");
    let sub = "auth0|race-repo";
    let start = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut conn = pool.get().expect("connection");
                let at = usergate::users::model::now();
                let new = NewUser {
                    sub,
                    email: None,
                    name: None,
                    is_active: true,
                    created_at: at,
                    updated_at: at,
                    last_seen_at: None,
                };
                repo::get_or_create(&mut conn, &new).map(|(user, created)| (user.id, created))
            })
        })
        .collect();
    let outcomes: Vec<(i64, bool)> = threads
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.join()
                .expect("thread")
                .unwrap_or_else(|e| panic!("thread {i}: get_or_create failed: {e}"))
        })
        .collect();
    let ids: HashSet<i64> = outcomes.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 1, "every thread gets the same row: {ids:?}");
    let creators = outcomes.iter().filter(|(_, created)| *created).count();
    assert_eq!(creators, 1, "exactly one thread says it created the row");
    assert_eq!(rows_with_sub(&database_url, sub).await, 1);
}

// ------------------------------------------ two replicas, one sub (D)

async fn two_processes_racing_for_one_new_sub_make_one_row(backend: Backend) {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let (database_url, _db_dir) = backend.fresh_database();
    let cwd = tempfile::tempdir().expect("temp dir");
    let ports = free_ports::<2>();
    // Started together: their migrations race as well.
    let mut replicas: Vec<Running> = ports
        .iter()
        .map(|port| {
            let env = serve_env(&issuer, &database_url, *port);
            Running::start(command(&["serve"], &env, cwd.path()))
        })
        .collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for (replica, base) in replicas.iter_mut().zip(&bases) {
        replica.wait_ready(base).await;
    }

    let sub = "auth0|race-processes";
    let token = issuer.token(sub, &[]);
    let client = reqwest::Client::new();
    let responses = join_all((0..40).map(|i| {
        client
            .get(format!("{}/users/me", bases[i % 2]))
            .bearer_auth(&token)
            .send()
    }))
    .await;
    let mut ids = HashSet::new();
    for (i, r) in responses.into_iter().enumerate() {
        let r = r.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status(), 200, "request {i} to replica {}", i % 2);
        let user: Value = r.json().await.expect("user json");
        ids.insert(user["id"].as_i64().expect("id"));
    }
    assert_eq!(ids.len(), 1, "both replicas see one row: {ids:?}");
    assert_eq!(rows_with_sub(&database_url, sub).await, 1);
}

crate::on_both_backends!(
    migrate_creates_the_users_table_and_running_it_twice_is_fine,
    fifty_concurrent_first_requests_of_one_sub_make_one_row,
    fifty_threads_racing_get_or_create_make_one_row,
    two_processes_racing_for_one_new_sub_make_one_row,
);

// ------------------------------------------------------ DB outage (E)

#[actix_web::test]
async fn database_outage_answers_503_with_retry_after_then_recovers_by_itself() {
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn_on(Backend::Postgres(base.clone())).await;
    let token = app.token("auth0|outage", &[]);
    assert_eq!(app.get_me(&token).await.status(), 200, "before the outage");
    let admin_token = app.token("auth0|outage-admin", &["read:users"]);
    assert_eq!(
        app.get_me(&admin_token).await.status(),
        200,
        "admin before the outage"
    );

    let outage = Outage::begin(&base, &app.database_url);

    // A user seen moments ago is still served from the user cache.
    assert_eq!(
        app.get_me(&token).await.status(),
        200,
        "known user, from the cache"
    );
    for (case, path, token) in [
        ("new user", "/users/me", app.token("auth0|outage-new", &[])),
        (
            "a list, which needs the database",
            "/users",
            admin_token.clone(),
        ),
    ] {
        let r = app.get(path, &token).await;
        let retry_after = header(&r, "retry-after");
        let body = assert_problem(r, 503, case).await;
        assert!(retry_after.is_some(), "{case}: Retry-After");
        let text = body.to_string();
        assert!(
            !text.contains("FATAL") && !text.contains("SELECT"),
            "{case}: no database text leaks: {text}"
        );
    }
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["database"], "unavailable", "{body}");
    assert_eq!(body["keys"], "ok", "{body}");

    outage.end();
    // A new user needs the database: the cached one would answer anyway.
    let after = app.token("auth0|outage-after", &[]);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let status = app.get_me(&after).await.status().as_u16();
        statuses.push(status);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "while recovering: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        statuses.last(),
        Some(&200),
        "the app must recover by itself: {statuses:?}"
    );
    // Readiness follows within a probe interval of the database answering.
    let mut ready = Vec::new();
    for _ in 0..20 {
        ready.push(app.get_anonymous("/readyz").await.status().as_u16());
        if ready.last() == Some(&200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.last(), Some(&200), "ready again: {ready:?}");
}

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
