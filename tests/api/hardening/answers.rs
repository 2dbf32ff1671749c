//! Answers to bodies and names that lie, and the security headers of every answer.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{app::TestApp, assert::assert_problem, db::Backend};

on_both_backends!(
    a_body_with_trailing_content_is_refused_and_changes_nothing,
    names_that_display_other_than_they_are_are_refused_naming_the_field,
);

async fn a_body_with_trailing_content_is_refused_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|admin", &["create:users", "read:users"]);
    let me = app.token("auth0|trailing", &[]);
    assert_eq!(app.get_me(&me).await.status(), 200);
    let json = Some("application/json");
    for body in [
        r#"{"name":"first"}{"name":"second"} garbage"#,
        r#"{"name":"first"} {"name":"second"}"#,
        r#"{"name":"first"} garbage"#,
        r#"{"name":"first"}]"#,
    ] {
        let response = app
            .send_body(Method::PATCH, "/users/me", &me, json, body)
            .await;
        let problem = assert_problem(response, 400, body).await;
        assert_eq!(
            problem["type"], "urn:usergate:problem:bad-request",
            "{body}"
        );
        assert_eq!(
            problem["detail"],
            "the body must be exactly one JSON value, with nothing after it"
        );
    }
    let user: Value = app.get_me(&me).await.json().await.expect("me");
    assert_eq!(user["name"], Value::Null, "nothing changed: {user}");

    let response = app
        .send_body(
            Method::POST,
            "/users",
            &admin,
            json,
            r#"{"sub":"auth0|one"}{"sub":"auth0|two"}"#,
        )
        .await;
    assert_problem(response, 400, "POST with two objects").await;
    let list: Value = app.get("/users", &admin).await.json().await.expect("list");
    let subs: Vec<&str> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|u| u["sub"].as_str())
        .collect();
    assert!(
        !subs
            .iter()
            .any(|s| s.starts_with("auth0|one") || s.starts_with("auth0|two")),
        "no row was created: {subs:?}"
    );

    let fine = app
        .send_body(
            Method::PATCH,
            "/users/me",
            &me,
            json,
            " {\"name\":\"Ada\"} \n",
        )
        .await;
    assert_eq!(fine.status(), 200, "whitespace after the value is fine");
}

async fn names_that_display_other_than_they_are_are_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|admin", &["create:users", "update:users"]);
    let me = app.token("auth0|liar", &[]);
    assert_eq!(app.get_me(&me).await.status(), 200);
    let cases = [
        ("spaces only", "   ", "must not be blank (whitespace only)"),
        (
            "ideographic space",
            "\u{3000}",
            "must not be blank (whitespace only)",
        ),
        (
            "right-to-left override",
            "Ada\u{202E}txt.exe",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "left-to-right embedding",
            "\u{202A}Ada",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "isolate",
            "Ada\u{2067}x\u{2069}",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "right-to-left mark",
            "Ada\u{200F}",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "arabic letter mark",
            "Ada\u{061C}",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "zero-width space",
            "A\u{200B}da",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "zero-width joiner",
            "A\u{200D}da",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "word joiner",
            "A\u{2060}da",
            "must not contain bidi control or zero-width characters",
        ),
        (
            "byte order mark",
            "\u{FEFF}Ada",
            "must not contain bidi control or zero-width characters",
        ),
    ];
    for (case, name, detail) in cases {
        let response = app
            .send_json(Method::PATCH, "/users/me", &me, &json!({ "name": name }))
            .await;
        let problem = assert_problem(response, 400, case).await;
        assert_eq!(problem["field"], "name", "{case}");
        assert_eq!(problem["detail"], detail, "{case}");

        let response = app
            .send_json(
                Method::POST,
                "/users",
                &admin,
                &json!({ "sub": "auth0|created", "name": name }),
            )
            .await;
        let problem = assert_problem(response, 400, case).await;
        assert_eq!(problem["field"], "name", "{case}: POST");
    }
    let user: Value = app.get_me(&me).await.json().await.expect("me");
    assert_eq!(user["name"], Value::Null, "nothing changed: {user}");
}

#[actix_web::test]
async fn every_answer_says_nosniff_and_the_docs_forbid_framing() {
    let app = TestApp::spawn().await;
    let token = app.token("auth0|headers", &[]);
    let get = |path: &str| app.client.get(app.url(path));
    for (case, request, is_docs) in [
        ("healthz", get("/healthz"), false),
        ("401", get("/users/me"), false),
        (
            "200 with a token",
            get("/users/me").bearer_auth(&token),
            false,
        ),
        ("404", get("/nowhere"), false),
        ("metrics", get("/metrics"), false),
        (
            "a made-up method",
            app.client.request(
                Method::from_bytes(b"BREW").expect("method"),
                app.url("/healthz"),
            ),
            false,
        ),
        ("openapi.json", get("/openapi.json"), true),
        ("docs page", get("/docs/"), true),
        ("docs redirect", get("/docs"), true),
        ("docs asset", get("/docs/swagger-ui.css"), true),
    ] {
        let response = request.send().await.expect(case);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{case}"
        );
        if is_docs {
            assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{case}");
            let policy = header("content-security-policy").unwrap_or_default();
            assert!(
                policy.contains("frame-ancestors 'none'"),
                "{case}: {policy}"
            );
            assert!(policy.starts_with("default-src 'none'"), "{case}: {policy}");
        } else {
            assert_eq!(header("content-security-policy"), None, "{case}");
        }
    }
}
