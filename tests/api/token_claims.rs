//! Which tokens are access tokens (RFC 9068 `typ`, an ID token's `nonce`),
//! which claims grant permissions (`AUTH_PERMISSIONS_FROM`), and the
//! `mint-token --claim/--typ` that testers use against `serve --dev`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::support::{
    AUDIENCE,
    app::{Options, TestApp},
    assert::{assert_invalid_token, assert_problem, challenge, header, metrics_text, sample},
    db::Backend,
    dev::{Dev, curl_token},
    issuer::TestIssuer,
    keys::keys,
    process::{Running, command, free_port, run, serve_env, set_env},
};

/// `claims` signed by the support issuer's key, with header `typ`.
fn typed(typ: Option<&str>, claims: &Value) -> String {
    let key = &keys().primary;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

async fn auth_failures(app: &TestApp, reason: &str) -> f64 {
    let labels = format!(r#"reason="{reason}""#);
    sample(
        &metrics_text(app).await,
        "usergate_auth_failures_total",
        &labels,
    )
}

const NOT_ACCESS: &str = "the token's typ says it is not an access token";
const NOT_AT_JWT: &str = "the token's typ is not at+jwt (only RFC 9068 access tokens are accepted)";
const NONCE: &str = "the token carries a nonce: it is an ID token, not an access token";

#[actix_web::test]
async fn tokens_typed_as_something_else_or_carrying_a_nonce_are_always_refused() {
    let app = TestApp::spawn().await;
    let claims = app.issuer.claims("auth0|typed", &[]);
    let (typ_before, nonce_before) = (
        auth_failures(&app, "typ").await,
        auth_failures(&app, "nonce").await,
    );
    for (typ, accepted) in [
        (None, true),
        (Some("JWT"), true),
        (Some("at+jwt"), true),
        (Some("application/AT+JWT"), true),
        (Some("dpop+jwt"), false),
        (Some("DPoP+JWT"), false),
        (Some("application/logout+jwt"), false),
        (Some("secevent+jwt"), false),
        (Some("id_token"), false),
    ] {
        let r = app.get_me(&typed(typ, &claims)).await;
        if accepted {
            assert_eq!(r.status(), 200, "typ {typ:?}");
        } else {
            assert_invalid_token(r, NOT_ACCESS, &format!("typ {typ:?}")).await;
        }
    }
    let mut id_token = claims.clone();
    id_token["nonce"] = json!("n-0S6_WzA2Mj");
    assert_invalid_token(app.get_me(&typed(None, &id_token)).await, NONCE, "nonce").await;
    // RFC 9068's client_id beside (or instead of) Auth0's azp is fine.
    let mut rfc9068 = claims.clone();
    rfc9068["client_id"] = json!("s6BhdRkqt3");
    assert_eq!(
        app.get_me(&typed(Some("at+jwt"), &rfc9068)).await.status(),
        200
    );

    assert_eq!(
        auth_failures(&app, "typ").await,
        typ_before + 5.0,
        "a typ reason each"
    );
    assert_eq!(auth_failures(&app, "nonce").await, nonce_before + 1.0);
}

#[actix_web::test]
async fn requiring_at_jwt_refuses_every_other_typ() {
    let app =
        TestApp::spawn_with(Options::new(Backend::Sqlite).env("AUTH_REQUIRE_AT_JWT", "true")).await;
    let claims = app.issuer.claims("auth0|strict", &[]);
    for (typ, accepted) in [
        (Some("at+jwt"), true),
        (Some("Application/At+Jwt"), true),
        (None, false),
        (Some("JWT"), false),
        (Some("application/jwt"), false),
    ] {
        let r = app.get_me(&typed(typ, &claims)).await;
        if accepted {
            assert_eq!(r.status(), 200, "typ {typ:?}");
        } else {
            assert_invalid_token(r, NOT_AT_JWT, &format!("typ {typ:?}")).await;
        }
    }
    let dpop = typed(Some("dpop+jwt"), &claims);
    assert_invalid_token(app.get_me(&dpop).await, NOT_ACCESS, "a DPoP proof").await;
}

#[actix_web::test]
async fn permissions_come_only_from_the_claims_auth_permissions_from_names() {
    for (from, scope_grants, permissions_grant) in [
        ("permissions", false, true),
        ("scope", true, false),
        ("permissions,scope", true, true),
    ] {
        let app =
            TestApp::spawn_with(Options::new(Backend::Sqlite).env("AUTH_PERMISSIONS_FROM", from))
                .await;
        let by_scope = app.token_with("auth0|s", &[], &json!({"scope": "openid read:users"}));
        let by_permissions = app.token("auth0|p", &["read:users"]);
        for (case, token, grants) in [
            ("scope", by_scope, scope_grants),
            ("permissions", by_permissions, permissions_grant),
        ] {
            let r = app.get("/users", &token).await;
            if grants {
                assert_eq!(r.status(), 200, "{from}: {case} grants");
                continue;
            }
            assert_eq!(
                header(&r, "www-authenticate"),
                Some(challenge(
                    &app.address,
                    r#"error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
                )),
                "{from}: {case}"
            );
            assert_problem(r, 403, &format!("{from}: {case} grants nothing")).await;
        }
    }
}

#[actix_web::test]
async fn start_up_says_where_permissions_come_from_and_refuses_an_unknown_claim_in_one_line() {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("p.db").display());
    let port = free_port();
    let mut env = serve_env(&issuer, &database, port);

    set_env(&mut env, "AUTH_PERMISSIONS_FROM", "roles");
    let (status, _, stderr) = run(command(&["serve"], &env, dir.path())).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: AUTH_PERMISSIONS_FROM: "),
        "{stderr}"
    );

    set_env(&mut env, "AUTH_PERMISSIONS_FROM", "permissions");
    let mut server = Running::start(command(&["serve"], &env, dir.path()));
    server.wait_ready(&format!("http://127.0.0.1:{port}")).await;
    let stderr = server.stderr();
    assert!(
        stderr.contains("permissions come from the permissions claim only"),
        "{stderr}"
    );
}

