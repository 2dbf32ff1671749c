//! Methods a path does not have are 405 problem+json with `Allow`, on every
//! path; `HEAD` answers wherever `GET` does, without a body.

use reqwest::Method;

use crate::{
    on_both_backends,
    support::{
        app::{Options, TestApp},
        assert::{assert_problem, challenge, header},
        db::Backend,
    },
};

const ALL_PERMISSIONS: &[&str] = &["read:users", "create:users", "update:users", "delete:users"];

on_both_backends!(
    head_on_users_endpoints_authenticates_and_answers_like_get_without_a_body,
    an_undeclared_method_on_a_users_path_is_405_with_allow_once_authenticated,
);

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request")
}

/// What a HEAD answer must repeat of the GET answer.
fn head_of(response: &reqwest::Response) -> (u16, String, String, String) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        response.status().as_u16(),
        header("content-type"),
        header("www-authenticate"),
        header("allow"),
    )
}

/// `HEAD path` answers as `GET path` does, and sends no body.
async fn assert_head_like_get(app: &TestApp, path: &str, token: Option<&str>) {
    let get = send(app, Method::GET, path, token).await;
    let head = send(app, Method::HEAD, path, token).await;
    assert_eq!(
        head_of(&head),
        head_of(&get),
        "HEAD {path} (token: {})",
        token.is_some()
    );
    let body = head.bytes().await.expect("body");
    assert!(body.is_empty(), "HEAD {path} sends no body: {body:?}");
}

#[actix_web::test]
async fn every_path_answers_an_undeclared_method_405_problem_with_allow() {
    let app = TestApp::spawn().await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/.well-known/oauth-protected-resource",
    ] {
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"] {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let r = send(&app, method.clone(), path, None).await;
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let context = format!("{method} {path}");
            assert_eq!(allow.as_deref(), Some("GET, HEAD"), "{context}: Allow");
            let problem = assert_problem(r, 405, &context).await;
            assert_eq!(
                problem["type"], "urn:usergate:problem:method-not-allowed",
                "{context}"
            );
        }
    }
}

#[actix_web::test]
async fn unknown_paths_stay_404_whatever_the_method() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/nope"),
        (Method::POST, "/healthz/extra"),
        (Method::HEAD, "/openapi.yaml"),
        (Method::GET, "/docs/no-such-file.js"),
    ] {
        let r = send(&app, method.clone(), path, None).await;
        let context = format!("{method} {path}");
        assert_eq!(r.headers().get("allow"), None, "{context}: no Allow");
        if method == Method::HEAD {
            assert_eq!(r.status(), 404, "{context}");
        } else {
            assert_problem(r, 404, &context).await;
        }
    }
}

#[actix_web::test]
async fn head_on_public_paths_answers_like_get_without_a_body() {
    let app = TestApp::spawn().await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/.well-known/oauth-protected-resource",
    ] {
        assert_head_like_get(&app, path, None).await;
    }
}

async fn head_on_users_endpoints_authenticates_and_answers_like_get_without_a_body(
    backend: Backend,
) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|head-admin", ALL_PERMISSIONS);
    let plain = app.token("auth0|head-plain", &[]);
    let me = send(&app, Method::GET, "/users/me", Some(&plain)).await;
    let id = me.json::<serde_json::Value>().await.expect("user")["id"].clone();
    for path in [
        "/users",
        "/users/me",
        &format!("/users/{id}"),
        "/users/0",
        "/users/999999",
    ] {
        for token in [
            None,
            Some("not-a-jwt"),
            Some(plain.as_str()),
            Some(admin.as_str()),
        ] {
            assert_head_like_get(&app, path, token).await;
        }
    }
    let r = send(&app, Method::HEAD, "/users", None).await;
    assert_eq!(r.status(), 401, "HEAD /users without a token");
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(challenge(&app.address, r#"realm="usergate""#)),
        "HEAD /users: challenge"
    );
    let r = send(&app, Method::HEAD, "/users", Some(&plain)).await;
    assert_eq!(r.status(), 403, "HEAD /users without read:users");
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(challenge(
            &app.address,
            r#"error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
        )),
        "HEAD /users without read:users: the whole challenge"
    );
}

async fn an_undeclared_method_on_a_users_path_is_405_with_allow_once_authenticated(
    backend: Backend,
) {
    let app = TestApp::spawn_on(backend).await;
    let admin = app.token("auth0|method-admin", ALL_PERMISSIONS);
    for (method, path, allow) in [
        ("DELETE", "/users", "GET, HEAD, POST"),
        ("PUT", "/users", "GET, HEAD, POST"),
        ("POST", "/users/me", "GET, HEAD, PATCH"),
        ("DELETE", "/users/me", "GET, HEAD, PATCH"),
        ("POST", "/users/1", "GET, HEAD, PUT, PATCH, DELETE"),
        ("TRACE", "/users/1", "GET, HEAD, PUT, PATCH, DELETE"),
    ] {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let r = send(&app, method.clone(), path, Some(&admin)).await;
        let context = format!("{method} {path}");
        let got = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(got.as_deref(), Some(allow), "{context}: Allow");
        assert_problem(r, 405, &context).await;
    }
}

#[actix_web::test]
async fn an_allowed_origin_may_send_head_where_it_may_send_get() {
    let origin = "https://app.usergate.test";
    let app =
        TestApp::spawn_with(Options::new(Backend::Sqlite).env("CORS_ALLOWED_ORIGINS", origin))
            .await;
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/users/me"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "HEAD")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 200, "preflight of a HEAD");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("access-control-allow-origin"), origin);
    assert!(
        header("access-control-allow-methods").contains("HEAD"),
        "allowed methods: {}",
        header("access-control-allow-methods")
    );
}
