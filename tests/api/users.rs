//! The `/users` resource over real HTTP, on SQLite and on PostgreSQL.

// A test fails by panicking; `expect` says where and why.
#![allow(clippy::expect_used)]

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

use crate::{
    helpers::{Backend, Options, TestApp, assert_problem, challenge, keys},
    on_both_backends,
};

on_both_backends!(
    first_sight_creates_the_user_from_the_token_claims,
    concurrent_first_requests_create_exactly_one_row,
    users_change_their_own_name_and_email_and_null_clears_them,
    users_cannot_change_their_own_is_active,
    list_pages_with_limit_and_offset_and_absolute_links,
    list_orders_by_id_created_at_and_email_with_ties_broken_by_id,
    search_matches_sub_email_and_name_case_insensitively,
    hostile_search_text_matches_only_literally_and_never_fails,
    admins_create_read_replace_update_and_delete_users,
    creating_an_existing_sub_is_a_conflict_and_changes_nothing,
    reading_one_user_needs_read_users_unless_it_is_the_callers_own,
    a_deactivated_user_is_refused_everywhere_until_an_admin_reactivates_them,
    last_seen_at_is_written_at_most_once_every_five_minutes,
    a_stale_or_missing_last_seen_at_is_refreshed_by_the_next_request,
    invalid_bodies_are_refused_naming_the_field_and_change_nothing,
    values_at_the_length_limits_are_accepted,
    invalid_list_queries_are_refused_naming_the_parameter,
    malformed_ids_are_refused_naming_the_id,
    bodies_over_64_kib_are_refused_with_413_however_they_are_framed,
    openapi_lists_every_users_operation_with_its_permission,
    docs_redirect_to_a_page_served_entirely_from_the_binary,
    each_admin_operation_without_its_permission_gets_403_insufficient_scope,
    permissions_in_the_scope_claim_count_as_well,
    page_links_follow_forwarded_headers_only_from_trusted_proxies,
);

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

// ---------------------------------------------------------------- /users/me

async fn first_sight_creates_the_user_from_the_token_claims(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let cases = [
        (
            "email and name claims are copied",
            "auth0|ada",
            json!({"email": "ada@example.com", "name": "Ada Lovelace"}),
            json!("ada@example.com"),
            json!("Ada Lovelace"),
        ),
        (
            "no profile claims",
            "auth0|plain",
            json!({}),
            Value::Null,
            Value::Null,
        ),
        (
            "only a name",
            "google-oauth2|1234",
            json!({"name": "Grace"}),
            Value::Null,
            json!("Grace"),
        ),
        (
            "invalid claims are left out, not fatal",
            "auth0|odd",
            json!({"email": "not an email", "name": "x".repeat(201)}),
            Value::Null,
            Value::Null,
        ),
    ];
    for (case, sub, claims, email, name) in cases {
        let token = token_with(&app, sub, &[], &claims);
        let user = expect_json(app.get_me(&token).await, 200, case).await;
        assert_user(
            &user,
            &json!({"sub": sub, "email": email, "name": name, "is_active": true}),
            case,
        );
        assert_eq!(user["updated_at"], user["created_at"], "{case}: {user}");
        assert_eq!(
            user["last_seen_at"], user["created_at"],
            "{case}: the first request is a sighting"
        );

        // Claims are copied on creation only: later tokens don't rewrite the row.
        let later = token_with(
            &app,
            sub,
            &[],
            &json!({"email": "changed@example.com", "name": "Changed"}),
        );
        let again = expect_json(app.get_me(&later).await, 200, case).await;
        assert_eq!(again, user, "{case}: the same row, unchanged");
        let found = list(&app, &admin, &search(sub)).await;
        assert_eq!(found["count"], 1, "{case}: one row for the sub");
        assert_eq!(found["results"][0], user, "{case}: as listed");
    }
}

async fn concurrent_first_requests_create_exactly_one_row(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let token = app.token("auth0|eager", &[]);
    let responses = futures::future::join_all((0..8).map(|_| app.get_me(&token))).await;
    let mut seen = Vec::new();
    for (i, response) in responses.into_iter().enumerate() {
        let user = expect_json(response, 200, &format!("request {i}")).await;
        seen.push(id_of(&user));
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 1, "every request sees the same row: {seen:?}");
    let found = list(&app, &admin, &search("auth0|eager")).await;
    assert_eq!(found["count"], 1, "one row for the sub: {found}");
}

async fn users_change_their_own_name_and_email_and_null_clears_them(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let token = token_with(
        &app,
        "auth0|self",
        &[],
        &json!({"email": "old@example.com", "name": "Old Name"}),
    );
    let mut before = expect_json(app.get_me(&token).await, 200, "first sight").await;
    let cases = [
        (
            "name only",
            json!({"name": "New Name"}),
            json!("old@example.com"),
            json!("New Name"),
        ),
        (
            "email only",
            json!({"email": "new@example.com"}),
            json!("new@example.com"),
            json!("New Name"),
        ),
        (
            "null clears the name",
            json!({"name": null}),
            json!("new@example.com"),
            Value::Null,
        ),
        (
            "both at once",
            json!({"email": null, "name": "Back Again"}),
            Value::Null,
            json!("Back Again"),
        ),
        (
            "empty object changes nothing but updated_at",
            json!({}),
            Value::Null,
            json!("Back Again"),
        ),
    ];
    for (case, body, email, name) in cases {
        let r = app
            .send_json(Method::PATCH, "/users/me", &token, &body)
            .await;
        let after = expect_json(r, 200, case).await;
        assert_user(
            &after,
            &json!({
                "id": before["id"], "sub": "auth0|self", "email": email, "name": name,
                "is_active": true, "created_at": before["created_at"],
                "last_seen_at": before["last_seen_at"],
            }),
            case,
        );
        assert!(
            time(&after, "updated_at") > time(&before, "updated_at"),
            "{case}: updated_at moves: {before} -> {after}"
        );
        let read = expect_json(app.get_me(&token).await, 200, case).await;
        assert_eq!(read, after, "{case}: GET /users/me shows the change");
        before = after;
    }
}

