//! The user lifecycle on one replica, on both backends: deleted stays
//! deleted, a delete racing first logins leaves no row, a read that began
//! before a write never caches the old row, machine clients have no row.

use std::time::{Duration, Instant};

use diesel::{Connection, ExpressionMethods, QueryDsl, RunQueryDsl, pg::PgConnection};
use futures::future::join_all;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use usergate::db::{
    self, DatabaseUrl,
    schema::{user_tombstones, users},
};

use crate::support::{
    app::TestApp,
    assert::{assert_problem, challenge, header},
    db::Backend,
    keys::keys,
};

pub const ALL: &[&str] = &["read:users", "create:users", "update:users", "delete:users"];

/// Rows and tombstones holding `sub`, read straight from the database.
pub fn rows_and_tombstones(database_url: &str, sub: &str) -> (i64, i64) {
    let url = DatabaseUrl::parse(database_url).expect("database url");
    let mut conn = db::build_pool(&url, 1).get().expect("connection");
    let rows = users::table
        .filter(users::sub.eq(sub))
        .count()
        .get_result(&mut conn)
        .expect("count rows");
    let tombstones = user_tombstones::table
        .filter(user_tombstones::sub.eq(sub))
        .count()
        .get_result(&mut conn)
        .expect("count tombstones");
    (rows, tombstones)
}

/// Asserts a 403 refusal of the user (not of the token) and its problem body.
pub async fn assert_refused(response: Response, slug: &str, detail: &str, context: &str) {
    let www = header(&response, "www-authenticate");
    let problem = assert_problem(response, 403, context).await;
    assert_eq!(
        problem["type"],
        format!("urn:usergate:problem:{slug}"),
        "{context}: {problem}"
    );
    assert_eq!(problem["detail"], detail, "{context}: {problem}");
    assert_eq!(www, None, "{context}: not a token problem, so no challenge");
}

/// A JSON body of a successful answer with `status`.
pub async fn json_of(response: Response, status: u16, context: &str) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{context}: status (body {text})");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"))
}

/// `PATCH /users/{id}` with `body` as `admin`; the changed user.
pub async fn patch_user(app: &TestApp, admin: &str, id: &Value, body: Value) -> Value {
    let r = app
        .send_json(Method::PATCH, &format!("/users/{id}"), admin, &body)
        .await;
    json_of(r, 200, &format!("PATCH {body}")).await
}

pub const DELETED: &str = "this user was deleted";

// ------------------------------------------------------------ tombstones

async fn a_deleted_user_stays_deleted_until_an_admin_creates_it_again(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|lifecycle-admin", ALL);
    let sub = "auth0|deleted-then-back";
    // Every permission: what refuses it must be the deletion, not a scope.
    let user = app.token(sub, ALL);
    let seen = json_of(app.get_me(&user).await, 200, "first sight").await;
    let id = seen["id"].clone();
    patch_user(&app, &admin, &id, json!({"is_active": false})).await;
    let r = app.delete(&format!("/users/{id}"), &admin).await;
    assert_eq!(r.status(), 204, "DELETE");

    let own = format!("/users/{id}");
    let body = json!({"name": "back"});
    for (case, method, path) in [
        ("GET /users/me", Method::GET, "/users/me"),
        ("PATCH /users/me", Method::PATCH, "/users/me"),
        ("GET /users", Method::GET, "/users"),
        ("POST /users", Method::POST, "/users"),
        ("GET own old id", Method::GET, own.as_str()),
        ("PUT own old id", Method::PUT, own.as_str()),
        ("PATCH own old id", Method::PATCH, own.as_str()),
        ("DELETE own old id", Method::DELETE, own.as_str()),
    ] {
        for round in ["from the database", "from the cache"] {
            let r = app.send_json(method.clone(), path, &user, &body).await;
            assert_refused(r, "user-deleted", DELETED, &format!("{case}, {round}")).await;
        }
    }
    let problem = assert_problem(app.get(&own, &admin).await, 404, "GET deleted id").await;
    assert_eq!(problem["type"], "urn:usergate:problem:not-found");
    assert_eq!(rows_and_tombstones(&app.database_url, sub), (0, 1));

    let created = app.create_user(&admin, json!({"sub": sub})).await;
    assert_ne!(created["id"], id, "a new row");
    assert_eq!(rows_and_tombstones(&app.database_url, sub), (1, 0));
    let back = json_of(app.get_me(&user).await, 200, "after re-creation").await;
    assert_eq!(
        (&back["id"], &back["is_active"]),
        (&created["id"], &json!(true))
    );
    let r = app
        .send_json(Method::POST, "/users", &admin, &json!({"sub": sub}))
        .await;
    assert_problem(r, 409, "created twice").await;
}

