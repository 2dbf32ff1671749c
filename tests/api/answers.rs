//! The six canonical error answers, pinned whole: the status, every header
//! but `Date`, and the body byte for byte. Only what varies per run is
//! normalised (the request id, the app's port). The same answer is expected
//! on both backends.

use reqwest::Method;
use serde_json::json;

use crate::{
    on_both_backends,
    support::{
        app::{TestApp, id_of},
        assert::{answer_text, expect_json},
        db::{Backend, Outage},
        keys::keys,
        now,
    },
};

on_both_backends!(
    no_credentials_get_401_with_a_bare_challenge,
    bearer_without_a_token_gets_400_invalid_request,
    an_expired_token_gets_401_invalid_token,
    a_list_without_read_users_gets_403_insufficient_scope,
    a_user_deactivated_by_an_admin_gets_403_user_inactive,
);

async fn no_credentials_get_401_with_a_bare_challenge(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app.get_anonymous("/users/me").await;
    let answer = answer_text(r, &app.address).await;
    // Both backends assert the one snapshot.
    insta::allow_duplicates! {
        insta::assert_snapshot!(answer, @r#"
        HTTP/1.1 401 Unauthorized
        content-length: 224
        content-type: application/problem+json
        www-authenticate: Bearer realm="usergate", resource_metadata="http://127.0.0.1:[PORT]/.well-known/oauth-protected-resource", DPoP algs="ES256 ES384 RS256 PS256"
        x-content-type-options: nosniff
        x-request-id: [request-id]

        {"type":"urn:usergate:problem:missing-credentials","title":"Authentication required","status":401,"detail":"this endpoint needs a bearer token in the Authorization header","request_id":"[request-id]"}
        "#);
    }
}

async fn bearer_without_a_token_gets_400_invalid_request(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app
        .client
        .get(app.url("/users/me"))
        .header("authorization", "Bearer")
        .send()
        .await
        .expect("request");
    let answer = answer_text(r, &app.address).await;
    // Both backends assert the one snapshot.
    insta::allow_duplicates! {
        insta::assert_snapshot!(answer, @r#"
        HTTP/1.1 400 Bad Request
        content-length: 210
        content-type: application/problem+json
        www-authenticate: Bearer realm="usergate", error="invalid_request", error_description="Bearer without a token", resource_metadata="http://127.0.0.1:[PORT]/.well-known/oauth-protected-resource", DPoP algs="ES256 ES384 RS256 PS256"
        x-content-type-options: nosniff
        x-request-id: [request-id]

        {"type":"urn:usergate:problem:invalid-request","title":"Malformed credentials","status":400,"detail":"malformed Authorization header: Bearer without a token","request_id":"[request-id]"}
        "#);
    }
}

async fn an_expired_token_gets_401_invalid_token(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut claims = app.issuer.claims("auth0|expired", &[]);
    claims["exp"] = json!(now() - 3600);
    let r = app.get_me(&keys().primary.sign(&claims)).await;
    let answer = answer_text(r, &app.address).await;
    // Both backends assert the one snapshot.
    insta::allow_duplicates! {
        insta::assert_snapshot!(answer, @r#"
        HTTP/1.1 401 Unauthorized
        content-length: 182
        content-type: application/problem+json
        www-authenticate: Bearer realm="usergate", error="invalid_token", error_description="the token has expired", resource_metadata="http://127.0.0.1:[PORT]/.well-known/oauth-protected-resource", DPoP algs="ES256 ES384 RS256 PS256"
        x-content-type-options: nosniff
        x-request-id: [request-id]

        {"type":"urn:usergate:problem:invalid-token","title":"Invalid token","status":401,"detail":"invalid token: the token has expired","request_id":"[request-id]"}
        "#);
    }
}

async fn a_list_without_read_users_gets_403_insufficient_scope(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let r = app.get("/users", &app.token("auth0|no-read", &[])).await;
    let answer = answer_text(r, &app.address).await;
    // Both backends assert the one snapshot.
    insta::allow_duplicates! {
        insta::assert_snapshot!(answer, @r#"
        HTTP/1.1 403 Forbidden
        content-length: 202
        content-type: application/problem+json
        www-authenticate: Bearer error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission", resource_metadata="http://127.0.0.1:[PORT]/.well-known/oauth-protected-resource", DPoP algs="ES256 ES384 RS256 PS256"
        x-content-type-options: nosniff
        x-request-id: [request-id]

        {"type":"urn:usergate:problem:insufficient-scope","title":"Insufficient scope","status":403,"detail":"this operation needs the read:users permission","request_id":"[request-id]"}
        "#);
    }
}

async fn a_user_deactivated_by_an_admin_gets_403_user_inactive(backend: Backend) {
    let (app, admin) = TestApp::spawn_with_admin(backend).await;
    let token = app.token("auth0|deactivated", &[]);
    let user = expect_json(app.get_me(&token).await, 200, "first sight").await;
    let path = format!("/users/{}", id_of(&user));
    let r = app
        .send_json(Method::PATCH, &path, &admin, &json!({"is_active": false}))
        .await;
    expect_json(r, 200, "deactivate").await;
    let r = app.get_me(&token).await;
    let answer = answer_text(r, &app.address).await;
    // Both backends assert the one snapshot.
    insta::allow_duplicates! {
        insta::assert_snapshot!(answer, @r#"
        HTTP/1.1 403 Forbidden
        content-length: 173
        content-type: application/problem+json
        x-content-type-options: nosniff
        x-request-id: [request-id]

        {"type":"urn:usergate:problem:user-inactive","title":"User deactivated","status":403,"detail":"this user is deactivated","request_id":"[request-id]"}
        "#);
    }
}

#[actix_web::test]
async fn a_database_outage_gets_503_with_retry_after() {
    let Some(Backend::Postgres(base)) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn_on(Backend::Postgres(base.clone())).await;
    let outage = Outage::begin(&base, &app.database_url);
    // A sub never seen before: its row is not cached, so the database must answer.
    let r = app.get_me(&app.token("auth0|during-outage", &[])).await;
    let answer = answer_text(r, &app.address).await;
    outage.end();
    insta::assert_snapshot!(answer, @r#"
    HTTP/1.1 503 Service Unavailable
    content-length: 206
    content-type: application/problem+json
    retry-after: 5
    x-content-type-options: nosniff
    x-request-id: [request-id]

    {"type":"urn:usergate:problem:service-unavailable","title":"Service unavailable","status":503,"detail":"the database is not answering; try again shortly","request_id":"[request-id]"}
    "#);
}