async fn users_cannot_change_their_own_is_active(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    // Even a token holding update:users goes through the admin endpoint, not /me.
    let token = app.token("auth0|self", ALL);
    let before = expect_json(app.get_me(&token).await, 200, "first sight").await;
    for (case, body) in [
        ("is_active true", json!({"is_active": true})),
        ("is_active false", json!({"is_active": false})),
        (
            "is_active beside a valid change",
            json!({"name": "Sneaky", "is_active": true}),
        ),
    ] {
        let r = app
            .send_json(Method::PATCH, "/users/me", &token, &body)
            .await;
        let problem = assert_problem(r, 400, case).await;
        assert_eq!(problem["field"], "is_active", "{case}: {problem}");
        assert_eq!(
            problem["type"], "urn:usergate:problem:invalid-field",
            "{case}"
        );
        let after = expect_json(app.get_me(&token).await, 200, case).await;
        assert_eq!(after, before, "{case}: nothing changed");
    }
}

// ---------------------------------------------------------------- listing

async fn list_pages_with_limit_and_offset_and_absolute_links(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    seed(&app, 105).await;
    let base = format!("{}/users", app.address);
    let mut all = ids(&list(&app, &admin, "?limit=100").await);
    all.extend(ids(&list(&app, &admin, "?limit=100&offset=100").await));
    assert_eq!(all.len(), 106, "the admin and 105 seeded users");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "by id by default");

    let link = |q: &str| Value::String(format!("{base}?{q}"));
    // (query, offset, page size, next, previous)
    #[rustfmt::skip]
    let cases = [
        ("", 0, 50, link("limit=50&offset=50"), Value::Null),
        ("?limit=10", 0, 10, link("limit=10&offset=10"), Value::Null),
        ("?limit=10&offset=10", 10, 10, link("limit=10&offset=20"), link("limit=10")),
        ("?offset=15&limit=10", 15, 10, link("limit=10&offset=25"), link("limit=10&offset=5")),
        ("?limit=10&offset=100", 100, 6, Value::Null, link("limit=10&offset=90")),
        ("?limit=10&offset=500", 500, 0, Value::Null, link("limit=10&offset=490")),
        ("?limit=100", 0, 100, link("limit=100&offset=100"), Value::Null),
        ("?limit=1000", 0, 100, link("limit=100&offset=100"), Value::Null),
        ("?limit=99999999999", 0, 100, link("limit=100&offset=100"), Value::Null),
    ];
    for (query, offset, size, next, previous) in cases {
        let page = list(&app, &admin, query).await;
        assert_eq!(page["count"], 106, "{query}: count");
        let expected: Vec<i64> = all.iter().copied().skip(offset).take(size).collect();
        assert_eq!(ids(&page), expected, "{query}: results");
        assert_eq!(page["next"], next, "{query}: next");
        assert_eq!(page["previous"], previous, "{query}: previous");
    }

    // The links are followable as they are: walking them visits every row once.
    let pages = walk(&app, &admin, format!("{base}?limit=30")).await;
    assert_eq!(pages.len(), 4, "106 rows, 30 a page");
    let walked: Vec<i64> = pages.iter().flat_map(ids).collect();
    assert_eq!(walked, all, "walking next links");
}

async fn list_orders_by_id_created_at_and_email_with_ties_broken_by_id(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    // (sub, email, day created): ties on email and on created_at on purpose.
    let rows = [
        ("auth0|o1", Some("carol@example.com"), 2),
        ("auth0|o2", Some("bob@example.com"), 1),
        ("auth0|o3", None, 2),
        ("auth0|o4", Some("alice@example.com"), 1),
        ("auth0|o5", Some("bob@example.com"), 2),
    ];
    for (sub, email, created) in rows {
        app.create_user(&admin, json!({"sub": sub, "email": email}))
            .await;
        set_created_at(&app, sub, day(created)).await;
    }
    set_created_at(&app, ADMIN, day(3)).await;

    #[rustfmt::skip]
    let cases: [(&str, &[&str]); 4] = [
        ("id", &[ADMIN, "auth0|o1", "auth0|o2", "auth0|o3", "auth0|o4", "auth0|o5"]),
        ("created_at", &["auth0|o2", "auth0|o4", "auth0|o1", "auth0|o3", "auth0|o5", ADMIN]),
        // Missing emails last.
        ("email", &["auth0|o4", "auth0|o2", "auth0|o5", "auth0|o1", ADMIN, "auth0|o3"]),
        // Ordering applies within a search.
        ("email&search=bob", &["auth0|o2", "auth0|o5"]),
    ];
    for (ordering, ascending) in cases {
        let mut descending = ascending.to_vec();
        descending.reverse();
        for (ordering, expected) in [
            (ordering.to_owned(), ascending.to_vec()),
            (format!("-{ordering}"), descending),
        ] {
            let page = list(&app, &admin, &format!("?ordering={ordering}")).await;
            assert_eq!(subs(&page), expected, "ordering={ordering}");

            // Two at a time, following next: the same order, nothing repeated or skipped.
            let url = format!("{}/users?limit=2&ordering={ordering}", app.address);
            let pages = walk(&app, &admin, url).await;
            let field = ordering.split('&').next().unwrap_or_default();
            for page in &pages {
                if let Some(link) = page["next"].as_str() {
                    assert!(
                        link.contains(&format!("ordering={field}")),
                        "ordering={ordering}: next keeps the ordering: {link}"
                    );
                }
            }
            let walked: Vec<String> = pages.iter().flat_map(subs).collect();
            assert_eq!(walked, expected, "ordering={ordering}, page by page");
        }
    }
}

