//! PostgreSQL's first logins inserted together: the first logins queued
//! behind one insert are inserted after it in one statement and one
//! transaction, and a tombstoned subject among them fails alone.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl, connection::SimpleConnection, pg::PgConnection};
use futures::future::{join, join_all};
use reqwest::Response;
use serde_json::{Value, json};

use crate::{
    lifecycle::{DELETED, assert_refused},
    support::{
        app::{TestApp, id_of},
        db::{Backend, rows_with_sub, with_db},
    },
};

/// The subject whose row another session holds uncommitted, without an
/// email; its login's token carries this one.
const HELD: &str = "auth0|first-logins-held";
const HELD_EMAIL: &str = "held@example.com";

/// `/users/me` with each of `tokens`, sent while the first login of [`HELD`]
/// waits on the unique index for another session's uncommitted row of that
/// subject: the answer to [`HELD`]'s login, then theirs, once that session
/// ended with `end` (`COMMIT` or `ROLLBACK`).
async fn behind_a_held_insert(
    app: &TestApp,
    tokens: &[String],
    end: &str,
) -> (Response, Vec<Response>) {
    let mut holder = PgConnection::establish(&app.database_url).expect("holder connection");
    holder
        .batch_execute(&format!(
            "BEGIN; INSERT INTO users (sub, created_at, updated_at) \
             VALUES ('{HELD}', now(), now());"
        ))
        .expect("an uncommitted row");
    let held_token = app.token_with(HELD, &[], &json!({ "email": HELD_EMAIL }));
    let held = app.get_me(&held_token);
    let behind = async {
        // The held login's batch is waiting on the lock by then …
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        let (answers, ()) = join(join_all(tokens.iter().map(|t| app.get_me(t))), async {
            // … and these logins have queued behind it.
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
async fn first_logins_queued_behind_an_insert_are_inserted_in_one_transaction() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn_on(backend).await;
    let subs: Vec<String> = (0..8).map(|i| format!("auth0|batched-{i}")).collect();
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, behind) = behind_a_held_insert(&app, &tokens, "ROLLBACK").await;
    let user = assert_user(held, HELD).await;
    assert_eq!(user["email"], HELD_EMAIL, "the row its login inserted");
    for (answer, sub) in behind.into_iter().zip(&subs) {
        assert_user(answer, sub).await;
    }
    for sub in subs.iter().chain([&HELD.to_owned()]) {
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
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let gone = "auth0|batched-gone";
    let user = app.create_user(&admin, json!({ "sub": gone })).await;
    let r = app
        .delete(&format!("/users/{}", id_of(&user)), &admin)
        .await;
    assert_eq!(r.status(), 204);
    let subs = [gone, "auth0|batched-a", "auth0|batched-b"];
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, mut behind) = behind_a_held_insert(&app, &tokens, "ROLLBACK").await;
    assert_user(held, HELD).await;
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
    let app = TestApp::spawn_on(backend).await;
    let subs = ["auth0|batched-after-a-commit"];
    let tokens: Vec<String> = subs.iter().map(|s| app.token(s, &[])).collect();
    let (held, behind) = behind_a_held_insert(&app, &tokens, "COMMIT").await;
    let user = assert_user(held, HELD).await;
    assert_eq!(
        user["email"],
        Value::Null,
        "the row the other session committed"
    );
    for (answer, sub) in behind.into_iter().zip(subs) {
        assert_user(answer, sub).await;
    }
    assert_eq!(rows_with_sub(&app.database_url, HELD).await, 1);
}
