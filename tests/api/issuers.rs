//! Several trusted issuers, each with its own keys, found through OpenID
//! discovery: an OpenID provider of another shape than Auth0's (its JWKS
//! at another path), a discovery document naming another issuer, and the
//! support issuer, which has no discovery document at all.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    AUDIENCE,
    app::{Options, TestApp},
    assert::{assert_invalid_token, assert_problem, expect_json, metrics_text, sample},
    db::Backend,
    issuer::{Discovery, TestIssuer},
    keys::{TestKey, keys},
    now,
    process::{command, run},
};

/// Where Okta serves its keys: not Auth0's path, found only through discovery.
const OKTA_JWKS_PATH: &str = "/oauth2/v1/keys";

/// An OpenID provider of another shape than Auth0's: a discovery document
/// naming itself, its keys at [`OKTA_JWKS_PATH`].
fn discoverable(key: &TestKey) -> TestIssuer {
    let provider = TestIssuer::start_at(&[key], OKTA_JWKS_PATH);
    provider.serve_discovery(&provider.issuer);
    provider
}

/// Claims of a token `issuer` issued.
fn claims(issuer: &str, sub: &str) -> Value {
    json!({"iss": issuer, "sub": sub, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600})
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let r = app.get_anonymous("/readyz").await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("readiness JSON"))
}

/// The app trusting the tenant (the support issuer: no discovery document,
/// its keys read at Auth0's path, key-1 and key-2) and then a custom domain
/// (discovered, its keys at Okta's path) whose key has the tenant's kid
/// key-1 but is another key, [`custom_key`].
async fn tenant_and_custom_domain() -> (TestApp, TestIssuer) {
    let custom_domain = discoverable(custom_key());
    let app = TestApp::spawn_with(Options {
        issuer_keys: vec![keys().primary.clone(), keys().rotated.clone()],
        also_trusted: vec![custom_domain.issuer.clone()],
        ..Options::new(Backend::Sqlite)
    })
    .await;
    (app, custom_domain)
}

fn custom_key() -> &'static TestKey {
    &keys().attacker
}

#[actix_web::test]
async fn each_issuer_s_tokens_are_verified_with_its_own_keys_only() {
    let (app, custom_domain) = tenant_and_custom_domain().await;
    let (tenant, custom_key) = (&app.issuer, custom_key());

    for (case, token) in [
        (
            "custom domain",
            custom_key.sign(&claims(&custom_domain.issuer, "auth0|both")),
        ),
        (
            "tenant domain",
            keys().primary.sign(&claims(&tenant.issuer, "auth0|both")),
        ),
    ] {
        let r = app.get_me(&token).await;
        assert_eq!(r.status(), 200, "{case}");
        let user: Value = r.json().await.expect("user");
        assert_eq!(user["sub"], "auth0|both", "{case}: one subject, one row");
    }

    let (custom_before, tenant_before) = (custom_domain.fetches(), tenant.fetches());
    let crossed = keys()
        .primary
        .sign(&claims(&custom_domain.issuer, "auth0|crossed"));
    assert_invalid_token(
        app.get_me(&crossed).await,
        "the token's signature is invalid",
        "the tenant's key-1 for a token naming the custom domain",
    )
    .await;
    // A kid only the tenant has: only the custom domain's actor looks for it.
    let crossed = keys()
        .rotated
        .sign(&claims(&custom_domain.issuer, "auth0|crossed"));
    assert_invalid_token(
        app.get_me(&crossed).await,
        "the token's signing key is unknown",
        "the tenant's key-2 for a token naming the custom domain",
    )
    .await;
    assert_eq!(
        (custom_domain.fetches(), tenant.fetches()),
        (custom_before + 1, tenant_before),
        "the named issuer refetched once, the other was not asked"
    );
}

#[actix_web::test]
async fn an_issuer_outside_the_list_is_refused_without_any_fetch_and_every_issuer_is_reported() {
    let (app, custom_domain) = tenant_and_custom_domain().await;
    let tenant = &app.issuer;
    let (custom_before, tenant_before) = (custom_domain.fetches(), tenant.fetches());
    let unknown_kid = keys().rotated.with_kid("never-seen");
    let foreign = unknown_kid.sign(&claims("https://tenant.eu.auth0.com/", "auth0|foreign"));
    let failures = r#"reason="issuer""#;
    let before = sample(
        &metrics_text(&app).await,
        "usergate_auth_failures_total",
        failures,
    );
    assert_invalid_token(
        app.get_me(&foreign).await,
        "the token has the wrong issuer",
        "an issuer outside AUTH0_ISSUER",
    )
    .await;
    assert_eq!(
        (custom_domain.fetches(), tenant.fetches()),
        (custom_before, tenant_before),
        "no fetch at all for an issuer outside the list"
    );
    let after = sample(
        &metrics_text(&app).await,
        "usergate_auth_failures_total",
        failures,
    );
    assert_eq!(after, before + 1.0, "counted under its bounded reason");

    assert_eq!(
        readiness(&app).await,
        (
            200,
            json!({"status": "ok", "database": "ok", "keys": "ok", "draining": false,
                   "issuers": {custom_domain.issuer.clone(): "ok", tenant.issuer.clone(): "ok"}})
        )
    );
    let metadata = expect_json(
        app.get_anonymous("/.well-known/oauth-protected-resource")
            .await,
        200,
        "resource metadata",
    )
    .await;
    assert_eq!(
        metadata["authorization_servers"],
        json!([tenant.issuer, custom_domain.issuer]),
        "every issuer, the primary first"
    );
}