async fn search_matches_sub_email_and_name_case_insensitively(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    for body in [
        json!({"sub": "auth0|ada", "email": "Ada.Lovelace@Example.com", "name": "Ada Lovelace"}),
        json!({"sub": "google-oauth2|GRACE", "email": "grace@navy.mil", "name": "Grace Hopper"}),
        json!({"sub": "auth0|linus"}),
    ] {
        app.create_user(&admin, body).await;
    }
    let cases: [(&str, &[&str]); 11] = [
        ("ada", &["auth0|ada"]),
        ("LOVELACE", &["auth0|ada"]),
        ("example.COM", &["auth0|ada"]),
        ("grace", &["google-oauth2|GRACE"]),
        ("GOOGLE-OAUTH2|", &["google-oauth2|GRACE"]),
        ("hOPPER", &["google-oauth2|GRACE"]),
        ("NAVY.mil", &["google-oauth2|GRACE"]),
        ("auth0|", &[ADMIN, "auth0|ada", "auth0|linus"]),
        ("  linus  ", &["auth0|linus"]),
        ("nobody", &[]),
        (
            "",
            &[ADMIN, "auth0|ada", "google-oauth2|GRACE", "auth0|linus"],
        ),
    ];
    for (text, expected) in cases {
        let page = list(&app, &admin, &search(text)).await;
        assert_eq!(subs(&page), expected, "search {text:?}");
        assert_eq!(page["count"], expected.len(), "search {text:?}: count");
    }
}

