//! Tokens and keys, tightened: replaced key material, issuer arrays,
//! `key_ops`, unverified emails, and header parameters of the wrong type.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{
    app::{Options, TestApp},
    assert::assert_invalid_token,
    db::Backend,
    keys::{TestKey, keys},
};

/// Waits (at most 5 s) until the issuer has served `n` key sets.
async fn until_fetches(app: &TestApp, n: usize) {
    for _ in 0..100 {
        if app.issuer.fetches() >= n {
            // The fetch is answered; give the actor a moment to publish it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the key set was not fetched again");
}

#[actix_web::test]
async fn a_key_replaced_under_its_kid_stops_tokens_cached_under_the_old_key() {
    let app = TestApp::spawn().await;
    let token = app.token("auth0|cached", &[]);
    assert_eq!(
        app.get_me(&token).await.status(),
        200,
        "verified and cached"
    );
    assert_eq!(
        app.get_me(&token).await.status(),
        200,
        "served from the cache"
    );

    // The issuer replaces key-1's material (a compromised key), same kid.
    app.issuer.set_keys(&[&keys().attacker]);
    let fetched = app.issuer.fetches();
    let unknown = keys().rotated.with_kid("not-published-yet");
    let probe = unknown.sign(&app.issuer.claims("auth0|probe", &[]));
    assert_invalid_token(
        app.get_me(&probe).await,
        "the token's signing key is unknown",
        "probe",
    )
    .await;
    until_fetches(&app, fetched + 1).await;

    assert_invalid_token(
        app.get_me(&token).await,
        "the token's signature is invalid",
        "a token of the old material, cached before",
    )
    .await;
    let replacement = keys()
        .attacker
        .sign(&app.issuer.claims("auth0|new-key", &[]));
    assert_eq!(
        app.get_me(&replacement).await.status(),
        200,
        "the new material verifies"
    );
}

#[actix_web::test]
async fn an_issuer_array_is_refused_even_when_it_holds_the_issuer() {
    let app = TestApp::spawn().await;
    for (case, iss) in [
        ("array with the issuer", json!([app.issuer.issuer])),
        (
            "array of two",
            json!([app.issuer.issuer, "https://other.example/"]),
        ),
        ("number", json!(5)),
    ] {
        let mut claims = app.issuer.claims("auth0|iss-array", &[]);
        claims["iss"] = iss;
        let token = keys().primary.sign(&claims);
        assert_invalid_token(
            app.get_me(&token).await,
            "the token lacks a valid iss claim",
            case,
        )
        .await;
    }
}

#[actix_web::test]
async fn a_jwk_whose_key_ops_exclude_verify_verifies_nothing() {
    let mut sign_only = keys().primary.clone();
    sign_only.jwk["key_ops"] = json!(["sign"]);
    let mut verify = keys().rotated.clone();
    verify.jwk["key_ops"] = json!(["verify"]);
    let mut options = Options::new(Backend::Sqlite);
    options.issuer_keys = vec![sign_only, verify];
    let app = TestApp::spawn_with(options).await;

    let token = keys()
        .primary
        .sign(&app.issuer.claims("auth0|sign-only", &[]));
    assert_invalid_token(
        app.get_me(&token).await,
        "the token's signing key is unknown",
        "key_ops: [sign]",
    )
    .await;
    let token = keys().rotated.sign(&app.issuer.claims("auth0|verify", &[]));
    assert_eq!(app.get_me(&token).await.status(), 200, "key_ops: [verify]");
}

#[actix_web::test]
async fn an_email_the_idp_has_not_verified_is_not_copied() {
    let app = TestApp::spawn().await;
    for (case, sub, verified, email) in [
        (
            "email_verified false",
            "auth0|unverified",
            json!(false),
            Value::Null,
        ),
        (
            "email_verified true",
            "auth0|verified",
            json!(true),
            json!("ada@example.com"),
        ),
        (
            "no email_verified",
            "auth0|silent",
            Value::Null,
            json!("ada@example.com"),
        ),
    ] {
        let mut claims = app.issuer.claims(sub, &[]);
        claims["email"] = json!("ada@example.com");
        if !verified.is_null() {
            claims["email_verified"] = verified;
        }
        let response = app.get_me(&keys().primary.sign(&claims)).await;
        assert_eq!(response.status(), 200, "{case}");
        let user: Value = response.json().await.expect("user");
        assert_eq!(user["email"], email, "{case}: {user}");
    }
}

/// A token signed by `key` whose header is `header` exactly.
fn with_header(key: &TestKey, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::RS256)
        .expect("sign");
    format!("{message}.{signature}")
}

#[actix_web::test]
async fn a_header_parameter_of_the_wrong_type_is_named_in_the_answer() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("auth0|typ", &[]);
    for (header, problem) in [
        (
            json!({"alg": "RS256", "kid": "key-1", "typ": 5}),
            "typ must be a string",
        ),
        (
            json!({"alg": "RS256", "kid": "key-1", "cty": {}}),
            "cty must be a string",
        ),
        (json!({"alg": "RS256", "kid": 1}), "kid must be a string"),
        (
            json!({"alg": "RS256", "kid": "key-1", "x5c": [1]}),
            "x5c must be an array of strings",
        ),
    ] {
        let token = with_header(&keys().primary, &header, &claims);
        assert_invalid_token(
            app.get_me(&token).await,
            &format!("the token header is malformed: {problem}"),
            &header.to_string(),
        )
        .await;
    }
    let fine = with_header(
        &keys().primary,
        &json!({"alg": "RS256", "kid": "key-1", "typ": "at+jwt"}),
        &claims,
    );
    assert_eq!(app.get_me(&fine).await.status(), 200, "a string typ");
}
