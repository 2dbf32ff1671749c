//! The DPoP scheme (RFC 9449 §4.3, §7.1): a bound token with a valid proof
//! is accepted; a proof wrong in any one way is refused with the DPoP
//! challenge, and `htu` is the URL the client used.

use reqwest::Method;
use serde_json::{Value, json};

use super::{assert_proof_refused, bound_token, failures};
use crate::{
    on_both_backends,
    support::{
        app::{Options, TestApp},
        assert::expect_json,
        db::Backend,
        dpop::{DpopKey, ath as ath_of, claims, sign_hs256},
        now,
    },
};

on_both_backends!(
    a_bound_token_with_its_proof_is_accepted_for_any_method,
    a_proof_wrong_in_any_one_way_is_refused_and_not_remembered,
    htu_is_checked_against_public_url_when_it_is_set,
    htu_follows_forwarded_headers_only_from_trusted_proxies,
);

async fn a_bound_token_with_its_proof_is_accepted_for_any_method(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-user", &["read:users"], &key);
    let url = app.url("/users/me");

    let proof = key.proof("GET", &url, &token);
    let me = expect_json(
        app.send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await,
        200,
        "GET with a proof",
    )
    .await;
    assert_eq!(me["sub"], "auth0|dpop-user");

    let proof = key.proof("PATCH", &url, &token);
    let r = app
        .client
        .patch(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .json(&json!({"name": "Proven"}))
        .send()
        .await
        .expect("request");
    let patched = expect_json(r, 200, "PATCH with a proof").await;
    assert_eq!(patched["name"], "Proven");

    // htu leaves the query out (RFC 9449 §4.3); the scheme name is case-insensitive.
    let proof = key.proof("GET", &app.url("/users"), &token);
    let r = app
        .client
        .get(app.url("/users?limit=1"))
        .header("authorization", format!("dpop {token}"))
        .header("dpop", proof)
        .send()
        .await
        .expect("request");
    expect_json(r, 200, "a query is not part of htu").await;
}

/// What the refusal cases start from: a bound token and its key, another
/// key, and the URL of the request.
struct Refusals {
    key: DpopKey,
    other: DpopKey,
    token: String,
    url: String,
}

/// One way to be wrong: the `DPoP` headers sent, and the description expected.
type Case = (&'static str, Vec<String>, &'static str);

impl Refusals {
    /// The claims of a valid proof.
    fn good(&self) -> Value {
        claims("GET", &self.url, &self.token)
    }

    /// A valid proof with `change` applied to its header and claims, signed by its key.
    fn changed(&self, change: impl Fn(&mut Value, &mut Value)) -> Vec<String> {
        let (mut header, mut claims) = (self.key.header(), self.good());
        change(&mut header, &mut claims);
        vec![self.key.sign(&header, &claims)]
    }

    /// A valid proof with claim `name` set to `value` (removed when null).
    fn with_claim(&self, name: &str, value: Value) -> Vec<String> {
        self.changed(|_, c| match &value {
            Value::Null => drop(c.as_object_mut().expect("claims").remove(name)),
            value => c[name] = value.clone(),
        })
    }

    fn headers(&self) -> Vec<Case> {
        let valid = || self.key.proof("GET", &self.url, &self.token);
        vec![
            (
                "no proof",
                vec![],
                "the DPoP proof is malformed: no DPoP proof header",
            ),
            (
                "two proofs",
                vec![valid(), valid()],
                "the DPoP proof is malformed: more than one DPoP proof header",
            ),
            (
                "not a JWS",
                vec!["not-a-proof".into()],
                "the DPoP proof is malformed: not a compact JWS",
            ),
        ]
    }

    fn jose(&self) -> Vec<Case> {
        let mut private_jwk = self.key.jwk.clone();
        private_jwk["d"] = json!(self.key.d);
        let not_allowed =
            "the DPoP proof's algorithm is not allowed (allowed: ES256 ES384 RS256 PS256)";
        let mut hs256 = self.key.header();
        hs256["alg"] = json!("HS256");
        let unsigned = self.changed(|h, _| h["alg"] = json!("none"))[0]
            .rsplit_once('.')
            .map(|(input, _)| format!("{input}."))
            .expect("three parts");
        vec![
            (
                "private key in the jwk",
                self.changed(|h, _| h["jwk"] = private_jwk.clone()),
                "the DPoP proof's jwk must be a public key",
            ),
            (
                "symmetric alg",
                vec![sign_hs256(
                    &hs256,
                    &self.good(),
                    b"a shared secret of 32 bytes.....",
                )],
                not_allowed,
            ),
            ("alg none", vec![unsigned], not_allowed),
            (
                "typ of an access token",
                self.changed(|h, _| h["typ"] = json!("at+jwt")),
                "the DPoP proof is malformed: typ must be dpop+jwt",
            ),
            (
                "signed by another key than its jwk",
                vec![self.other.sign(&self.key.header(), &self.good())],
                "the DPoP proof's signature is invalid",
            ),
            (
                "another key than cnf.jkt",
                vec![self.other.proof("GET", &self.url, &self.token)],
                "the DPoP proof is signed by another key than the token is bound to",
            ),
        ]
    }

    fn claims(&self, other_path: String) -> Vec<Case> {
        let (url, age, ath) = (
            "the DPoP proof is for another URL",
            "the DPoP proof is too old or not yet valid",
            "the DPoP proof is for another access token (ath)",
        );
        vec![
            (
                "wrong htm",
                self.with_claim("htm", json!("POST")),
                "the DPoP proof is for another HTTP method",
            ),
            (
                "wrong htu path",
                self.with_claim("htu", json!(other_path)),
                url,
            ),
            (
                "wrong htu host",
                self.with_claim("htu", json!("https://elsewhere.test/users/me")),
                url,
            ),
            (
                "ath of another token",
                self.with_claim("ath", json!(ath_of("another.token.here"))),
                ath,
            ),
            ("no ath", self.with_claim("ath", Value::Null), ath),
            ("too old", self.with_claim("iat", json!(now() - 360)), age),
            (
                "ahead beyond the leeway",
                self.with_claim("iat", json!(now() + 120)),
                age,
            ),
            (
                "no jti",
                self.with_claim("jti", Value::Null),
                "the DPoP proof is malformed: jti",
            ),
        ]
    }
}

async fn a_proof_wrong_in_any_one_way_is_refused_and_not_remembered(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-refused", &[], &key);
    let refusals = Refusals {
        key,
        other: DpopKey::generate(),
        token,
        url: app.url("/users/me"),
    };
    let headers = refusals.headers();
    let two = headers[1].1.clone();
    let cases = [headers, refusals.jose(), refusals.claims(app.url("/users"))];
    for (case, proofs, description) in cases.into_iter().flatten() {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let r = app
            .send_dpop(Method::GET, "/users/me", &refusals.token, &proofs)
            .await;
        assert_proof_refused(&app.address, r, description, case).await;
    }

    // A proof refused beside another was not used up by the refusal.
    let r = app
        .send_dpop(Method::GET, "/users/me", &refusals.token, &[&two[0]])
        .await;
    expect_json(r, 200, "a proof first sent beside another").await;

    for reason in [
        "dpop_malformed",
        "dpop_algorithm",
        "dpop_private_key",
        "dpop_signature",
        "dpop_htm",
        "dpop_htu",
        "dpop_age",
        "dpop_ath",
        "dpop_jkt",
    ] {
        let counted = failures(&app, reason).await;
        assert!(counted.is_some_and(|n| n >= 1), "{reason}: {counted:?}");
    }
}

async fn htu_is_checked_against_public_url_when_it_is_set(backend: Backend) {
    let public = "https://api.usergate.test";
    let app = TestApp::spawn_with(Options::new(backend).env("PUBLIC_URL", public)).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-public", &[], &key);

    let proof = key.proof("GET", &format!("{public}/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    expect_json(r, 200, "htu under PUBLIC_URL").await;

    // The address the request really reached is not the one clients use.
    let proof = key.proof("GET", &app.url("/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_proof_refused(
        public,
        r,
        "the DPoP proof is for another URL",
        "own address",
    )
    .await;
}

async fn htu_follows_forwarded_headers_only_from_trusted_proxies(backend: Backend) {
    let forwarded = "https://edge.usergate.test";
    let send = |app: &TestApp, key: &DpopKey, token: &str| {
        let proof = key.proof("GET", &format!("{forwarded}/users/me"), token);
        app.client
            .get(app.url("/users/me"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "edge.usergate.test")
            .send()
    };
    let key = DpopKey::generate();

    let trusting =
        TestApp::spawn_with(Options::new(backend.clone()).env("TRUSTED_PROXIES", "127.0.0.1"))
            .await;
    let token = bound_token(&trusting, "auth0|dpop-forwarded", &[], &key);
    let r = send(&trusting, &key, &token).await.expect("request");
    expect_json(r, 200, "forwarded by a trusted proxy").await;

    let untrusting = TestApp::spawn_on(backend).await;
    let token = bound_token(&untrusting, "auth0|dpop-forwarded", &[], &key);
    let r = send(&untrusting, &key, &token).await.expect("request");
    assert_proof_refused(
        &untrusting.address,
        r,
        "the DPoP proof is for another URL",
        "untrusted",
    )
    .await;
}