/// The JSON of a token's `part` (0 header, 1 claims), not verified.
fn part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64")).expect("json")
}

#[actix_web::test]
async fn mint_token_adds_claims_and_typ_that_serve_dev_honours() {
    let dev = Dev::new();
    let _server = dev.serve().await;
    let machine = dev
        .mint(&[
            "--sub",
            "m2m@clients-not",
            "--permissions",
            "read:users",
            "--typ",
            "at+jwt",
            "--claim",
            r#"org_id="org_1""#,
            "--claim",
            r#"gty="client-credentials""#,
        ])
        .await;
    assert_eq!(part(&machine, 0)["typ"], "at+jwt");
    let claims = part(&machine, 1);
    assert_eq!(
        (&claims["org_id"], &claims["gty"]),
        (&json!("org_1"), &json!("client-credentials"))
    );

    let client = reqwest::Client::new();
    let get = |path: &str, token: &str| client.get(dev.url(path)).bearer_auth(token).send();
    assert_eq!(
        get("/users", &machine).await.expect("request").status(),
        200,
        "at+jwt works"
    );
    let me = get("/users/me", &machine).await.expect("request");
    let body = assert_problem(me, 403, "the gty claim made it a machine client").await;
    assert_eq!(
        body["detail"],
        "machine clients (client-credentials tokens) have no user"
    );

    let proof_typed = dev.mint(&["--sub", "auth0|x", "--typ", "dpop+jwt"]).await;
    assert_invalid_token(
        get("/users/me", &proof_typed).await.expect("request"),
        NOT_ACCESS,
        "dpop+jwt",
    )
    .await;

    let args = ["mint-token", "--sub", "auth0|x", "--claim", "org_id=org_1"];
    let (status, stdout, stderr) = run(command(&args, &dev.env(), dev.dir.path())).await;
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "", "no token");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: --claim org_id: not JSON"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn with_at_jwt_required_serve_dev_accepts_its_curl_line_and_what_mint_token_prints() {
    let dev = Dev::with_env(&[("AUTH_REQUIRE_AT_JWT", "true")]);
    let server = dev.serve().await;
    let me = dev.url("/users/me");
    let printed = curl_token(&server.stdout(), &me).expect("a curl line");
    let minted = dev.mint(&["--sub", "auth0|typed-by-default"]).await;
    assert_eq!(part(&minted, 0)["typ"], "at+jwt", "typed by default");
    let untyped = dev.mint(&["--sub", "auth0|x", "--typ", "JWT"]).await;
    let client = reqwest::Client::new();
    let get = |token: &str| client.get(&me).bearer_auth(token).send();
    for (case, token) in [("curl line", &printed), ("mint-token", &minted)] {
        assert_eq!(get(token).await.expect("request").status(), 200, "{case}");
    }
    assert_invalid_token(get(&untyped).await.expect("request"), NOT_AT_JWT, "JWT").await;
}

#[actix_web::test]
async fn explain_token_says_typ_is_not_at_jwt_and_where_permissions_come_from() {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let dir = tempfile::tempdir().expect("temp dir");
    let claims = issuer.claims("auth0|explained", &[]);
    let mut id_token = claims.clone();
    id_token["nonce"] = json!("n-0S6_WzA2Mj");
    let cases = [
        (
            ("AUTH_REQUIRE_AT_JWT", "true"),
            typed(None, &claims),
            false,
            "REFUSED: typ is not at+jwt (it is absent): AUTH_REQUIRE_AT_JWT=true",
        ),
        (
            ("AUTH_REQUIRE_AT_JWT", "false"),
            typed(Some("dpop+jwt"), &claims),
            false,
            "REFUSED: typ is not at+jwt: dpop+jwt says this JWT is not an access token",
        ),
        (
            ("AUTH_REQUIRE_AT_JWT", "false"),
            typed(None, &id_token),
            false,
            NONCE,
        ),
        (
            ("AUTH_PERMISSIONS_FROM", "permissions"),
            typed(Some("at+jwt"), &claims),
            true,
            "note: permissions come from the permissions claim only (AUTH_PERMISSIONS_FROM): \
             its scope claim grants nothing",
        ),
    ];
    for ((var, value), token, accepted, says) in cases {
        let env = vec![
            ("AUTH0_ISSUER", issuer.issuer.clone()),
            ("AUTH0_AUDIENCE", AUDIENCE.to_owned()),
            (var, value.to_owned()),
        ];
        let (status, stdout, stderr) =
            run(command(&["explain-token", &token], &env, dir.path())).await;
        let case = format!("{var}={value} {says}");
        assert_eq!(status.success(), accepted, "{case}: {stdout}\n{stderr}");
        assert!(stdout.contains(says), "{case}: {stdout}");
    }
}
