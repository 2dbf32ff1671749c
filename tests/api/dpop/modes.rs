//! Bound tokens stay bound (RFC 9449 §7.2), and `DPOP_MODE` decides which
//! schemes are accepted and which challenges are listed.

use reqwest::Method;

use super::bound_token;
use crate::{
    on_both_backends,
    support::{
        app::{Options, TestApp},
        assert::{assert_problem, bearer_challenge, challenge, expect_json, header},
        db::Backend,
        dpop::{ALGS, DpopKey},
    },
};

on_both_backends!(
    a_bound_token_sent_as_bearer_is_refused_even_once_cached_by_a_dpop_request,
    an_unbound_token_sent_with_the_dpop_scheme_is_refused,
    dpop_required_refuses_bearer_and_challenges_with_dpop_alone,
    dpop_disabled_ignores_the_scheme_refuses_bound_tokens_and_challenges_with_bearer_alone,
);

const BOUND_AS_BEARER: &str = r#"realm="usergate", error="invalid_token", error_description="DPoP-bound token sent as Bearer""#;

/// Asserts a 401 `invalid_token` answer with `www` as its whole challenge.
async fn assert_refused(r: reqwest::Response, www: &str, case: &str) {
    assert_eq!(
        header(&r, "www-authenticate").as_deref(),
        Some(www),
        "{case}"
    );
    let body = assert_problem(r, 401, case).await;
    assert_eq!(body["type"], "urn:usergate:problem:invalid-token", "{case}");
}

async fn a_bound_token_sent_as_bearer_is_refused_even_once_cached_by_a_dpop_request(
    backend: Backend,
) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-bound", &[], &key);
    let expected = challenge(&app.address, BOUND_AS_BEARER);

    assert_refused(
        app.get_me(&token).await,
        &expected,
        "before any DPoP request",
    )
    .await;
    for _ in 0..2 {
        let proof = key.proof("GET", &app.url("/users/me"), &token);
        let r = app
            .send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await;
        expect_json(r, 200, "with its proof (the token is cached now)").await;
    }
    assert_refused(app.get_me(&token).await, &expected, "after DPoP requests").await;

    // A token whose confirmation cannot be checked is not taken as unbound.
    let odd = app.token_with(
        "auth0|dpop-odd",
        &[],
        &serde_json::json!({"cnf": {"x5t#S256": "abc"}}),
    );
    let r = app.get_me(&odd).await;
    assert_refused(
        r,
        &challenge(
            &app.address,
            r#"realm="usergate", error="invalid_token", error_description="the token lacks a valid cnf claim""#,
        ),
        "cnf without jkt",
    )
    .await;
}

async fn an_unbound_token_sent_with_the_dpop_scheme_is_refused(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = app.token("auth0|dpop-unbound", &[]);
    let proof = key.proof("GET", &app.url("/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_refused(
        r,
        &challenge(
            &app.address,
            r#"realm="usergate", error="invalid_token", error_description="the token is not DPoP-bound (no cnf.jkt) but was sent with the DPoP scheme""#,
        ),
        "unbound with DPoP",
    )
    .await;
    expect_json(app.get_me(&token).await, 200, "the same token as Bearer").await;
}

async fn dpop_required_refuses_bearer_and_challenges_with_dpop_alone(backend: Backend) {
    let app = TestApp::spawn_with(Options::new(backend).env("DPOP_MODE", "required")).await;
    let meta = format!(
        r#"resource_metadata="{}/.well-known/oauth-protected-resource""#,
        app.address
    );
    let unbound = app.token("auth0|dpop-required", &[]);
    let r = app.get_me(&unbound).await;
    assert_refused(
        r,
        &format!(
            r#"DPoP error="invalid_token", algs="{ALGS}", error_description="this API accepts DPoP-bound tokens only, sent with the DPoP scheme", {meta}"#
        ),
        "Bearer while required",
    )
    .await;

    let r = app.get_anonymous("/users/me").await;
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(format!(r#"DPoP algs="{ALGS}", {meta}"#)),
        "no credentials while required"
    );
    assert_problem(r, 401, "no credentials").await;

    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-required", &[], &key);
    let proof = key.proof("GET", &app.url("/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    expect_json(r, 200, "DPoP while required").await;
}

async fn dpop_disabled_ignores_the_scheme_refuses_bound_tokens_and_challenges_with_bearer_alone(
    backend: Backend,
) {
    let app = TestApp::spawn_with(Options::new(backend).env("DPOP_MODE", "disabled")).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-disabled", &[], &key);

    let proof = key.proof("GET", &app.url("/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_eq!(
        header(&r, "www-authenticate"),
        Some(bearer_challenge(&app.address, r#"realm="usergate""#)),
        "the DPoP scheme is as unknown as any other"
    );
    let body = assert_problem(r, 401, "DPoP while disabled").await;
    assert_eq!(body["type"], "urn:usergate:problem:missing-credentials");

    assert_refused(
        app.get_me(&token).await,
        &bearer_challenge(&app.address, BOUND_AS_BEARER),
        "bound token as Bearer while disabled",
    )
    .await;
    let unbound = app.token("auth0|dpop-disabled", &[]);
    expect_json(app.get_me(&unbound).await, 200, "Bearer while disabled").await;
}
