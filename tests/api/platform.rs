//! The HTTP surface around the users API: health and readiness, request
//! ids, metrics, CORS and RFC 9728 metadata, over real HTTP.

use std::time::Duration;

use reqwest::{
    Method,
    header::{
        ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, ORIGIN,
    },
};
use serde_json::{Value, json};

use crate::support::{
    AUDIENCE,
    app::{Options, TestApp},
    assert::{assert_problem, challenge, expect_json, header, is_uuid, metrics_text, sample},
    db::Backend,
    issuer::JwksMode,
    keys::keys,
    now,
};

// ------------------------------------------------------------ health (A)

#[actix_web::test]
async fn healthz_answers_ok_and_readyz_answers_200_when_database_and_keys_are_fine() {
    let app = TestApp::spawn().await;
    let r = app.get_anonymous("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );

    let r = app.get_anonymous("/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"status": "ok", "database": "ok", "keys": "ok", "draining": false,
               "issuers": {app.issuer.issuer.clone(): "ok"}})
    );
}

#[actix_web::test]
async fn readyz_answers_503_naming_the_keys_while_no_key_set_is_loaded() {
    let cases = [
        ("JWKS down", JwksMode::Down),
        ("JWKS garbage", JwksMode::Garbage),
        (
            "JWKS slower than its timeout",
            JwksMode::Slow(Duration::from_secs(10)),
        ),
    ];
    for (case, mode) in cases {
        let app = TestApp::spawn_with(Options {
            mode,
            ..Options::new(Backend::Sqlite)
        })
        .await;
        let r = app.get_anonymous("/healthz").await;
        assert_eq!(
            r.status(),
            200,
            "{case}: liveness does not depend on the keys"
        );

        let r = app.get_anonymous("/readyz").await;
        assert_eq!(r.status(), 503, "{case}");
        assert!(header(&r, "retry-after").is_some(), "{case}: Retry-After");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["status"], "unavailable", "{case}: {body}");
        assert_eq!(body["database"], "ok", "{case}: {body}");
        assert_eq!(body["draining"], false, "{case}: {body}");
        let keys = body["keys"].as_str().unwrap_or_default();
        assert!(
            keys.starts_with("unavailable"),
            "{case}: keys must be named: {body}"
        );

        // A token cannot be checked yet: the answer says so, and is not a 500.
        let r = app.get_me(&app.token("auth0|early", &[])).await;
        assert_problem(r, 503, case).await;
    }
}

// ----------------------------------------------------- request ids (I)

#[actix_web::test]
async fn request_ids_are_made_echoed_or_replaced_and_problems_repeat_them() {
    let app = TestApp::spawn().await;
    let r = app.get_anonymous("/healthz").await;
    let made = header(&r, "x-request-id").expect("X-Request-Id");
    assert!(is_uuid(&made), "a fresh uuid when none is sent: {made}");
    let again = header(&app.get_anonymous("/healthz").await, "x-request-id");
    assert_ne!(again.as_deref(), Some(made.as_str()), "one id per request");

    let long = "x".repeat(129);
    let cases = [
        ("plain id", "abc-123", true),
        ("spaces", "has spaces in it", false),
        ("too long", long.as_str(), false),
        ("header injection", "a;b=c", false),
    ];
    for (case, sent, kept) in cases {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", sent)
            .send()
            .await
            .expect("request");
        let id = header(&r, "x-request-id").expect("X-Request-Id");
        if kept {
            assert_eq!(id, sent, "{case}: echoed");
        } else {
            assert!(is_uuid(&id), "{case}: replaced by a uuid, got {id}");
        }
    }

    for (case, sent) in [("client id", Some("abc-123")), ("made id", None)] {
        let mut request = app.client.get(app.url("/users/me"));
        if let Some(sent) = sent {
            request = request.header("x-request-id", sent);
        }
        let r = request.send().await.expect("request");
        let id = header(&r, "x-request-id").expect("X-Request-Id");
        let body = assert_problem(r, 401, case).await;
        assert_eq!(
            body["request_id"],
            id.as_str(),
            "{case}: body repeats the header"
        );
    }
}