/// Deletes and first logins of the same subjects, all at once, through
/// `apps` (the first one deletes): nothing may survive behind a tombstone.
pub async fn race_deletes_with_first_logins(apps: &[&TestApp], rounds: usize) {
    let admin_app = apps[0];
    let admin = admin_app.token("auth0|race-admin", ALL);
    for round in 0..rounds {
        let sub = format!("auth0|race-{round}");
        let created = admin_app.create_user(&admin, json!({"sub": sub})).await;
        let token = admin_app.token(&sub, &[]);
        let logins = (0..8).map(|i| apps[i % apps.len()].get_me(&token));
        let path = format!("/users/{}", created["id"]);
        let delete = admin_app.delete(&path, &admin);
        let (deleted, logins) = futures::join!(delete, join_all(logins));
        assert_eq!(deleted.status(), 204, "{sub}: DELETE");
        for r in logins {
            let status = r.status().as_u16();
            assert!(status == 200 || status == 403, "{sub}: login {status}");
        }
        assert_eq!(
            rows_and_tombstones(&admin_app.database_url, &sub),
            (0, 1),
            "{sub}: no row behind the tombstone"
        );
        for app in apps {
            assert_refused(app.get_me(&token).await, "user-deleted", DELETED, &sub).await;
        }
    }
}

async fn a_delete_racing_first_logins_leaves_no_row_behind_a_tombstone(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    race_deletes_with_first_logins(&[&app], 20).await;
}

// ------------------------------------------------------------ machine clients

async fn machine_clients_get_no_row_and_work_by_their_permissions(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|machine-admin", ALL);
    let mut claims = app
        .issuer
        .claims("svc-gty", &["read:users", "create:users"]);
    claims["gty"] = json!("client-credentials");
    let by_gty = keys().primary.sign(&claims);
    let by_sub = app.token("AbCd1234@clients", &["read:users"]);
    let count =
        || async { json_of(app.get("/users", &admin).await, 200, "count").await["count"].clone() };
    let before = count().await;

    let detail = "machine clients (client-credentials tokens) have no user";
    for (name, token) in [("gty", &by_gty), ("@clients", &by_sub)] {
        assert_refused(app.get_me(token).await, "machine-client", detail, name).await;
        let r = app
            .send_json(Method::PATCH, "/users/me", token, &json!({"name": "robot"}))
            .await;
        assert_refused(r, "machine-client", detail, name).await;
        let page = json_of(app.get("/users", token).await, 200, name).await;
        assert_eq!(page["count"], before, "{name}: lists, and made no row");
    }
    let created = app
        .create_user(&by_gty, json!({"sub": "auth0|made-by-a-job"}))
        .await;
    let path = format!("/users/{}", created["id"]);
    assert_eq!(
        json_of(app.get(&path, &by_sub).await, 200, "read").await,
        created
    );
    let r = app.get(&path, &app.token("nothing@clients", &[])).await;
    let www = header(&r, "www-authenticate");
    assert_problem(r, 403, "no read:users").await;
    assert_eq!(
        www.as_deref(),
        Some(
            challenge(
                &app.address,
                r#"error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
            )
            .as_str()
        ),
        "a machine client without read:users gets the whole insufficient-scope challenge"
    );
    let r = app.delete(&path, &by_gty).await;
    assert_problem(r, 403, "no delete:users").await;

    let after = json_of(app.get("/users", &admin).await, 200, "count").await;
    assert_eq!(
        after["count"].as_i64(),
        before.as_i64().map(|n| n + 1),
        "only the job's user"
    );
    for sub in ["svc-gty", "AbCd1234@clients", "nothing@clients"] {
        assert_eq!(rows_and_tombstones(&app.database_url, sub), (0, 0), "{sub}");
    }
}