async fn hostile_search_text_matches_only_literally_and_never_fails(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    for (sub, name) in [
        ("auth0|h1", "50%_off"),
        ("auth0|h2", "O'Brien"),
        ("auth0|h3", r"back\slash"),
        ("auth0|h4", "under_score"),
        ("auth0|h5", r#"say "hi""#),
    ] {
        app.create_user(&admin, json!({"sub": sub, "name": name}))
            .await;
    }
    let cases: [(&str, &[&str]); 15] = [
        ("%", &["auth0|h1"]),
        ("_", &["auth0|h1", "auth0|h4"]),
        ("%_", &["auth0|h1"]),
        ("0%_O", &["auth0|h1"]),
        ("%%", &[]),
        ("_%", &[]),
        (r"\", &["auth0|h3"]),
        (r"\%", &[]),
        (r"k\s", &["auth0|h3"]),
        ("'", &["auth0|h2"]),
        ("\"", &["auth0|h5"]),
        ("' OR 1=1 --", &[]),
        ("' OR '1'='1", &[]),
        ("\"; DROP TABLE users; --", &[]),
        ("'; DELETE FROM users; --", &[]),
    ];
    for (text, expected) in cases {
        let page = list(&app, &admin, &search(text)).await;
        assert_eq!(subs(&page), expected, "search {text:?}");
        assert_eq!(page["count"], expected.len(), "search {text:?}: count");
    }
    // Text no row can hold is refused, not passed to the database.
    for text in ["a\u{0}b", "\u{0}", "a\u{7}b"] {
        let r = app.get(&format!("/users{}", search(text)), &admin).await;
        let problem = assert_problem(r, 400, &format!("search {text:?}")).await;
        assert_eq!(problem["field"], "search", "search {text:?}: {problem}");
    }
    let r = app
        .get(&format!("/users{}", search(&"x".repeat(256))), &admin)
        .await;
    let problem = assert_problem(r, 400, "search of 256 characters").await;
    assert_eq!(problem["field"], "search", "{problem}");
    assert_eq!(count(&app, &admin).await, 6, "every row is still there");
}

// ---------------------------------------------------------------- admin CRUD

async fn admins_create_read_replace_update_and_delete_users(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;

    let r = app
        .send_json(
            Method::POST,
            "/users",
            &admin,
            &json!({"sub": "auth0|crud", "email": "crud@example.com", "name": "Crud", "is_active": true}),
        )
        .await;
    let location = header(&r, "location");
    let created = expect_json(r, 201, "create").await;
    let id = id_of(&created);
    assert_user(
        &created,
        &json!({"sub": "auth0|crud", "email": "crud@example.com", "name": "Crud",
                "is_active": true, "last_seen_at": null}),
        "create",
    );
    assert_eq!(created["updated_at"], created["created_at"], "create");
    assert_eq!(location, format!("{}/users/{id}", app.address), "Location");
    let r = app
        .client
        .get(&location)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(r, 200, "GET Location").await,
        created,
        "GET Location"
    );

    let minimal = app
        .create_user(&admin, json!({"sub": "auth0|minimal"}))
        .await;
    assert_user(
        &minimal,
        &json!({"sub": "auth0|minimal", "email": null, "name": null, "is_active": true,
                "last_seen_at": null}),
        "create with the sub only",
    );

    let path = format!("/users/{id}");
    // (case, method, body, expected email, name, is_active)
    let steps = [
        (
            "PUT replaces, clearing what it leaves out",
            Method::PUT,
            json!({"name": "Replaced", "is_active": false}),
            Value::Null,
            json!("Replaced"),
            false,
        ),
        (
            "PUT with every field",
            Method::PUT,
            json!({"email": "put@example.com", "name": "Put", "is_active": true}),
            json!("put@example.com"),
            json!("Put"),
            true,
        ),
        (
            "PATCH changes only what it sends",
            Method::PATCH,
            json!({"email": "patched@example.com"}),
            json!("patched@example.com"),
            json!("Put"),
            true,
        ),
        (
            "PATCH with null clears",
            Method::PATCH,
            json!({"name": null, "is_active": false}),
            json!("patched@example.com"),
            Value::Null,
            false,
        ),
        (
            "PATCH reactivates",
            Method::PATCH,
            json!({"is_active": true}),
            json!("patched@example.com"),
            Value::Null,
            true,
        ),
    ];
    let mut before = created.clone();
    for (case, method, body, email, name, is_active) in steps {
        let r = app.send_json(method, &path, &admin, &body).await;
        let after = expect_json(r, 200, case).await;
        assert_user(
            &after,
            &json!({"id": id, "sub": "auth0|crud", "email": email, "name": name,
                    "is_active": is_active, "created_at": created["created_at"],
                    "last_seen_at": null}),
            case,
        );
        assert!(
            time(&after, "updated_at") > time(&before, "updated_at"),
            "{case}: updated_at moves"
        );
        assert_eq!(get_user(&app, &admin, id).await, after, "{case}: as read");
        before = after;
    }

    let users_before = count(&app, &admin).await;
    let r = app.delete(&path, &admin).await;
    assert_eq!(r.status(), 204, "DELETE");
    assert!(r.text().await.expect("body").is_empty(), "204 has no body");
    assert_eq!(count(&app, &admin).await, users_before - 1, "one row fewer");
    assert_eq!(
        get_user(&app, &admin, id_of(&minimal)).await,
        minimal,
        "the other row stays"
    );

    let body = json!({"is_active": true});
    for (case, r) in [
        ("GET after DELETE", app.get(&path, &admin).await),
        (
            "PUT after DELETE",
            app.send_json(Method::PUT, &path, &admin, &body).await,
        ),
        (
            "PATCH after DELETE",
            app.send_json(Method::PATCH, &path, &admin, &body).await,
        ),
        ("DELETE after DELETE", app.delete(&path, &admin).await),
        (
            "GET of an id never used",
            app.get("/users/999999", &admin).await,
        ),
    ] {
        let problem = assert_problem(r, 404, case).await;
        assert_eq!(problem["type"], "urn:usergate:problem:not-found", "{case}");
    }
    assert_eq!(
        count(&app, &admin).await,
        users_before - 1,
        "nothing recreated"
    );
}

async fn creating_an_existing_sub_is_a_conflict_and_changes_nothing(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let existing = app
        .create_user(
            &admin,
            json!({"sub": "auth0|dup", "email": "first@example.com", "name": "First"}),
        )
        .await;
    let seen = expect_json(
        app.get_me(&app.token("auth0|seen", &[])).await,
        200,
        "first sight",
    )
    .await;
    for (case, target) in [
        ("a sub created by an admin", &existing),
        ("a sub created from its token", &seen),
    ] {
        let users_before = count(&app, &admin).await;
        let body = json!({"sub": target["sub"], "email": "second@example.com", "name": "Second",
                          "is_active": false});
        let r = app.send_json(Method::POST, "/users", &admin, &body).await;
        assert!(header(&r, "location").is_empty(), "{case}: no Location");
        let problem = assert_problem(r, 409, case).await;
        assert_eq!(problem["type"], "urn:usergate:problem:conflict", "{case}");
        assert_eq!(
            &get_user(&app, &admin, id_of(target)).await,
            target,
            "{case}: the row is unchanged"
        );
        assert_eq!(
            count(&app, &admin).await,
            users_before,
            "{case}: no new row"
        );
    }
}

async fn reading_one_user_needs_read_users_unless_it_is_the_callers_own(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let admin_row = expect_json(app.get_me(&admin).await, 200, "admin").await;
    let plain = app.token("auth0|plain", &["update:users"]);
    let own = expect_json(app.get_me(&plain).await, 200, "plain user").await;
    let own_path = format!("/users/{}", id_of(&own));

    let r = app.get(&own_path, &plain).await;
    assert_eq!(
        expect_json(r, 200, "own id").await,
        own,
        "own id without read:users"
    );
    let r = app.get(&own_path, &admin).await;
    assert_eq!(
        expect_json(r, 200, "an admin").await,
        own,
        "another's id with read:users"
    );

    for (case, path) in [
        ("another user's id", format!("/users/{}", id_of(&admin_row))),
        (
            "an absent id (no hint that it is absent)",
            "/users/999999".to_owned(),
        ),
    ] {
        let r = app.get(&path, &plain).await;
        let www = challenge(&r);
        let problem = assert_problem(r, 403, case).await;
        assert!(
            www.starts_with(r#"Bearer error="insufficient_scope", scope="read:users""#),
            "{case}: {www}"
        );
        assert_eq!(
            problem["type"], "urn:usergate:problem:insufficient-scope",
            "{case}"
        );
    }
}

// ---------------------------------------------------------------- deactivation

async fn a_deactivated_user_is_refused_everywhere_until_an_admin_reactivates_them(
    backend: Backend,
) {
    let (app, admin) = app_and_admin(backend).await;
    // Every permission there is: deactivation trumps them all.
    let banned = app.token("auth0|banned", ALL);
    let victim = expect_json(app.get_me(&banned).await, 200, "first sight").await;
    let other = app
        .create_user(&admin, json!({"sub": "auth0|other", "name": "Other"}))
        .await;
    let (me, them) = (
        format!("/users/{}", id_of(&victim)),
        format!("/users/{}", id_of(&other)),
    );
    let (me, them) = (me.as_str(), them.as_str());
    let r = app
        .send_json(Method::PATCH, me, &admin, &json!({"is_active": false}))
        .await;
    let deactivated = expect_json(r, 200, "deactivate").await;
    assert_eq!(deactivated["is_active"], false, "deactivate");
    let users_before = count(&app, &admin).await;

    let name = json!({"name": "Changed"});
    let create = json!({"sub": "auth0|made-by-banned"});
    let (activate, deactivate) = (json!({"is_active": true}), json!({"is_active": false}));
    #[rustfmt::skip]
    let cases: Vec<(&str, Method, &str, Option<&Value>)> = vec![
        ("GET /users/me", Method::GET, "/users/me", None),
        ("PATCH /users/me", Method::PATCH, "/users/me", Some(&name)),
        ("GET /users", Method::GET, "/users", None),
        ("POST /users", Method::POST, "/users", Some(&create)),
        ("GET own id", Method::GET, me, None),
        ("PATCH own id to reactivate", Method::PATCH, me, Some(&activate)),
        ("PUT own id to reactivate", Method::PUT, me, Some(&activate)),
        ("GET another id", Method::GET, them, None),
        ("PUT another id", Method::PUT, them, Some(&deactivate)),
        ("PATCH another id", Method::PATCH, them, Some(&name)),
        ("DELETE another id", Method::DELETE, them, None),
        ("DELETE own id", Method::DELETE, me, None),
    ];
    for (case, method, path, body) in cases {
        let r = match body {
            Some(body) => app.send_json(method, path, &banned, body).await,
            None => app
                .client
                .request(method, app.url(path))
                .bearer_auth(&banned)
                .send()
                .await
                .expect("request"),
        };
        let www = challenge(&r);
        let problem = assert_problem(r, 403, case).await;
        assert_eq!(
            problem["type"], "urn:usergate:problem:user-inactive",
            "{case}: {problem}"
        );
        assert_eq!(www, "", "{case}: not a token problem, so no challenge");
    }
    assert_eq!(
        get_user(&app, &admin, id_of(&other)).await,
        other,
        "the other row is untouched"
    );
    assert_eq!(
        get_user(&app, &admin, id_of(&victim)).await,
        deactivated,
        "own row untouched, still deactivated"
    );
    assert_eq!(
        count(&app, &admin).await,
        users_before,
        "nothing created or deleted"
    );

    let r = app
        .send_json(Method::PATCH, me, &admin, &json!({"is_active": true}))
        .await;
    assert_eq!(expect_json(r, 200, "reactivate").await["is_active"], true);
    let back = expect_json(app.get_me(&banned).await, 200, "after reactivation").await;
    assert_user(
        &back,
        &json!({"id": victim["id"], "is_active": true}),
        "after reactivation",
    );
    list(&app, &banned, "").await;

    // A user an admin creates inactive is refused from its very first request.
    app.create_user(
        &admin,
        json!({"sub": "auth0|born-inactive", "is_active": false}),
    )
    .await;
    let r = app.get_me(&app.token("auth0|born-inactive", ALL)).await;
    let problem = assert_problem(r, 403, "created inactive").await;
    assert_eq!(problem["type"], "urn:usergate:problem:user-inactive");
}

// ---------------------------------------------------------------- last_seen_at

async fn last_seen_at_is_written_at_most_once_every_five_minutes(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let token = app.token("auth0|regular", &[]);
    let first = expect_json(app.get_me(&token).await, 200, "first request").await;
    assert_eq!(first["last_seen_at"], first["created_at"], "first request");
    let own = format!("/users/{}", id_of(&first));
    for i in 0..3 {
        let again = expect_json(app.get_me(&token).await, 200, "again").await;
        assert_eq!(again, first, "request {i}: last_seen_at unchanged");
        let by_id = expect_json(app.get(&own, &token).await, 200, "by id").await;
        assert_eq!(by_id, first, "request {i} by id: last_seen_at unchanged");
    }
}

async fn a_stale_or_missing_last_seen_at_is_refreshed_by_the_next_request(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    // (case, how long ago it was last seen; None = never, refreshed?)
    let cases = [
        ("seen 4 minutes ago", Some(4), false),
        ("seen 6 minutes ago", Some(6), true),
        ("seen an hour ago", Some(60), true),
        ("never seen", None, true),
    ];
    for (i, (case, minutes, refreshed)) in cases.into_iter().enumerate() {
        let sub = format!("auth0|sighting-{i}");
        let created = app.create_user(&admin, json!({"sub": sub})).await;
        assert_eq!(
            created["last_seen_at"],
            Value::Null,
            "{case}: created unseen"
        );
        let stale = minutes.map(|m| now() - TimeDelta::minutes(m));
        set_last_seen(&app, &sub, stale).await;
        let before = get_user(&app, &admin, id_of(&created)).await;

        let token = app.token(&sub, &[]);
        let user = expect_json(app.get_me(&token).await, 200, case).await;
        assert_eq!(
            user["updated_at"], before["updated_at"],
            "{case}: a sighting is not an update"
        );
        if refreshed {
            let seen = time(&user, "last_seen_at");
            assert!(
                seen > time(&before, "updated_at"),
                "{case}: moves forward to now: {user}"
            );
            if !before["last_seen_at"].is_null() {
                assert!(seen > time(&before, "last_seen_at"), "{case}: {user}");
            }
        } else {
            assert_eq!(user, before, "{case}: left alone");
        }
        let stored = get_user(&app, &admin, id_of(&created)).await;
        assert_eq!(stored, user, "{case}: as stored");
        let again = expect_json(app.get_me(&token).await, 200, case).await;
        assert_eq!(again, user, "{case}: not moved again by the next request");
    }
}

// ---------------------------------------------------------------- validation

const JSON: Option<&str> = Some("application/json");

/// A refused body: (case, content type, body, the field the answer names).
type Case = (
    &'static str,
    Option<&'static str>,
    String,
    Option<&'static str>,
);

async fn invalid_bodies_are_refused_naming_the_field_and_change_nothing(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let own = app.token("auth0|target", &[]);
    let target = expect_json(app.get_me(&own).await, 200, "target").await;
    let r = app
        .send_json(
            Method::PATCH,
            "/users/me",
            &own,
            &json!({"email": "t@example.com", "name": "Target"}),
        )
        .await;
    let target = {
        let t = expect_json(r, 200, "target's profile").await;
        assert_eq!(t["id"], target["id"]);
        t
    };
    let target_path = format!("/users/{}", id_of(&target));
    let path = target_path.as_str();
    let users_before = count(&app, &admin).await;

    let long_email = format!(
        "{}@{}.{}.{}",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63)
    );
    assert_eq!(long_email.len(), 256);
    let new = |extra: Value| {
        let mut body = json!({"sub": "auth0|new"});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let text = |v: Value| v.to_string();
    // (case, content type, body, field named; None when the body as a whole is at fault)
    #[rustfmt::skip]
    let post: Vec<Case> = vec![
        ("bad email syntax", JSON, new(json!({"email": "not-an-email"})), Some("email")),
        ("email with a space", JSON, new(json!({"email": "a b@example.com"})), Some("email")),
        ("email over 254", JSON, new(json!({"email": long_email})), Some("email")),
        ("name over 200", JSON, new(json!({"name": "n".repeat(201)})), Some("name")),
        ("empty name", JSON, new(json!({"name": ""})), Some("name")),
        ("name with a NUL", JSON, new(json!({"name": "a\u{0}b"})), Some("name")),
        ("empty sub", JSON, text(json!({"sub": ""})), Some("sub")),
        ("blank sub", JSON, text(json!({"sub": "   "})), Some("sub")),
        ("sub over 255", JSON, text(json!({"sub": "s".repeat(256)})), Some("sub")),
        ("missing sub", JSON, text(json!({"name": "x"})), Some("sub")),
        ("sub not a string", JSON, text(json!({"sub": 5})), Some("sub")),
        ("is_active not a boolean", JSON, new(json!({"is_active": "yes"})), Some("is_active")),
        ("is_active null", JSON, new(json!({"is_active": null})), Some("is_active")),
        ("unknown field", JSON, new(json!({"admin": true})), Some("admin")),
        ("id is not settable", JSON, new(json!({"id": 1})), Some("id")),
        ("an array, not an object", JSON, r#"["auth0|new"]"#.into(), Some("body")),
        ("malformed JSON", JSON, r#"{"sub": "auth0|new""#.into(), None),
        ("empty body", JSON, String::new(), None),
        ("text/plain", Some("text/plain"), new(json!({})), None),
        ("form", Some("application/x-www-form-urlencoded"), "sub=auth0%7Cnew".into(), None),
        ("no content type", None, new(json!({})), None),
    ];
    #[rustfmt::skip]
    let patch: Vec<Case> = vec![
        ("bad email", JSON, text(json!({"email": "@example.com"})), Some("email")),
        ("email over 254", JSON, text(json!({"email": long_email})), Some("email")),
        ("name over 200", JSON, text(json!({"name": "é".repeat(201)})), Some("name")),
        ("is_active null", JSON, text(json!({"is_active": null, "name": "x"})), Some("is_active")),
        ("sub is not changeable", JSON, text(json!({"sub": "auth0|hijack"})), Some("sub")),
        ("created_at is not settable", JSON, text(json!({"created_at": "2020-01-01T00:00:00Z"})), Some("created_at")),
        ("an array, not an object", JSON, r#"["x@example.com", "Array"]"#.into(), Some("body")),
        ("malformed JSON", JSON, "{name: 1}".into(), None),
        ("text/plain", Some("text/plain"), text(json!({"name": "x"})), None),
    ];
    #[rustfmt::skip]
    let put: Vec<Case> = vec![
        ("without is_active", JSON, text(json!({"name": "x"})), Some("is_active")),
        ("is_active null", JSON, text(json!({"is_active": null})), Some("is_active")),
        ("bad email", JSON, text(json!({"email": "x@", "is_active": true})), Some("email")),
        ("unknown field", JSON, text(json!({"sub": "auth0|x", "is_active": true})), Some("sub")),
        ("text/plain", Some("text/plain"), text(json!({"is_active": true})), None),
    ];
    #[rustfmt::skip]
    let me: Vec<Case> = vec![
        ("bad email", JSON, text(json!({"email": "nope"})), Some("email")),
        ("name over 200", JSON, text(json!({"name": "n".repeat(201)})), Some("name")),
        ("empty name", JSON, text(json!({"name": ""})), Some("name")),
        ("sub", JSON, text(json!({"sub": "auth0|other"})), Some("sub")),
        ("is_active", JSON, text(json!({"is_active": false})), Some("is_active")),
        ("an empty array", JSON, "[]".into(), Some("body")),
        ("an array", JSON, r#"["x@example.com", "Array"]"#.into(), Some("body")),
        ("malformed JSON", JSON, "{".into(), None),
    ];
    let endpoints = [
        ("POST /users", Method::POST, "/users", admin.as_str(), post),
        (
            "PATCH /users/{id}",
            Method::PATCH,
            path,
            admin.as_str(),
            patch,
        ),
        ("PUT /users/{id}", Method::PUT, path, admin.as_str(), put),
        (
            "PATCH /users/me",
            Method::PATCH,
            "/users/me",
            own.as_str(),
            me,
        ),
    ];
    for (endpoint, method, path, token, cases) in endpoints {
        for (case, content_type, body, field) in cases {
            let case = format!("{endpoint}, {case}");
            let case = case.as_str();
            let r = app
                .send_body(method.clone(), path, token, content_type, body)
                .await;
            let problem = assert_problem(r, 400, case).await;
            match field {
                Some(field) => {
                    assert_eq!(problem["field"], field, "{case}: {problem}");
                    assert_eq!(
                        problem["type"], "urn:usergate:problem:invalid-field",
                        "{case}"
                    );
                }
                None => assert_eq!(
                    problem["type"], "urn:usergate:problem:bad-request",
                    "{case}: {problem}"
                ),
            }
            assert_eq!(
                get_user(&app, &admin, id_of(&target)).await,
                target,
                "{case}: the row is unchanged"
            );
            assert_eq!(
                count(&app, &admin).await,
                users_before,
                "{case}: no new row"
            );
        }
    }
}

async fn values_at_the_length_limits_are_accepted(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let email = format!(
        "{}@{}.{}.{}",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(email.chars().count(), 254);
    let cases = [
        ("sub of 255", json!({"sub": "s".repeat(255)})),
        ("email of 254", json!({"sub": "auth0|e", "email": email})),
        (
            "name of 200",
            json!({"sub": "auth0|n", "name": "n".repeat(200)}),
        ),
        (
            "name of 200 characters, 400 bytes",
            json!({"sub": "auth0|é", "name": "é".repeat(200)}),
        ),
    ];
    for (case, body) in cases {
        let r = app.send_json(Method::POST, "/users", &admin, &body).await;
        let user = expect_json(r, 201, case).await;
        for field in ["sub", "email", "name"] {
            if let Some(value) = body.get(field) {
                assert_eq!(&user[field], value, "{case}: {field} stored whole");
            }
        }
    }
}

async fn invalid_list_queries_are_refused_naming_the_parameter(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let cases = [
        ("?limit=-1", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=0", "limit"),
        ("?limit=1.5", "limit"),
        ("?limit=", "limit"),
        ("?offset=-1", "offset"),
        ("?offset=ten", "offset"),
        ("?offset=99999999999", "offset"),
        ("?ordering=name", "ordering"),
        ("?ordering=-", "ordering"),
        ("?ordering=--id", "ordering"),
        ("?ordering=id,email", "ordering"),
        ("?ordering=sub;DROP", "ordering"),
    ];
    for (query, field) in cases {
        let r = app.get(&format!("/users{query}"), &admin).await;
        let problem = assert_problem(r, 400, query).await;
        assert_eq!(problem["field"], field, "{query}: {problem}");
        assert_eq!(
            problem["type"], "urn:usergate:problem:invalid-field",
            "{query}"
        );
    }
}

async fn malformed_ids_are_refused_naming_the_id(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let users_before = count(&app, &admin).await;
    for id in [
        "abc",
        "1.5",
        "0",
        "-1",
        "1e3",
        "99999999999999999999",
        "%20",
    ] {
        for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
            let case = format!("{method} /users/{id}");
            let r = app
                .send_json(
                    method,
                    &format!("/users/{id}"),
                    &admin,
                    &json!({"is_active": true}),
                )
                .await;
            let problem = assert_problem(r, 400, &case).await;
            assert_eq!(problem["field"], "id", "{case}: {problem}");
        }
    }
    assert_eq!(count(&app, &admin).await, users_before, "nothing deleted");
}

async fn bodies_over_64_kib_are_refused_with_413_however_they_are_framed(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let target = app
        .create_user(&admin, json!({"sub": "auth0|big-target", "name": "Target"}))
        .await;
    let path = format!("/users/{}", id_of(&target));
    // Valid JSON, padded with whitespace to exactly `size` bytes.
    let padded = |body: Value, size: usize| {
        let text = body.to_string();
        let mut bytes = text.as_bytes()[..text.len() - 1].to_vec();
        bytes.resize(size - 1, b' ');
        bytes.push(b'}');
        bytes
    };
    let limit = 64 * 1024;

    let r = app
        .send_body(
            Method::POST,
            "/users",
            &admin,
            Some("application/json"),
            padded(json!({"sub": "auth0|at-the-limit"}), limit),
        )
        .await;
    expect_json(r, 201, "exactly 64 KiB is accepted").await;
    let users_before = count(&app, &admin).await;

    for (case, method, path, body) in [
        (
            "POST one byte over",
            Method::POST,
            "/users",
            padded(json!({"sub": "auth0|too-big"}), limit + 1),
        ),
        (
            "PATCH one byte over",
            Method::PATCH,
            path.as_str(),
            padded(json!({"name": "Changed"}), limit + 1),
        ),
        (
            "PUT of a megabyte",
            Method::PUT,
            path.as_str(),
            padded(json!({"is_active": false}), 1024 * 1024),
        ),
    ] {
        let r = app
            .send_body(method, path, &admin, Some("application/json"), body)
            .await;
        let problem = assert_problem(r, 413, case).await;
        assert_eq!(
            problem["type"], "urn:usergate:problem:payload-too-large",
            "{case}"
        );
    }

    // Without a Content-Length, the limit holds all the same.
    for (case, size) in [
        ("chunked, one byte over", limit + 1),
        ("chunked, 300 KiB", 300 * 1024),
    ] {
        let (status, response) = post_chunked(
            &app,
            "/users",
            &admin,
            padded(json!({"sub": "auth0|too-big-chunked"}), size),
        )
        .await;
        assert_eq!(status, 413, "{case}: {response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "{case}: {response}"
        );
    }
    assert_eq!(
        get_user(&app, &admin, id_of(&target)).await,
        target,
        "the row is unchanged"
    );
    assert_eq!(count(&app, &admin).await, users_before, "no new row");
}

// ---------------------------------------------------------------- documentation

async fn openapi_lists_every_users_operation_with_its_permission(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    let doc = expect_json(r, 200, "GET /openapi.json without a token").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let expected: [(&str, &str, &[&str]); 8] = [
        ("/users", "get", &["read:users"]),
        ("/users", "post", &["create:users"]),
        ("/users/me", "get", &[]),
        ("/users/me", "patch", &[]),
        ("/users/{id}", "get", &["read:users"]),
        ("/users/{id}", "put", &["update:users"]),
        ("/users/{id}", "patch", &["update:users"]),
        ("/users/{id}", "delete", &["delete:users"]),
    ];
    for (path, method, permissions) in expected {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert_eq!(
            operation["security"],
            json!([{"bearer": permissions}]),
            "{method} {path}: security"
        );
        assert!(
            operation["responses"]["403"].is_object() || path == "/users/me",
            "{method} {path}: documents its 403"
        );
    }
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/users"))
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "put", "post", "patch", "delete"].contains(&k.as_str()))
                .map(move |method| format!("{method} {path}"))
        })
        .collect();
    documented.sort();
    let mut wanted: Vec<String> = expected
        .iter()
        .map(|(path, method, _)| format!("{method} {path}"))
        .collect();
    wanted.sort();
    assert_eq!(documented, wanted, "exactly the /users operations");
}

async fn docs_redirect_to_a_page_served_entirely_from_the_binary(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app
        .client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("request");
    assert!(r.status().is_redirection(), "/docs: {}", r.status());
    assert_eq!(header(&r, "location"), "/docs/", "/docs redirects");

    let r = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "/docs/");
    assert!(
        header(&r, "content-type").starts_with("text/html"),
        "/docs/ is HTML"
    );
    let html = r.text().await.expect("body");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "/docs/ references no other host: {html}"
    );
    // Every asset it names is served here.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "scripts: {assets:?}"
    );
    for asset in assets {
        let path = format!("/docs/{}", asset.trim_start_matches("./"));
        let r = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
        if path.ends_with("initializer.js") {
            let script = r.text().await.expect("body");
            assert!(
                script.contains("/openapi.json"),
                "{path} loads our document"
            );
            assert!(
                !script.contains("http://") && !script.contains("https://"),
                "{path}: {script}"
            );
        }
    }
}

