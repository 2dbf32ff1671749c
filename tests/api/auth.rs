//! Token verification and RFC 6750 answers, over real HTTP.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use actix_web::{HttpResponse, web};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{
    AUDIENCE,
    app::{Options, TestApp},
    assert::{assert_problem, challenge, header},
    db::Backend,
    keys::{TestKey, keys},
    now, spawn_server,
};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token with the given header and claims, signed by nobody.
fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

#[actix_web::test]
async fn valid_token_gets_the_callers_user() {
    let app = TestApp::spawn().await;
    let r = app.get_me(&app.token("auth0|alice", &[])).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.expect("json");
    assert_eq!(user["sub"], "auth0|alice");
}

#[actix_web::test]
async fn refused_tokens_get_401_invalid_token_with_the_reason() {
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite)
            .env("AUTH0_AUDIENCE", &format!("{AUDIENCE},https://second.api/"))
            .env("AUTH0_ALGORITHMS", "RS256,ES256"),
    )
    .await;
    let k = keys();
    let base = app.issuer.claims("auth0|bob", &[]);
    let with = |patch: Value| {
        let mut c = base.clone();
        for (key, value) in patch.as_object().expect("object") {
            if value.is_null() {
                c.as_object_mut().expect("object").remove(key);
            } else {
                c[key] = value.clone();
            }
        }
        c
    };
    let valid = k.primary.sign(&base);
    let mut tampered_payload: Vec<&str> = valid.split('.').collect();
    let evil_payload = b64(&with(json!({"sub": "auth0|admin"})));
    tampered_payload[1] = &evil_payload;
    let tampered_payload = tampered_payload.join(".");
    let mut tampered_signature = valid.clone();
    let last = tampered_signature.pop().expect("non-empty");
    tampered_signature.push(if last == 'A' { 'B' } else { 'A' });

    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("key-1".into());
        jsonwebtoken::encode(
            &header,
            &base,
            &EncodingKey::from_secret(k.primary.public_pem.as_bytes()),
        )
        .expect("hs256")
    };
    let issuer_without_slash = app.issuer.issuer.trim_end_matches('/').to_owned();
    let huge = k.primary.sign(&with(json!({"padding": "x".repeat(9000)})));

    // (case, token, the error_description, also the problem's detail)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired beyond leeway",
            k.primary.sign(&with(json!({"exp": now() - 120}))),
            "the token has expired",
        ),
        (
            "nbf in the future",
            k.primary.sign(&with(json!({"nbf": now() + 600}))),
            "the token is not valid yet",
        ),
        (
            "iat in the future",
            k.primary.sign(&with(json!({"iat": now() + 600}))),
            "the token is not valid yet",
        ),
        (
            "missing exp",
            k.primary.sign(&with(json!({"exp": null}))),
            "the token lacks a valid exp claim",
        ),
        (
            "wrong audience",
            k.primary.sign(&with(json!({"aud": "https://other.api/"}))),
            "the token is not meant for this API (wrong audience)",
        ),
        (
            "wrong audience in array",
            k.primary.sign(&with(json!({"aud": ["a", "b"]}))),
            "the token is not meant for this API (wrong audience)",
        ),
        (
            "missing audience",
            k.primary.sign(&with(json!({"aud": null}))),
            "the token lacks a valid aud claim",
        ),
        (
            "wrong issuer",
            k.primary
                .sign(&with(json!({"iss": "https://evil.example/"}))),
            "the token has the wrong issuer",
        ),
        (
            "issuer without trailing slash",
            k.primary.sign(&with(json!({"iss": issuer_without_slash}))),
            "the token has the wrong issuer",
        ),
        (
            "missing sub",
            k.primary.sign(&with(json!({"sub": null}))),
            "the token lacks a valid sub claim",
        ),
        (
            "alg none",
            unsigned(&json!({"alg": "none", "kid": "key-1"}), &base, ""),
            "the token's algorithm is not allowed",
        ),
        (
            "HS256 signed with the public key",
            hs256_with_public_key,
            "the token's algorithm is not allowed",
        ),
        (
            "allowed family, unlisted algorithm",
            k.primary.sign_as(Algorithm::RS384, &base),
            "the token's algorithm is not allowed",
        ),
        (
            "tampered payload",
            tampered_payload,
            "the token's signature is invalid",
        ),
        (
            "tampered signature",
            tampered_signature,
            "the token's signature is invalid",
        ),
        (
            "signed by another key with a trusted kid",
            k.attacker.sign(&base),
            "the token's signature is invalid",
        ),
        (
            "garbage segments",
            "abc.def.ghi".into(),
            "the token is not a JWT",
        ),
        (
            "garbage base64 json",
            unsigned(&json!("x"), &base, "sig"),
            "the token is not a JWT",
        ),
        ("oversized", huge, "the token is too large"),
        (
            "opaque token",
            "gRb7Pq9sXz3K1mN0aB4cD6eF8hJ2kL5o".into(),
            "the token is opaque (encrypted or not a JWT); request an access token for this API's audience",
        ),
        (
            "JWE token",
            format!("{}.a.b.c.d", b64(&json!({"alg": "dir", "enc": "A256GCM"}))),
            "the token is opaque (encrypted or not a JWT); request an access token for this API's audience",
        ),
        (
            "no kid",
            unsigned(&json!({"alg": "RS256"}), &base, "c2ln"),
            "the token has no usable key id",
        ),
    ];
    let fetches_before = app.issuer.fetches();
    for (case, token, description) in cases {
        let r = app.get_me(&token).await;
        let www = header(&r, "www-authenticate");
        let body = assert_problem(r, 401, case).await;
        let params = format!(
            r#"realm="usergate", error="invalid_token", error_description="{description}""#
        );
        assert_eq!(www, Some(challenge(&app.address, &params)), "{case}");
        assert_eq!(
            body["detail"],
            format!("invalid token: {description}"),
            "{case}: detail"
        );
        assert!(
            !body.to_string().contains(&token[..token.len().min(40)]),
            "{case}: token echoed"
        );
    }
    assert_eq!(
        app.issuer.fetches(),
        fetches_before,
        "none of these may cause a JWKS fetch"
    );
}

