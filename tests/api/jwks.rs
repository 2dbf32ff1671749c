//! The JWKS actor: rotation, removal, outages, slowness, garbage, floods.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use crate::support::{
    app::{Options, TestApp},
    assert::assert_problem,
    db::Backend,
    issuer::JwksMode,
    keys::keys,
};

/// Polls `check` every 100 ms for at most `limit`.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[actix_web::test]
async fn a_rotated_in_key_is_fetched_on_demand_without_restart() {
    let app = TestApp::spawn().await;
    let fetches = app.issuer.fetches();
    app.issuer.set_keys(&[&keys().primary, &keys().rotated]);
    let token = keys()
        .rotated
        .sign(&app.issuer.claims("auth0|rotated", &[]));
    let r = app.get_me(&token).await;
    assert_eq!(
        r.status(),
        200,
        "a token signed by the new key is accepted at once"
    );
    assert_eq!(
        app.issuer.fetches(),
        fetches + 1,
        "exactly one on-demand fetch"
    );
}

#[actix_web::test]
async fn a_removed_key_stops_being_accepted_after_the_next_refresh() {
    let app =
        TestApp::spawn_with(Options::new(Backend::Sqlite).env("JWKS_REFRESH_SECS", "1")).await;
    let token = app.token("auth0|removed", &[]);
    assert_eq!(
        app.get_me(&token).await.status(),
        200,
        "accepted (and cached) before removal"
    );
    app.issuer.set_keys(&[&keys().rotated]);
    let refused = eventually(Duration::from_secs(5), async || {
        app.get_me(&token).await.status() == 401
    })
    .await;
    assert!(
        refused,
        "the cached token of a removed key must be refused after a refresh"
    );
    let r = app.get_me(&token).await;
    let body = assert_problem(r, 401, "removed key").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown"),
        "{body}"
    );
}

#[actix_web::test]
async fn an_idp_down_at_start_makes_the_app_unready_until_it_comes_back() {
    let app = TestApp::spawn_with(Options {
        mode: JwksMode::Down,
        ..Options::new(Backend::Sqlite)
    })
    .await;
    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["keys"].as_str().map(|k| k.starts_with("unavailable")),
        Some(true),
        "{body}"
    );
    assert_eq!(body["database"], "ok", "{body}");

    let token = app.token("auth0|early", &[]);
    let r = app.get_me(&token).await;
    assert_eq!(
        r.status(),
        503,
        "no keys yet: not the token's fault, so not a 401"
    );
    assert!(r.headers().contains_key("retry-after"));

    app.issuer.set_mode(JwksMode::Up);
    let ready = eventually(Duration::from_secs(10), async || {
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(
        ready,
        "the actor retries with backoff until the IdP answers"
    );
    assert_eq!(app.get_me(&token).await.status(), 200);
}

#[actix_web::test]
async fn an_idp_down_or_garbled_after_start_leaves_the_last_good_keys_in_use() {
    let app =
        TestApp::spawn_with(Options::new(Backend::Sqlite).env("JWKS_REFRESH_SECS", "1")).await;
    for (case, mode) in [("down", JwksMode::Down), ("garbage", JwksMode::Garbage)] {
        app.issuer.set_mode(mode);
        let fetches = app.issuer.fetches();
        let refreshed = eventually(Duration::from_secs(5), async || {
            app.issuer.fetches() >= fetches + 2
        })
        .await;
        assert!(refreshed, "{case}: the actor keeps trying");
        // A token never seen before, so the cache cannot hide a lost key set.
        let token = app.token(&format!("auth0|after-{case}"), &[]);
        assert_eq!(
            app.get_me(&token).await.status(),
            200,
            "{case}: the last good key set stays in use"
        );
        let ready = app.get_anonymous("/readyz").await;
        assert_eq!(ready.status(), 200, "{case}: still ready");
    }
}

#[actix_web::test]
async fn a_slow_idp_delays_an_unknown_kid_by_at_most_the_fetch_timeout() {
    let app =
        TestApp::spawn_with(Options::new(Backend::Sqlite).env("JWKS_TIMEOUT_SECS", "1")).await;
    app.issuer.set_mode(JwksMode::Slow(Duration::from_secs(20)));
    let token = keys().rotated.sign(&app.issuer.claims("auth0|slow", &[]));
    let start = Instant::now();
    let r = app.get_me(&token).await;
    let waited = start.elapsed();
    assert_problem(r, 401, "unknown kid with a slow IdP").await;
    // The bound is the configured timeout (1 s) plus a margin, far below the IdP's 20 s.
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    let known = app.token("auth0|known-while-slow", &[]);
    assert_eq!(
        app.get_me(&known).await.status(),
        200,
        "known keys are not held up"
    );
}

#[actix_web::test]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown() {
    let app = TestApp::spawn().await;
    let before = app.issuer.fetches();
    let claims = app.issuer.claims("auth0|flood", &[]);
    let tokens: Vec<String> = (0..50)
        .map(|i| {
            keys()
                .rotated
                .with_kid(&format!("random-{i}"))
                .sign(&claims)
        })
        .collect();
    let answers = join_all(tokens.iter().map(|t| app.get_me(t))).await;
    for (i, r) in answers.into_iter().enumerate() {
        assert_eq!(r.status(), 401, "request {i}");
    }
    assert!(
        app.issuer.fetches() <= before + 1,
        "50 unknown kids caused {} fetches",
        app.issuer.fetches() - before
    );
    let again = join_all(tokens.iter().map(|t| app.get_me(t))).await;
    assert!(again.iter().all(|r| r.status() == 401));
    assert!(
        app.issuer.fetches() <= before + 1,
        "within the cooldown, no further fetch"
    );
}

#[actix_web::test]
async fn only_tokens_passing_the_cheap_checks_may_cause_a_fetch() {
    let app = TestApp::spawn().await;
    let before = app.issuer.fetches();
    let mut wrong_issuer = app.issuer.claims("auth0|cheap", &[]);
    wrong_issuer["iss"] = json!("https://someone-else.example/");
    let unknown = keys().rotated.with_kid("never-seen");
    let cases = [
        ("wrong unverified issuer", unknown.sign(&wrong_issuer)),
        (
            "disallowed algorithm",
            unknown.sign_as(
                jsonwebtoken::Algorithm::RS512,
                &app.issuer.claims("auth0|c", &[]),
            ),
        ),
        (
            "unusable kid",
            keys()
                .rotated
                .with_kid("bad kid\u{7f}")
                .sign(&app.issuer.claims("auth0|c", &[])),
        ),
    ];
    for (case, token) in cases {
        assert_problem(app.get_me(&token).await, 401, case).await;
    }
    assert_eq!(
        app.issuer.fetches(),
        before,
        "none of them may reach the IdP"
    );
}