// ---------------------------------------------------------------- permissions

async fn each_admin_operation_without_its_permission_gets_403_insufficient_scope(backend: Backend) {
    let (app, admin) = app_and_admin(backend).await;
    let target = app
        .create_user(&admin, json!({"sub": "auth0|target", "name": "Target"}))
        .await;
    let target_path = format!("/users/{}", id_of(&target));
    let path = target_path.as_str();
    let (create, deactivate) = (
        json!({"sub": "auth0|intruder"}),
        json!({"is_active": false}),
    );
    // (operation, method, path, body, the permission it needs)
    #[rustfmt::skip]
    let cases: [(&str, Method, &str, Option<&Value>, &str); 6] = [
        ("list", Method::GET, "/users", None, "read:users"),
        ("create", Method::POST, "/users", Some(&create), "create:users"),
        ("retrieve another user", Method::GET, path, None, "read:users"),
        ("replace", Method::PUT, path, Some(&deactivate), "update:users"),
        ("update", Method::PATCH, path, Some(&deactivate), "update:users"),
        ("delete", Method::DELETE, path, None, "delete:users"),
    ];
    let users_before = count(&app, &admin).await;
    for (operation, method, path, body, needed) in cases {
        let others: Vec<&str> = ALL.iter().copied().filter(|p| *p != needed).collect();
        for (holder, permissions) in [("every other permission", others), ("none", vec![])] {
            let case = format!("{operation} with {holder}");
            let token = app.token("auth0|limited", &permissions);
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let r = request.send().await.expect("request");
            let www = challenge(&r);
            let problem = assert_problem(r, 403, &case).await;
            assert!(
                www.starts_with(&format!(
                    r#"Bearer error="insufficient_scope", scope="{needed}""#
                )),
                "{case}: {www}"
            );
            assert_eq!(
                problem["type"], "urn:usergate:problem:insufficient-scope",
                "{case}"
            );
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(needed)),
                "{case}: detail names {needed}: {problem}"
            );
        }
    }
    assert_eq!(
        get_user(&app, &admin, id_of(&target)).await,
        target,
        "the row is unchanged"
    );
    // The limited caller's own row is the only new one.
    assert_eq!(
        count(&app, &admin).await,
        users_before + 1,
        "nothing created"
    );
}