#[actix_web::test]
async fn accepted_variants_of_a_good_token() {
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite)
            .env("AUTH0_AUDIENCE", &format!("{AUDIENCE},https://second.api/"))
            .env("AUTH0_ALGORITHMS", "RS256,ES256"),
    )
    .await;
    app.issuer.set_keys(&[&keys().primary, &keys().ec]);
    let k = keys();
    let base = app.issuer.claims("auth0|carol", &[]);
    let with = |key: &str, value: Value| {
        let mut c = base.clone();
        c[key] = value;
        c
    };
    let cases = vec![
        (
            "expired within leeway",
            k.primary.sign(&with("exp", json!(now() - 30))),
        ),
        (
            "nbf within leeway",
            k.primary.sign(&with("nbf", json!(now() + 30))),
        ),
        (
            "audience as a string",
            k.primary.sign(&with("aud", json!(AUDIENCE))),
        ),
        (
            "second configured audience",
            k.primary.sign(&with("aud", json!("https://second.api/"))),
        ),
        ("ES256 when allowed", k.ec.sign(&base)),
        (
            "lowercase scheme",
            k.primary.sign(&with("sub", json!("auth0|carol2"))),
        ),
    ];
    for (case, token) in cases {
        let r = if case == "lowercase scheme" {
            app.client
                .get(app.url("/users/me"))
                .header("authorization", format!("bearer {token}"))
                .send()
                .await
                .expect("request")
        } else {
            app.get_me(&token).await
        };
        assert_eq!(r.status(), 200, "{case}");
    }
}

#[actix_web::test]
async fn es256_is_refused_unless_allowed() {
    let app = TestApp::spawn_with(Options {
        issuer_keys: vec![keys().primary.clone(), keys().ec.clone()],
        ..Options::new(Backend::Sqlite)
    })
    .await;
    let token = keys().ec.sign(&app.issuer.claims("auth0|dave", &[]));
    let r = app.get_me(&token).await;
    let body = assert_problem(r, 401, "ES256 not allowed").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("algorithm"),
        "{body}"
    );
}