#[actix_web::test]
async fn an_openid_provider_s_keys_are_found_at_the_jwks_uri_of_its_discovery_document() {
    let app = TestApp::spawn_with(Options {
        jwks_path: OKTA_JWKS_PATH,
        discovery: Discovery::Own,
        ..Options::new(Backend::Sqlite)
    })
    .await;
    assert_eq!(app.get_me(&app.token("okta|00u1", &[])).await.status(), 200);
    assert!(app.issuer.fetches() >= 1, "read at {OKTA_JWKS_PATH}");
}

/// Polls `/readyz` (at most 5 s) until `issuer`'s entry is no longer the
/// not-yet-loaded one, and returns the answer.
async fn readiness_once_tried(app: &TestApp, issuer: &str) -> (u16, Value) {
    for _ in 0..100 {
        let (status, body) = readiness(app).await;
        if body["issuers"][issuer] != "unavailable: no signing key set loaded yet" {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{issuer}'s key set was never tried");
}

#[actix_web::test]
async fn a_discovery_document_naming_another_issuer_gives_that_issuer_no_keys_until_it_is_fixed() {
    let app = TestApp::spawn_with(Options {
        jwks_path: OKTA_JWKS_PATH,
        discovery: Discovery::Naming("https://impostor.example/".to_owned()),
        ..Options::new(Backend::Sqlite)
    })
    .await;
    let issuer = app.issuer.issuer.clone();

    let (status, body) = readiness_once_tried(&app, &issuer).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["keys"],
        format!("unavailable: no signing key set loaded yet for {issuer}"),
        "{body}"
    );
    assert_eq!(
        body["issuers"][&issuer],
        "unavailable: the discovery document names issuer \"https://impostor.example/\", not this one",
        "{body}"
    );
    let token = app.token("auth0|early", &[]);
    let r = app.get_me(&token).await;
    assert_problem(r, 503, "no keys for that issuer").await;
    assert_eq!(app.issuer.fetches(), 0, "its jwks_uri is never read");

    // The document is read again with each retry of the key set.
    app.issuer.serve_discovery(&issuer);
    app.wait_ready().await;
    assert_eq!(app.get_me(&token).await.status(), 200);
}

#[actix_web::test]
async fn explain_token_names_the_issuer_it_matched_and_one_outside_the_list() {
    let custom_domain = discoverable(&keys().rotated);
    let tenant = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![
        (
            "AUTH0_ISSUER",
            format!("{},{}", custom_domain.issuer, tenant.issuer),
        ),
        ("AUTH0_AUDIENCE", AUDIENCE.to_owned()),
    ];
    let foreign = keys()
        .primary
        .sign(&claims("https://elsewhere.example/", "auth0|x"));
    for (case, token, accepted, says) in [
        (
            "custom domain",
            keys()
                .rotated
                .sign(&claims(&custom_domain.issuer, "auth0|x")),
            true,
            format!("issued by {}", custom_domain.issuer),
        ),
        (
            "tenant domain",
            keys().primary.sign(&claims(&tenant.issuer, "auth0|x")),
            true,
            format!("issued by {}", tenant.issuer),
        ),
        (
            "foreign issuer",
            foreign,
            false,
            "issuer not in AUTH0_ISSUER".to_owned(),
        ),
    ] {
        let fetches = (custom_domain.fetches(), tenant.fetches());
        let (status, stdout, stderr) =
            run(command(&["explain-token", &token], &env, dir.path())).await;
        assert_eq!(
            status.code(),
            Some(if accepted { 0 } else { 1 }),
            "{case}: {stdout}\n{stderr}"
        );
        let verdict = stdout.lines().last().unwrap_or_default();
        assert!(
            verdict.contains(&says),
            "{case}: should say {says:?}: {stdout}"
        );
        let fetched = (
            custom_domain.fetches() - fetches.0,
            tenant.fetches() - fetches.1,
        );
        let expected = match case {
            "custom domain" => (1, 0),
            "tenant domain" => (0, 1),
            _ => (0, 0),
        };
        assert_eq!(fetched, expected, "{case}: only the issuer named is asked");
    }
}

#[actix_web::test]
async fn one_jwks_url_for_several_issuers_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = vec![
        (
            "AUTH0_ISSUER",
            "https://a.example/,https://b.example/".to_owned(),
        ),
        ("AUTH0_JWKS_URL", "https://a.example/keys".to_owned()),
        ("AUTH0_AUDIENCE", AUDIENCE.to_owned()),
    ];
    let (status, _, stderr) = run(command(&["serve"], &env, dir.path())).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: AUTH0_JWKS_URL: "), "{stderr}");
}