async fn permissions_in_the_scope_claim_count_as_well(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let reader = token_with(
        &app,
        "auth0|scoped",
        &[],
        &json!({"scope": "openid read:users profile"}),
    );
    let page = list(&app, &reader, "").await;
    assert_eq!(subs(&page), ["auth0|scoped"], "read:users from scope");
    let r = app
        .send_json(Method::POST, "/users", &reader, &json!({"sub": "auth0|x"}))
        .await;
    let www = challenge(&r);
    assert_problem(r, 403, "create:users is in neither claim").await;
    assert!(
        www.starts_with(r#"Bearer error="insufficient_scope", scope="create:users""#),
        "{www}"
    );
}

// ---------------------------------------------------------------- proxies

async fn page_links_follow_forwarded_headers_only_from_trusted_proxies(backend: Backend) {
    let trusted =
        TestApp::spawn_with(Options::new(backend.clone()).env("TRUSTED_PROXIES", "127.0.0.1"))
            .await;
    let untrusted = TestApp::spawn_on(backend).await;
    let x_forwarded: &[(&str, &str)] = &[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
    ];
    let forwarded: &[(&str, &str)] = &[("forwarded", "proto=https;host=api.example.com")];
    let (public, own) = ("https://api.example.com", untrusted.address.as_str());
    // (case, app, headers sent, expected base URL)
    #[rustfmt::skip]
    let cases = [
        ("trusted, X-Forwarded-*", &trusted, x_forwarded, public),
        ("trusted, Forwarded", &trusted, forwarded, public),
        ("trusted, no headers", &trusted, &[][..], trusted.address.as_str()),
        ("untrusted, X-Forwarded-*", &untrusted, x_forwarded, own),
        ("untrusted, Forwarded", &untrusted, forwarded, own),
    ];
    for (i, (case, app, headers, base)) in cases.into_iter().enumerate() {
        let admin = app.token(ADMIN, ALL);
        let with_headers = |mut request: reqwest::RequestBuilder| {
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.bearer_auth(&admin)
        };
        // Two rows per case, so that page 2 of 1 always has a next page.
        for suffix in ["a", "b"] {
            let r = with_headers(app.client.post(app.url("/users")))
                .json(&json!({"sub": format!("auth0|proxied-{i}-{suffix}")}))
                .send()
                .await
                .expect("request");
            let location = header(&r, "location");
            let created = expect_json(r, 201, case).await;
            assert_eq!(
                location,
                format!("{base}/users/{}", id_of(&created)),
                "{case}: Location"
            );
        }

        let r = with_headers(app.client.get(app.url("/users?limit=1&offset=1")))
            .send()
            .await
            .expect("request");
        let page = expect_json(r, 200, case).await;
        let next = page["next"].as_str().unwrap_or_default();
        assert!(
            next.starts_with(&format!("{base}/users?")),
            "{case}: next {next}"
        );
        assert_eq!(next, format!("{base}/users?limit=1&offset=2"), "{case}");
        assert_eq!(
            page["previous"],
            format!("{base}/users?limit=1"),
            "{case}: previous"
        );
    }
}