#[actix_web::test]
async fn missing_credentials_get_a_bare_challenge() {
    let app = TestApp::spawn().await;
    for (case, authorization) in [
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz")),
    ] {
        let mut request = app.client.get(app.url("/users/me"));
        if let Some(h) = authorization {
            request = request.header("authorization", h);
        }
        let r = request.send().await.expect("request");
        let www = header(&r, "www-authenticate");
        assert_problem(r, 401, case).await;
        assert_eq!(
            www,
            Some(challenge(&app.address, r#"realm="usergate""#)),
            "{case}: no error without credentials"
        );
    }
}

#[actix_web::test]
async fn malformed_authorization_gets_400_invalid_request() {
    let app = TestApp::spawn().await;
    let token = app.token("auth0|erin", &[]);
    // (case, Authorization headers, the error_description)
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "Bearer without token",
            vec!["Bearer".into()],
            "Bearer without a token",
        ),
        (
            "Bearer and spaces",
            vec!["Bearer    ".into()],
            "Bearer without a token",
        ),
        (
            "two tokens",
            vec![format!("Bearer {token} {token}")],
            "more than one token",
        ),
        (
            "bad characters",
            vec!["Bearer abc,def".into()],
            "the token has characters a bearer token cannot have",
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {token}"), format!("Bearer {token}")],
            "several Authorization headers",
        ),
    ];
    for (case, headers, description) in cases {
        let mut request = app.client.get(app.url("/users/me"));
        for h in headers {
            request = request.header("authorization", h);
        }
        let r = request.send().await.expect("request");
        let www = header(&r, "www-authenticate");
        assert_problem(r, 400, case).await;
        let params = format!(
            r#"realm="usergate", error="invalid_request", error_description="{description}""#
        );
        assert_eq!(www, Some(challenge(&app.address, &params)), "{case}");
    }
}

#[actix_web::test]
async fn tokens_in_the_query_string_or_body_are_ignored() {
    let app = TestApp::spawn().await;
    let token = app.token("auth0|frank", &[]);
    let r = app
        .client
        .get(app.url(&format!("/users/me?access_token={token}")))
        .send()
        .await
        .expect("request");
    assert_problem(r, 401, "query token").await;
    let r = app
        .client
        .patch(app.url("/users/me"))
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .expect("request");
    assert_problem(r, 401, "form token").await;
}

#[actix_web::test]
async fn header_urls_and_embedded_keys_are_never_trusted() {
    // An attacker JWKS that counts requests: it must receive none.
    let hits = Arc::new(AtomicUsize::new(0));
    let attacker_jwks = keys().attacker.jwk.clone();
    let counter = hits.clone();
    let port = spawn_server(move |routes| {
        let (counter, jwks) = (counter.clone(), attacker_jwks.clone());
        routes.default_service(web::to(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = json!({"keys": [jwks.clone()]});
            async move { HttpResponse::Ok().json(body) }
        }));
    });
    let attacker_url = format!("http://127.0.0.1:{port}/jwks.json");

    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("auth0|admin", &["delete:users"]);
    let attacker = keys().attacker.with_kid("attacker-kid");
    let sign_with_header = |extra: Value, key: &TestKey| {
        let mut header = json!({"alg": "RS256", "kid": key.kid});
        for (k, v) in extra.as_object().expect("object") {
            header[k] = v.clone();
        }
        // Sign a header with the extra members by hand: encode header+claims, sign the input.
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let signature =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, Algorithm::RS256)
                .expect("sign");
        format!("{signing_input}.{signature}")
    };
    for (case, token) in [
        (
            "jku to an attacker JWKS",
            sign_with_header(json!({"jku": attacker_url}), &attacker),
        ),
        (
            "x5u to an attacker",
            sign_with_header(json!({"x5u": attacker_url}), &attacker),
        ),
        (
            "embedded jwk",
            sign_with_header(json!({"jwk": attacker.jwk}), &attacker),
        ),
        (
            "embedded jwk with a trusted kid",
            sign_with_header(json!({"jwk": keys().attacker.jwk}), &keys().attacker),
        ),
    ] {
        let r = app.get_me(&token).await;
        assert_problem(r, 401, case).await;
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the attacker's URL must receive no request"
    );
}