// --------------------------------------------------------- metrics (J)

/// The sum of the samples of `name` whose labels contain `labels`.
#[actix_web::test]
async fn metrics_count_requests_by_route_pattern_auth_failures_keys_cache_and_pool() {
    let app = TestApp::spawn().await;
    let before = metrics_text(&app).await;
    let expired_failures = r#"reason="expired""#;

    let token = app.token("auth0|metrics", &["read:users"]);
    assert_eq!(app.get_me(&token).await.status(), 200);
    assert_eq!(app.get_me(&token).await.status(), 200, "cache hit");
    assert_eq!(app.get("/users/123", &token).await.status(), 404);
    let mut expired = app.issuer.claims("auth0|metrics", &[]);
    expired["exp"] = json!(now() - 3600);
    let r = app.get_me(&keys().primary.sign(&expired)).await;
    assert_problem(r, 401, "expired token").await;
    assert_eq!(app.get_anonymous("/healthz").await.status(), 200);

    let text = metrics_text(&app).await;
    let requests = "usergate_http_requests_total";
    for (case, labels) in [
        ("/users/me 200", r#"route="/users/me",status="200""#),
        ("/users/me 401", r#"route="/users/me",status="401""#),
        ("/users/{id} 404", r#"route="/users/{id}",status="404""#),
        ("/healthz", r#"route="/healthz",status="200""#),
    ] {
        assert!(
            sample(&text, requests, labels) > sample(&before, requests, labels),
            "{case}: {requests} must grow\n{text}"
        );
    }
    assert!(
        !text.contains(r#"route="/users/123""#),
        "raw paths are never labels"
    );
    for name in [
        "usergate_http_request_duration_seconds_bucket{",
        "usergate_jwks_fetches_total{outcome=\"success\"}",
        "usergate_token_cache_total{result=\"hit\"}",
        "usergate_token_cache_total{result=\"miss\"}",
        "usergate_db_pool_connections ",
        "usergate_db_pool_idle_connections ",
    ] {
        assert!(text.contains(name), "{name} is missing\n{text}");
    }
    assert!(
        sample(&text, "usergate_auth_failures_total", expired_failures)
            > sample(&before, "usergate_auth_failures_total", expired_failures),
        "auth failures by reason must grow\n{text}"
    );
}

// ------------------------------------------------------------ CORS (K)

fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[actix_web::test]
async fn cors_answers_preflights_and_exposes_location_to_allowed_origins_only() {
    let app = TestApp::spawn_with(
        Options::new(Backend::Sqlite).env("CORS_ALLOWED_ORIGINS", "http://app.example"),
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/users/me"))
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .send()
    };
    let r = preflight("http://app.example").await.expect("preflight");
    assert_eq!(r.status(), 200, "a preflight is never 401");
    assert_eq!(
        header(&r, "www-authenticate"),
        None,
        "no challenge on a preflight"
    );
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("http://app.example")
    );
    let allowed = header(&r, "access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.to_ascii_lowercase().contains("authorization"),
        "allow-headers: {allowed}"
    );

    let admin = app.token("auth0|cors", &["create:users"]);
    for (case, request) in [
        (
            "GET /users/me",
            app.client.get(app.url("/users/me")).bearer_auth(&admin),
        ),
        (
            "POST /users",
            app.client
                .post(app.url("/users"))
                .bearer_auth(&admin)
                .json(&json!({"sub": "auth0|made-cross-origin"})),
        ),
    ] {
        let r = request
            .header(ORIGIN, "http://app.example")
            .send()
            .await
            .expect("request");
        assert!(r.status().is_success(), "{case}: {}", r.status());
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("http://app.example"),
            "{case}"
        );
        let exposed = header(&r, "access-control-expose-headers").unwrap_or_default();
        assert!(
            exposed.to_ascii_lowercase().contains("location"),
            "{case}: expose-headers {exposed:?}"
        );
    }

    let r = preflight("http://evil.example").await.expect("preflight");
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    // actix-cors refuses it; the refusal still speaks problem+json.
    let body = assert_problem(r, 400, "disallowed preflight").await;
    assert!(body["request_id"].is_string(), "{body}");
    let r = app
        .client
        .get(app.url("/users/me"))
        .bearer_auth(&admin)
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        None,
        "a disallowed origin gets no allow-origin"
    );
}

#[actix_web::test]
async fn without_allowed_origins_no_cors_headers_are_sent_and_origin_requests_still_work() {
    let app = TestApp::spawn().await;
    let token = app.token("auth0|no-cors", &[]);
    for (case, path) in [("/users/me", "/users/me"), ("/healthz", "/healthz")] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .header(ORIGIN, "http://app.example")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{case}");
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "{case}");
    }
    let r = app
        .client
        .request(Method::OPTIONS, app.url("/users/me"))
        .header(ORIGIN, "http://app.example")
        .header(ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(cors_headers(&r), Vec::<String>::new(), "preflight");
}

// ------------------------------------------------------- RFC 9728 (L)

#[actix_web::test]
async fn protected_resource_metadata_describes_the_api_and_every_challenge_points_at_it() {
    let app = TestApp::spawn().await;
    let r = app
        .get_anonymous("/.well-known/oauth-protected-resource")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({
            "resource": AUDIENCE,
            "authorization_servers": [app.issuer.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["read:users", "create:users", "update:users", "delete:users"],
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "RS256", "PS256"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    for (mode, algs, required) in [
        (
            "required",
            json!(["ES256", "ES384", "RS256", "PS256"]),
            true,
        ),
        ("disabled", Value::Null, false),
    ] {
        let app = TestApp::spawn_with(Options::new(Backend::Sqlite).env("DPOP_MODE", mode)).await;
        let metadata = expect_json(
            app.get_anonymous("/.well-known/oauth-protected-resource")
                .await,
            200,
            "resource metadata",
        )
        .await;
        assert_eq!(
            metadata["dpop_signing_alg_values_supported"], algs,
            "{mode}"
        );
        assert_eq!(
            metadata["dpop_bound_access_tokens_required"], required,
            "{mode}"
        );
    }

    let mut expired = app.issuer.claims("auth0|l", &[]);
    expired["exp"] = json!(now() - 3600);
    let mut other_audience = app.issuer.claims("auth0|l", &[]);
    other_audience["aud"] = json!("https://other.api/");
    // (case, Authorization, status, the challenge's parameters before resource_metadata)
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no credentials", None, 401, r#"realm="usergate""#),
        (
            "another scheme",
            Some("Basic dXNlcjpwYXNz".into()),
            401,
            r#"realm="usergate""#,
        ),
        (
            "garbage token",
            Some("Bearer abc.def.ghi".into()),
            401,
            r#"realm="usergate", error="invalid_token", error_description="the token is not a JWT""#,
        ),
        (
            "expired token",
            Some(format!("Bearer {}", keys().primary.sign(&expired))),
            401,
            r#"realm="usergate", error="invalid_token", error_description="the token has expired""#,
        ),
        (
            "wrong audience",
            Some(format!("Bearer {}", keys().primary.sign(&other_audience))),
            401,
            r#"realm="usergate", error="invalid_token", error_description="the token is not meant for this API (wrong audience)""#,
        ),
        (
            "malformed header",
            Some("Bearer".into()),
            400,
            r#"realm="usergate", error="invalid_request", error_description="Bearer without a token""#,
        ),
        (
            "missing permission",
            Some(format!("Bearer {}", app.token("auth0|l", &[]))),
            403,
            r#"error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#,
        ),
    ];
    for (case, authorization, status, params) in cases {
        let path = if status == 403 { "/users" } else { "/users/me" };
        let mut request = app.client.get(app.url(path));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let r = request.send().await.expect("request");
        let www = header(&r, "www-authenticate");
        assert_problem(r, status, case).await;
        assert_eq!(www, Some(challenge(&app.address, params)), "{case}");
    }
}
