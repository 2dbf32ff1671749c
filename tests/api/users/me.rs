//! The caller's own profile: first sight, changes, deactivation, `last_seen_at`.

use chrono::TimeDelta;
use reqwest::Method;
use serde_json::{Value, json};
use usergate::users::model::now;

use crate::{
    on_both_backends,
    support::{
        app::{ALL, TestApp, id_of, search},
        assert::{assert_problem, assert_user, expect_json, header, time},
        db::{Backend, set_last_seen},
    },
};

on_both_backends!(
    first_sight_creates_the_user_from_the_token_claims,
    concurrent_first_requests_create_exactly_one_row,
    users_change_their_own_name_and_email_and_null_clears_them,
    users_cannot_change_their_own_is_active,
    last_seen_at_is_written_at_most_once_every_five_minutes,
    a_stale_or_missing_last_seen_at_is_refreshed_by_the_next_request,
    a_deactivated_user_is_refused_everywhere_until_an_admin_reactivates_them,
);

// ---------------------------------------------------------------- /users/me

async fn first_sight_creates_the_user_from_the_token_claims(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
        let token = app.token_with(sub, &[], &claims);
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
        let later = app.token_with(
            sub,
            &[],
            &json!({"email": "changed@example.com", "name": "Changed"}),
        );
        let again = expect_json(app.get_me(&later).await, 200, case).await;
        assert_eq!(again, user, "{case}: the same row, unchanged");
        let found = app.list(&admin, &search(sub)).await;
        assert_eq!(found["count"], 1, "{case}: one row for the sub");
        assert_eq!(found["results"][0], user, "{case}: as listed");
    }
}

async fn concurrent_first_requests_create_exactly_one_row(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let found = app.list(&admin, &search("auth0|eager")).await;
    assert_eq!(found["count"], 1, "one row for the sub: {found}");
}

async fn users_change_their_own_name_and_email_and_null_clears_them(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let token = app.token_with(
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

// ---------------------------------------------------------------- deactivation

async fn a_deactivated_user_is_refused_everywhere_until_an_admin_reactivates_them(
    backend: Backend,
) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let users_before = app.count_users(&admin).await;

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
        let www = header(&r, "www-authenticate");
        let problem = assert_problem(r, 403, case).await;
        assert_eq!(
            problem["type"], "urn:usergate:problem:user-inactive",
            "{case}: {problem}"
        );
        assert_eq!(www, None, "{case}: not a token problem, so no challenge");
    }
    assert_eq!(
        app.get_user(&admin, id_of(&other)).await,
        other,
        "the other row is untouched"
    );
    assert_eq!(
        app.get_user(&admin, id_of(&victim)).await,
        deactivated,
        "own row untouched, still deactivated"
    );
    assert_eq!(
        app.count_users(&admin).await,
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
    app.list(&banned, "").await;

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
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
        set_last_seen(&app.database_url, &sub, stale).await;
        let before = app.get_user(&admin, id_of(&created)).await;

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
        let stored = app.get_user(&admin, id_of(&created)).await;
        assert_eq!(stored, user, "{case}: as stored");
        let again = expect_json(app.get_me(&token).await, 200, case).await;
        assert_eq!(again, user, "{case}: not moved again by the next request");
    }
}
