//! Bad input: refused naming the field, changing nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    on_both_backends,
    support::{
        app::{TestApp, id_of},
        assert::{assert_problem, expect_json},
        db::Backend,
    },
};

on_both_backends!(
    invalid_bodies_are_refused_naming_the_field_and_change_nothing,
    values_at_the_length_limits_are_accepted,
    invalid_list_queries_are_refused_naming_the_parameter,
    malformed_ids_are_refused_naming_the_id,
    bodies_over_64_kib_are_refused_with_413_however_they_are_framed,
);

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
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let users_before = app.count_users(&admin).await;

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
                app.get_user(&admin, id_of(&target)).await,
                target,
                "{case}: the row is unchanged"
            );
            assert_eq!(
                app.count_users(&admin).await,
                users_before,
                "{case}: no new row"
            );
        }
    }
}

async fn values_at_the_length_limits_are_accepted(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let users_before = app.count_users(&admin).await;
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
    assert_eq!(
        app.count_users(&admin).await,
        users_before,
        "nothing deleted"
    );
}

async fn bodies_over_64_kib_are_refused_with_413_however_they_are_framed(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
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
    let users_before = app.count_users(&admin).await;

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
        let (status, response) = app
            .post_chunked(
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
        app.get_user(&admin, id_of(&target)).await,
        target,
        "the row is unchanged"
    );
    assert_eq!(app.count_users(&admin).await, users_before, "no new row");
}
