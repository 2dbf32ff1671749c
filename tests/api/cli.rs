//! The developer commands as processes: `serve --dev`, `mint-token`,
//! `explain-token` and `healthcheck`.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use usergate::{config::DEV_AUDIENCE, dev_issuer::DevKey};

use crate::support::{
    assert::{assert_problem, challenge, header},
    dev::{Dev, curl_token},
    now,
    process::{command, free_port, run},
};

async fn get_with(token: &str, url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

#[actix_web::test]
async fn dev_server_prints_a_working_curl_line_and_keeps_its_key_across_restarts() {
    let dev = Dev::new();
    let mut server = dev.serve().await;
    let me = dev.url("/users/me");
    let token = curl_token(&server.stdout(), &me)
        .unwrap_or_else(|| panic!("no curl line on stdout:\n{}", server.stdout()));
    assert!(server.stderr().contains("DEV MODE"), "{}", server.stderr());
    let r = get_with(&token, &me).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.expect("user json");
    let r = reqwest::get(dev.url("/.well-known/jwks.json"))
        .await
        .expect("jwks");
    assert_eq!(r.status(), 200, "dev mode serves its key");

    let key = std::fs::metadata(dev.key_path()).expect("key file");
    assert_eq!(key.permissions().mode() & 0o777, 0o600, "key file mode");
    let folder =
        std::fs::metadata(dev.key_path().parent().expect("key folder")).expect("key folder");
    assert_eq!(
        folder.permissions().mode() & 0o777,
        0o700,
        "key folder mode"
    );

    server.terminate();
    assert!(server.exit(Duration::from_secs(10)).await.success());
    let restarted = dev.serve().await;
    let r = get_with(&token, &me).await;
    assert_eq!(
        r.status(),
        200,
        "a token minted before the restart still works"
    );
    let again: Value = r.json().await.expect("user json");
    assert_eq!(again["id"], user["id"]);
    drop(restarted);
}

#[actix_web::test]
async fn minted_tokens_are_accepted_by_the_dev_server_with_their_permissions() {
    let dev = Dev::new();
    let _server = dev.serve().await;
    let token = dev
        .mint(&[
            "--sub",
            "auth0|minted",
            "--permissions",
            "read:users,create:users",
        ])
        .await;

    let client = reqwest::Client::new();
    let r = get_with(&token, &dev.url("/users")).await;
    assert_eq!(r.status(), 200, "read:users lists");
    let r = client
        .post(dev.url("/users"))
        .bearer_auth(&token)
        .json(&json!({"sub": "auth0|made-by-minted"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201, "create:users creates");
    let created: Value = r.json().await.expect("user json");
    let r = client
        .delete(dev.url(&format!("/users/{}", created["id"])))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let www = header(&r, "www-authenticate");
    assert_problem(r, 403, "delete without delete:users").await;
    assert_eq!(
        www,
        Some(challenge(
            &dev.url(""),
            r#"error="insufficient_scope", scope="delete:users", error_description="this operation needs the delete:users permission""#
        ))
    );
}

#[actix_web::test]
async fn explain_token_accepts_a_good_token_and_says_exactly_why_it_refuses_others() {
    let dev = Dev::new();
    let good = dev.mint(&["--sub", "auth0|explained"]).await;
    let other_audience = dev
        .mint(&["--sub", "auth0|explained", "--aud", "other"])
        .await;

    // Tokens mint-token cannot make, signed by the same dev key.
    let pem = std::fs::read(dev.key_path()).expect("dev key");
    let kid = DevKey::from_pem(&pem).expect("dev key").kid().to_owned();
    let sign = |claims: Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.clone());
        let key = EncodingKey::from_rsa_pem(&pem).expect("rsa pem");
        jsonwebtoken::encode(&header, &claims, &key).expect("sign")
    };
    let issuer = format!("http://localhost:{}/", dev.port);
    let expired = sign(json!({
        "iss": issuer, "sub": "auth0|explained", "aud": DEV_AUDIENCE,
        "iat": now() - 7200, "exp": now() - 3600,
    }));
    let id_token = sign(json!({
        "iss": issuer, "sub": "auth0|explained", "aud": "spa-client-id-0123456789",
        "nonce": "n-0S6_WzA2Mj", "email": "e@example.com",
        "iat": now(), "exp": now() + 3600,
    }));

    let cases = [
        ("good token", good, true, "ACCEPTED"),
        ("expired", expired, false, "expired"),
        (
            "opaque",
            "gRb7Pq9sXz3K1mN0aB4cD6eF8hJ2kL5o".to_owned(),
            false,
            "opaque",
        ),
        ("ID token", id_token, false, "ID token"),
        ("wrong audience", other_audience, false, "wrong audience"),
    ];
    for (case, token, accepted, reason) in cases {
        let args = ["explain-token", "--dev", token.as_str()];
        let (status, stdout, stderr) = run(command(&args, &dev.env(), dev.dir.path())).await;
        assert_eq!(
            status.code(),
            Some(if accepted { 0 } else { 1 }),
            "{case}: {stdout}\n{stderr}"
        );
        let verdict = stdout.lines().last().unwrap_or_default();
        let expected = if accepted { "ACCEPTED" } else { "REFUSED" };
        assert!(verdict.starts_with(expected), "{case}: {stdout}");
        assert!(
            verdict.contains(reason),
            "{case}: should say {reason:?}: {verdict}"
        );
    }
}

#[actix_web::test]
async fn healthcheck_exits_0_against_a_running_server_and_1_when_nothing_listens() {
    let dev = Dev::new();
    let _server = dev.serve().await;
    let (status, _, stderr) = run(command(&["healthcheck"], &dev.env(), dev.dir.path())).await;
    assert_eq!(status.code(), Some(0), "{stderr}");

    let idle = [("PORT", free_port().to_string())];
    let (status, _, stderr) = run(command(&["healthcheck"], &idle, dev.dir.path())).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unhealthy"), "{stderr}");
}

/// Runs `dpop-proof` for `GET url` with `token`; returns the proof it prints.
async fn dpop_proof(dev: &Dev, key: &str, url: &str, token: &str) -> String {
    let args = [
        "dpop-proof",
        "--key",
        key,
        "--method",
        "get",
        "--url",
        url,
        "--token",
        token,
    ];
    let (status, stdout, stderr) = run(command(&args, &dev.env(), dev.dir.path())).await;
    assert!(status.success(), "dpop-proof: {status}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the proof alone on stdout: {stdout:?}");
    assert_eq!(lines[0].split('.').count(), 3, "a JWS: {stdout}");
    lines[0].to_owned()
}

#[actix_web::test]
async fn dpop_tools_bind_a_token_and_make_proofs_the_dev_server_accepts_once_each() {
    let dev = Dev::new();
    let _server = dev.serve().await;
    let key = dev.dir.path().join("client").join("dpop-key.pem");
    let key = key.to_str().expect("utf-8 path");
    let token = dev
        .mint(&["--sub", "auth0|dpop-cli", "--dpop-key", key])
        .await;
    assert!(
        std::path::Path::new(key).exists(),
        "the key file is created"
    );
    let again = dev
        .mint(&["--sub", "auth0|dpop-cli", "--dpop-key", key, "--ttl", "60"])
        .await;

    let me = dev.url("/users/me");
    let with_query = format!("{me}?page=1");
    let send = |token: &str, proof: &str| {
        reqwest::Client::new()
            .get(&me)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };

    let first = dpop_proof(&dev, key, &with_query, &token).await;
    let r = send(&token, &first).await.expect("request");
    assert_eq!(r.status(), 200, "a minted bound token with its proof");
    let user: Value = r.json().await.expect("user json");
    assert_eq!(user["sub"], "auth0|dpop-cli");
    let r = send(&token, &first).await.expect("request");
    assert_eq!(r.status(), 401, "the same proof again");
    let second = dpop_proof(&dev, key, &with_query, &again).await;
    let r = send(&again, &second).await.expect("request");
    assert_eq!(r.status(), 200, "another token bound to the same key file");

    let r = get_with(&token, &me).await;
    assert_problem(r, 401, "a bound token as Bearer").await;
    let args = ["explain-token", "--dev", token.as_str()];
    let (status, stdout, _) = run(command(&args, &dev.env(), dev.dir.path())).await;
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("DPoP-bound token sent as Bearer"),
        "explain-token says why: {stdout}"
    );
}
