//! Absolute URLs (challenges, `Location`, page links) never carry a host a
//! client made up: with `PUBLIC_URL` they come from it alone; without it, a
//! malformed `Host` falls back to the server's own address.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::support::{
    app::{Options, TestApp},
    assert::{assert_problem, challenge, header},
    db::Backend,
};

const ADMIN: &[&str] = &["create:users", "read:users"];

/// Every header an attacker may forge to steer absolute URLs.
fn forged(request: RequestBuilder, host: &str) -> RequestBuilder {
    request
        .header("host", host)
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "host=evil.example;proto=https")
}

/// The three absolute URLs: the challenge's `resource_metadata`, the
/// `Location` of a creation, the `next` link of a list.
async fn absolute_urls(app: &TestApp, host: &str, sub: &str) -> [String; 3] {
    let admin = app.token("auth0|admin", ADMIN);
    let anonymous = forged(app.client.get(app.url("/users/me")), host)
        .send()
        .await
        .expect("anonymous");
    let metadata = header(&anonymous, "www-authenticate").unwrap_or_default();
    assert_problem(anonymous, 401, "anonymous").await;

    let created: Response = forged(app.client.post(app.url("/users")), host)
        .bearer_auth(&admin)
        .json(&json!({ "sub": sub }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201, "create {sub}");
    let location = created.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();

    let listed = forged(
        app.client.request(Method::GET, app.url("/users?limit=1")),
        host,
    )
    .bearer_auth(&admin)
    .send()
    .await
    .expect("list");
    assert_eq!(listed.status(), 200);
    let page: Value = listed.json().await.expect("page");
    let next = page["next"].as_str().expect("a next page").to_owned();
    [metadata, location, next]
}

#[actix_web::test]
async fn with_public_url_host_and_forwarded_headers_never_reach_an_absolute_url() {
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite)
            .env("PUBLIC_URL", "https://api.usergate.test/")
            // Even a trusted proxy's forwarded host is not used.
            .env("TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await;
    app.create_user(
        &app.token("auth0|admin", ADMIN),
        json!({"sub": "auth0|first"}),
    )
    .await;
    let [metadata, location, next] = absolute_urls(&app, "evil.example", "auth0|second").await;
    assert_eq!(
        metadata,
        challenge("https://api.usergate.test", r#"realm="usergate""#)
    );
    assert!(
        location.starts_with("https://api.usergate.test/users/"),
        "{location}"
    );
    assert_eq!(next, "https://api.usergate.test/users?limit=1&offset=1");
}

#[actix_web::test]
async fn without_public_url_a_forged_or_malformed_host_never_reaches_an_absolute_url() {
    let app = TestApp::spawn().await;
    let own = app.address.clone();
    app.create_user(
        &app.token("auth0|admin", ADMIN),
        json!({"sub": "auth0|first"}),
    )
    .await;
    for (i, host) in [
        "evil.example:",
        "evil.example:99999",
        "evil.example:0",
        "evil.example:80:80",
        "evil.example..",
        "[evil.example]",
    ]
    .into_iter()
    .enumerate()
    {
        let urls = absolute_urls(&app, host, &format!("auth0|host-{i}")).await;
        for url in &urls {
            assert!(!url.contains("evil.example"), "Host {host:?}: {url}");
        }
        let [metadata, location, next] = urls;
        assert_eq!(
            metadata,
            challenge(&own, r#"realm="usergate""#),
            "Host {host:?}"
        );
        assert!(location.starts_with(&format!("{own}/users/")), "{location}");
        assert!(next.starts_with(&format!("{own}/users?limit=1")), "{next}");
    }
}
