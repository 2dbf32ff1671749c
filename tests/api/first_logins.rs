//! PostgreSQL's first logins inserted together: the first logins queued
//! while every inserting thread is busy are inserted next in one statement
//! and one transaction; a tombstoned subject among them is refused alone,
//! and a login whose row another session committed first gets that row.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl, connection::SimpleConnection, pg::PgConnection};
use futures::future::{join, join_all};
use reqwest::Response;
use serde_json::{Value, json};

use usergate::users::first_logins::inserters;

use crate::{
    lifecycle::{DELETED, assert_refused},
    support::{
        app::{ADMIN, ALL, Options, TestApp, id_of},
        db::{Backend, rows_with_sub, with_db},
    },
};

/// The subjects whose rows another session holds uncommitted, without an
/// email, one per inserting thread; their logins' tokens carry this one.
fn held_subs() -> Vec<String> {
    (0..inserters(POOL_SIZE))
        .map(|i| format!("auth0|first-logins-held-{i}"))
        .collect()
}
const HELD_EMAIL: &str = "held@example.com";

/// The connections of the apps here: four inserting threads.
const POOL_SIZE: u32 = 8;

/// An app on `backend` with [`POOL_SIZE`] connections.
async fn app_on(backend: Backend) -> TestApp {
    TestApp::spawn_with(Options::new(backend).env("DATABASE_POOL_SIZE", &POOL_SIZE.to_string()))
        .await
}

/// `/users/me` with each of `tokens`, sent while each inserting thread
/// waits, with the first login of one of [`held_subs`]'s subjects, on the unique
/// index for another session's uncommitted row of that subject: the
/// answers to the held logins, then theirs, once that session ended with
/// `end` (`COMMIT` or `ROLLBACK`).
async fn behind_held_inserts(
    app: &TestApp,
    tokens: &[String],
    end: &str,
) -> (Vec<Response>, Vec<Response>) {
    let mut holder = PgConnection::establish(&app.database_url).expect("holder connection");
    let rows: Vec<String> = held_subs()
        .iter()
        .map(|sub| format!("('{sub}', now(), now())"))
        .collect();
    holder
        .batch_execute(&format!(
            "BEGIN; INSERT INTO users (sub, created_at, updated_at) VALUES {};",
            rows.join(", ")
        ))
        .expect("uncommitted rows");
    let held_tokens: Vec<String> = held_subs()
        .iter()
        .map(|sub| app.token_with(sub, &[], &json!({ "email": HELD_EMAIL })))
        .collect();
    // One at a time, so that each takes a thread of its own.
    let held = join_all(held_tokens.iter().enumerate().map(|(i, token)| async move {
        actix_web::rt::time::sleep(Duration::from_millis(150 * i as u64)).await;
        app.get_me(token).await
    }));
    let behind = async {
        // Every thread is waiting on the lock by then …
        actix_web::rt::time::sleep(Duration::from_millis(
            150 * inserters(POOL_SIZE) as u64 + 300,
        ))
        .await;
        let (answers, ()) = join(join_all(tokens.iter().map(|t| app.get_me(t))), async {
            // … and these logins have queued behind them.
            actix_web::rt::time::sleep(Duration::from_millis(700)).await;
            holder
                .batch_execute(end)
                .expect("end of the holder's transaction");
        })
        .await;
        answers
    };
    join(held, behind).await
}

/// Each held login answered with its subject's row; the users, for more checks.
async fn assert_held(answers: Vec<Response>) -> Vec<Value> {
    let mut users = Vec::new();
    for (answer, sub) in answers.into_iter().zip(held_subs()) {
        users.push(assert_user(answer, &sub).await);
    }
    users
}

#[derive(diesel::QueryableByName)]
struct Transactions {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// How many transactions inserted the rows whose `sub` starts with `prefix`.
async fn transactions_inserting(database_url: &str, prefix: &str) -> i64 {
    let query =
        format!("SELECT count(DISTINCT xmin::text) AS n FROM users WHERE sub LIKE '{prefix}%'");
    with_db(database_url, move |conn| {
        diesel::sql_query(query).get_result::<Transactions>(conn)
    })
    .await
    .expect("xmin")
    .n
}

async fn assert_user(response: Response, sub: &str) -> Value {
    assert_eq!(response.status(), 200, "{sub}");
    let user: Value = response.json().await.expect("user json");
    assert_eq!(user["sub"], sub);
    user
}

#[actix_web::test]
async fn first_logins_queued_while_every_inserter_is_busy_are_inserted_in_one_transaction() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = app_on(backend).await;
    let subs: Vec<String> = (0..8).map(|i| format!("auth0|batched-{i}")).collect();
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, behind) = behind_held_inserts(&app, &tokens, "ROLLBACK").await;
    for user in assert_held(held).await {
        assert_eq!(user["email"], HELD_EMAIL, "the row its login inserted");
    }
    for (answer, sub) in behind.into_iter().zip(&subs) {
        assert_user(answer, sub).await;
    }
    for sub in subs.iter().chain(&held_subs()) {
        assert_eq!(rows_with_sub(&app.database_url, sub).await, 1, "{sub}");
    }
    assert_eq!(
        transactions_inserting(&app.database_url, "auth0|batched-").await,
        1,
        "the eight rows are one transaction's"
    );
}

#[actix_web::test]
async fn a_tombstoned_subject_among_queued_first_logins_fails_alone() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = app_on(backend).await;
    let admin = app.token(ADMIN, ALL);
    let gone = "auth0|batched-gone";
    let user = app.create_user(&admin, json!({ "sub": gone })).await;
    let r = app
        .delete(&format!("/users/{}", id_of(&user)), &admin)
        .await;
    assert_eq!(r.status(), 204);
    let subs = [gone, "auth0|batched-a", "auth0|batched-b"];
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, mut behind) = behind_held_inserts(&app, &tokens, "ROLLBACK").await;
    assert_held(held).await;
    let refused = behind.remove(0);
    assert_refused(refused, "user-deleted", DELETED, gone).await;
    for (answer, sub) in behind.into_iter().zip(&subs[1..]) {
        assert_user(answer, sub).await;
    }
    assert_eq!(rows_with_sub(&app.database_url, gone).await, 0);
    for sub in &subs[1..] {
        assert_eq!(rows_with_sub(&app.database_url, sub).await, 1, "{sub}");
    }
}

#[actix_web::test]
async fn a_first_login_that_loses_the_race_to_another_session_answers_with_its_row() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = app_on(backend).await;
    let subs = ["auth0|batched-after-a-commit"];
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, behind) = behind_held_inserts(&app, &tokens, "COMMIT").await;
    for user in assert_held(held).await {
        assert_eq!(
            user["email"],
            Value::Null,
            "the row the other session committed"
        );
    }
    for (answer, sub) in behind.into_iter().zip(subs) {
        assert_user(answer, sub).await;
    }
    for sub in held_subs() {
        assert_eq!(rows_with_sub(&app.database_url, &sub).await, 1, "{sub}");
    }
}
