//! A proof is accepted once (RFC 9449 §11.1): on one app, and on
//! PostgreSQL at every replica; when the shared table cannot be asked, no
//! proof is accepted at all.

use std::time::{Duration, Instant};

use diesel::{
    RunQueryDsl,
    sql_types::{BigInt, Text},
};
use reqwest::Method;

use super::{assert_proof_refused, bound_token, failures};
use crate::{
    on_both_backends,
    replicas::two_replicas_with,
    support::{
        app::{Options, TestApp},
        assert::{assert_problem, expect_json, header},
        db::{Backend, Outage, with_db},
        dpop::DpopKey,
        now,
    },
};

on_both_backends!(
    a_replayed_proof_is_refused_on_the_same_app,
    proofs_sent_together_are_each_accepted_once
);

const REPLAYED: &str = "the DPoP proof was already used";

async fn a_replayed_proof_is_refused_on_the_same_app(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-replay", &[], &key);
    let proof = key.proof("GET", &app.url("/users/me"), &token);

    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    expect_json(r, 200, "first use").await;
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_proof_refused(&app.address, r, REPLAYED, "replayed").await;

    let fresh = key.proof("GET", &app.url("/users/me"), &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&fresh])
        .await;
    expect_json(r, 200, "a fresh proof").await;

    assert!(
        failures(&app, "dpop_replay").await.is_some_and(|n| n >= 1),
        "replays are counted under their own reason"
    );
}

/// Proofs arriving together are recorded together on PostgreSQL: a proof
/// sent three times at once, maybe in one batch, is still accepted once.
async fn proofs_sent_together_are_each_accepted_once(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-together", &[], &key);
    let url = app.url("/users/me");
    let proofs: Vec<String> = (0..30).map(|_| key.proof("GET", &url, &token)).collect();
    let sends = proofs.iter().flat_map(|proof| {
        (0..3).map(|_| async {
            let r = app
                .send_dpop(Method::GET, "/users/me", &token, &[proof])
                .await;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("a JSON body");
            (proof.clone(), status, body)
        })
    });
    let answers = futures::future::join_all(sends).await;
    for proof in &proofs {
        let mut statuses: Vec<u16> = answers
            .iter()
            .filter(|(sent, _, _)| sent == proof)
            .map(|(_, status, _)| *status)
            .collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401, 401], "one proof sent three times");
    }
    for (_, _, body) in answers.iter().filter(|(_, status, _)| *status == 401) {
        let replayed = format!("invalid DPoP proof: {REPLAYED}");
        assert_eq!(body["detail"], replayed, "refused as replayed: {body}");
    }
}

#[actix_web::test]
async fn a_proof_used_at_one_replica_is_refused_at_the_other() {
    // Behind one balancer, both replicas are reached at the same URL.
    let public = "https://api.usergate.test";
    let Some((a, b)) = two_replicas_with(&[("PUBLIC_URL", public)]).await else {
        return;
    };
    let key = DpopKey::generate();
    let token = bound_token(&a, "auth0|dpop-fleet", &[], &key);
    let url = format!("{public}/users/me");
    for (first, then) in [(&a, &b), (&b, &a)] {
        let proof = key.proof("GET", &url, &token);
        let r = first
            .send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await;
        expect_json(r, 200, "first use").await;
        let r = then
            .send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await;
        assert_proof_refused(public, r, REPLAYED, "replayed at the other replica").await;
    }
}

#[actix_web::test]
async fn when_the_replay_table_cannot_be_reached_no_proof_is_accepted() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let Backend::Postgres(base) = backend.clone() else {
        unreachable!("a PostgreSQL backend");
    };
    let app = TestApp::spawn_on(backend).await;
    let key = DpopKey::generate();
    let token = bound_token(&app, "auth0|dpop-outage", &[], &key);
    let url = app.url("/users/me");
    let proof = key.proof("GET", &url, &token);
    expect_json(
        app.send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await,
        200,
        "before",
    )
    .await;

    // The table gone while the database answers: any failure fails closed.
    with_db(&app.database_url, |conn| {
        diesel::sql_query("ALTER TABLE dpop_proofs RENAME TO dpop_proofs_away").execute(conn)
    })
    .await
    .expect("rename");
    let proof = key.proof("GET", &url, &token);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_replay_store_down(r, "table renamed").await;
    with_db(&app.database_url, |conn| {
        diesel::sql_query("ALTER TABLE dpop_proofs_away RENAME TO dpop_proofs").execute(conn)
    })
    .await
    .expect("rename back");

    // The whole database gone.
    let outage = Outage::begin(&base, &app.database_url);
    let r = app
        .send_dpop(Method::GET, "/users/me", &token, &[&proof])
        .await;
    assert_replay_store_down(r, "database down").await;
    outage.end();

    // Back: the proof refused during the outage was never recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .send_dpop(Method::GET, "/users/me", &token, &[&proof])
            .await;
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not back: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_replay_store_down(r: reqwest::Response, case: &str) {
    let retry = header(&r, "retry-after");
    let www = header(&r, "www-authenticate");
    let body = assert_problem(r, 503, case).await;
    assert_eq!(
        body["type"], "urn:usergate:problem:dpop-replay-store-unavailable",
        "{case}: {body}"
    );
    assert_eq!(retry.as_deref(), Some("5"), "{case}: Retry-After");
    assert_eq!(www, None, "{case}: a 503 has no challenge");
}

#[actix_web::test]
async fn expired_proofs_are_purged_from_the_shared_table_in_the_background() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn_on(backend).await;
    let (expired, live) = ("0".repeat(64), "1".repeat(64));
    let (past, future) = (now() - 10, now() + 600);
    with_db(&app.database_url, move |conn| {
        for (key, at) in [(expired, past), (live, future)] {
            diesel::sql_query("INSERT INTO dpop_proofs (proof_key, expires_at) VALUES ($1, $2)")
                .bind::<Text, _>(key)
                .bind::<BigInt, _>(at)
                .execute(conn)?;
        }
        Ok(())
    })
    .await
    .expect("insert");
    // A replica purges when it starts, then every minute: start another.
    let _other = TestApp::spawn_with(
        Options::new(Backend::postgres().expect("postgres"))
            .env("DATABASE_URL", &app.database_url)
            .env("AUTH0_ISSUER", &app.issuer.issuer),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = with_db(&app.database_url, |conn| {
            diesel::sql_query("SELECT expires_at AS n FROM dpop_proofs ORDER BY expires_at")
                .load::<Count>(conn)
        })
        .await
        .expect("select");
        let left: Vec<i64> = left.into_iter().map(|c| c.n).collect();
        if left == [future] {
            break;
        }
        assert!(Instant::now() < deadline, "not purged: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}
