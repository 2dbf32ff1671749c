//! The `/users` resource over real HTTP, on SQLite and on PostgreSQL.
//! Shared helpers live here; each area is a file.

mod admin;
mod docs;
mod listing;
mod me;
mod validation;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use actix_web::web;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeDelta};
use diesel::{Connection, ExpressionMethods, QueryDsl, QueryResult, RunQueryDsl};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use usergate::{
    db::{DatabaseUrl, DbConnection, build_pool, schema::users},
    users::model::{NewUser, now},
};

use crate::helpers::{Backend, Options, TestApp, assert_problem, challenge, keys};

const ADMIN: &str = "auth0|admin";
const ALL: &[&str] = &["read:users", "create:users", "update:users", "delete:users"];
const USER_FIELDS: &[&str] = &[
    "created_at",
    "email",
    "id",
    "is_active",
    "last_seen_at",
    "name",
    "sub",
    "updated_at",
];

// ---------------------------------------------------------------- helpers

/// The app on `backend` and a token holding every users permission.
async fn app_and_admin(backend: Backend) -> (TestApp, String) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token(ADMIN, ALL);
    // The admin's row exists from here on, with the smallest id.
    expect_json(app.get_me(&admin).await, 200, "admin's first request").await;
    (app, admin)
}

/// A token for `sub` whose claims are patched with `extra` (e.g. email, name, scope).
fn token_with(app: &TestApp, sub: &str, permissions: &[&str], extra: &Value) -> String {
    let mut claims = app.issuer.claims(sub, permissions);
    for (key, value) in extra.as_object().expect("object") {
        claims[key] = value.clone();
    }
    keys().primary.sign(&claims)
}

/// Asserts a JSON success answer and returns its body.
async fn expect_json(response: Response, status: u16, context: &str) -> Value {
    let got = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{context}: status (body {text})");
    assert_eq!(content_type, "application/json", "{context}: content type");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"))
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn time(user: &Value, field: &str) -> DateTime<FixedOffset> {
    let text = user[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {user}"));
    assert!(text.ends_with('Z'), "{field} is UTC: {text}");
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
}

/// Asserts the User JSON shape and the members of `expected`.
fn assert_user(user: &Value, expected: &Value, context: &str) {
    let mut fields: Vec<&str> = user
        .as_object()
        .unwrap_or_else(|| panic!("{context}: not an object: {user}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, USER_FIELDS, "{context}: fields of {user}");
    assert!(
        user["id"].as_i64().is_some_and(|id| id > 0),
        "{context}: id {user}"
    );
    assert!(
        user["is_active"].is_boolean(),
        "{context}: is_active {user}"
    );
    for field in ["email", "name"] {
        assert!(
            user[field].is_null() || user[field].is_string(),
            "{context}: {field} {user}"
        );
    }
    let created = time(user, "created_at");
    assert!(time(user, "updated_at") >= created, "{context}: {user}");
    if !user["last_seen_at"].is_null() {
        time(user, "last_seen_at");
    }
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(&user[key], value, "{context}: {key} of {user}");
    }
}

fn id_of(user: &Value) -> i64 {
    user["id"].as_i64().expect("id")
}

async fn get_user(app: &TestApp, admin: &str, id: i64) -> Value {
    let context = format!("GET /users/{id}");
    expect_json(app.get(&format!("/users/{id}"), admin).await, 200, &context).await
}

/// `GET /users{query}`, asserting the list shape.
async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let context = format!("GET /users{query}");
    let page = expect_json(
        app.get(&format!("/users{query}"), token).await,
        200,
        &context,
    )
    .await;
    let mut members: Vec<&str> = page
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["count", "next", "previous", "results"],
        "{context}"
    );
    assert!(page["count"].is_i64(), "{context}: count");
    for user in page["results"].as_array().expect("results") {
        assert_user(user, &json!({}), &context);
    }
    page
}

fn subs(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|u| u["sub"].as_str().expect("sub").to_owned())
        .collect()
}

fn ids(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(id_of)
        .collect()
}

/// `?search=…`, encoded.
fn search(text: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("search", text)
        .finish();
    format!("?{query}")
}

/// Follows `next` links from `url` to the last page; returns every page.
async fn walk(app: &TestApp, token: &str, url: String) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = Some(url);
    while let Some(next) = url {
        assert!(pages.len() < 100, "next links loop: {next}");
        let r = app
            .client
            .get(&next)
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let page = expect_json(r, 200, &next).await;
        url = page["next"].as_str().map(str::to_owned);
        pages.push(page);
    }
    pages
}

/// How many users the table holds.
async fn count(app: &TestApp, admin: &str) -> i64 {
    list(app, admin, "?limit=1").await["count"]
        .as_i64()
        .expect("count")
}

/// Runs `f` on a connection of its own to the app's database.
async fn with_db<T, F>(app: &TestApp, f: F) -> T
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let url = DatabaseUrl::parse(&app.database_url).expect("database url");
    web::block(move || {
        let pool = build_pool(&url, 1);
        let mut conn = pool.get().expect("test connection");
        f(&mut conn)
    })
    .await
    .expect("blocking task")
    .expect("query")
}

async fn set_last_seen(app: &TestApp, sub: &str, at: Option<NaiveDateTime>) {
    let sub = sub.to_owned();
    let updated = with_db(app, move |conn| {
        diesel::update(users::table.filter(users::sub.eq(sub)))
            .set(users::last_seen_at.eq(at))
            .execute(conn)
    })
    .await;
    assert_eq!(updated, 1, "one row's last_seen_at set");
}

async fn set_created_at(app: &TestApp, sub: &str, at: NaiveDateTime) {
    let sub = sub.to_owned();
    let updated = with_db(app, move |conn| {
        diesel::update(users::table.filter(users::sub.eq(sub)))
            .set(users::created_at.eq(at))
            .execute(conn)
    })
    .await;
    assert_eq!(updated, 1, "one row's created_at set");
}

fn day(d: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 1, d)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .expect("date")
}

/// Inserts `n` users straight into the table (quicker than `n` requests).
async fn seed(app: &TestApp, n: usize) {
    with_db(app, move |conn| {
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
    .await;
}

/// POSTs `body` to `path` with `Transfer-Encoding: chunked` (no
/// Content-Length) over a raw connection; returns the status line's code and
/// the whole response.
async fn post_chunked(app: &TestApp, path: &str, token: &str, body: Vec<u8>) -> (u16, String) {
    let host = app.address.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    web::block(move || {
        let mut stream = TcpStream::connect(&host).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // The server may answer before reading everything; what matters is the answer.
        let _ = (|| -> std::io::Result<()> {
            stream.write_all(head.as_bytes())?;
            for chunk in body.chunks(8192) {
                write!(stream, "{:x}\r\n", chunk.len())?;
                stream.write_all(chunk)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        })();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        (status, response)
    })
    .await
    .expect("blocking task")
}