crate::on_both_backends!(
    a_deleted_user_stays_deleted_until_an_admin_creates_it_again,
    a_delete_racing_first_logins_leaves_no_row_behind_a_tombstone,
    machine_clients_get_no_row_and_work_by_their_permissions,
);

// ------------------------------------------------------------ stale reads

/// How many backends of the database of `database_url` match `condition`
/// in `pg_stat_activity`, passing each one's pid to `per_pid` (e.g.
/// `pg_terminate_backend`).
pub fn pg_backends(
    admin: &mut PgConnection,
    database_url: &str,
    per_pid: &str,
    condition: &str,
) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let name = url::Url::parse(database_url).expect("url").path()[1..].to_owned();
    diesel::sql_query(format!(
        "SELECT count({per_pid}(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND {condition}"
    ))
    .bind::<diesel::sql_types::Text, _>(name)
    .get_result::<Count>(admin)
    .expect("pg_stat_activity")
    .n
}

/// Backends of `database_url` waiting for a lock.
fn lock_waiters(admin: &mut PgConnection, database_url: &str) -> i64 {
    pg_backends(admin, database_url, "", "wait_event_type = 'Lock'")
}

/// A write commits while a read of the same row is held up by its lock: the
/// read, which began first, may answer with the old row, but must not leave
/// it in the cache.
#[actix_web::test]
async fn a_read_that_began_before_a_write_never_puts_the_old_row_back_in_the_cache() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|stale-admin", ALL);
    let sub = "auth0|slow-read";
    let user = app.token(sub, &[]);
    let created = app.create_user(&admin, json!({"sub": sub})).await;
    let mut writer = PgConnection::establish(&app.database_url).expect("writer");
    let mut observer = PgConnection::establish(&app.database_url).expect("observer");
    for round in 0..5 {
        // Never seen: the read will write last_seen_at, and wait for the lock.
        diesel::sql_query("UPDATE users SET last_seen_at = NULL, is_active = true WHERE sub = $1")
            .bind::<diesel::sql_types::Text, _>(sub)
            .execute(&mut writer)
            .expect("reset");
        patch_user(&app, &admin, &created["id"], json!({"is_active": true})).await;

        // The write, as the app makes it: the row, and the announcement, in one
        // transaction, left open.
        diesel::sql_query("BEGIN")
            .execute(&mut writer)
            .expect("begin");
        diesel::sql_query("UPDATE users SET is_active = false, updated_at = now() WHERE sub = $1")
            .bind::<diesel::sql_types::Text, _>(sub)
            .execute(&mut writer)
            .expect("update");
        diesel::sql_query("SELECT pg_notify('usergate_users', $1)")
            .bind::<diesel::sql_types::Text, _>(sub)
            .execute(&mut writer)
            .expect("notify");

        let read = actix_web::rt::spawn({
            let (client, url) = (app.client.clone(), app.url("/users/me"));
            let user = user.clone();
            async move {
                client
                    .get(url)
                    .bearer_auth(user)
                    .send()
                    .await
                    .expect("read")
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock_waiters(&mut observer, &app.database_url) == 0 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the read never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        diesel::sql_query("COMMIT")
            .execute(&mut writer)
            .expect("commit");
        let r = read.await.expect("read task");
        assert_eq!(
            r.status(),
            200,
            "round {round}: the read began before the write"
        );

        // Long enough for the announcement to arrive; the cache must then
        // hold the new row or nothing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for attempt in 0..3 {
            let r = app.get_me(&user).await;
            let context = format!("round {round}, attempt {attempt}");
            assert_refused(r, "user-inactive", "this user is deactivated", &context).await;
        }
    }
}
