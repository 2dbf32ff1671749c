//! `/metrics` labels come from fixed sets, and `METRICS_ADDR` moves `/metrics`
//! to a listener of its own.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::Method;
use usergate::{Application, Settings};

use crate::support::{
    AUDIENCE, app::TestApp, assert::assert_problem, db::Backend, issuer::TestIssuer, keys::keys,
};

/// The series of a Prometheus text body that no standard method made: each
/// sample's name and labels without its value (counts and sums grow, the
/// set of series must not). Other tests share the process-wide recorder, but
/// none of them makes up methods.
fn series(body: &str) -> BTreeSet<String> {
    const STANDARD: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    body.lines()
        .filter(|line| line.contains("method=\""))
        .filter(|line| {
            !STANDARD
                .iter()
                .any(|m| line.contains(&format!("method=\"{m}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

async fn metrics_series(app: &TestApp) -> BTreeSet<String> {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    series(&response.text().await.expect("metrics body"))
}

/// `n` requests with made-up methods (2 KB names) and paths, `i` from `from`.
async fn made_up_requests(app: &TestApp, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(50) {
        join_all(chunk.iter().map(|i| {
            let method = Method::from_bytes(format!("M{i:06}{}", "X".repeat(2048)).as_bytes())
                .expect("a token is a valid method");
            let path = match i % 4 {
                0 => format!("/nowhere-{i}"),
                1 => "/healthz".to_owned(),
                2 => format!("/users/{i}/deeper/{i}"),
                _ => format!("/docs/nothing-{i}.js"),
            };
            let request = app.client.request(method, app.url(&path));
            async move {
                request.send().await.expect("made-up request");
            }
        }))
        .await;
    }
}

#[actix_web::test]
async fn thousands_of_made_up_methods_and_paths_leave_the_metrics_series_unchanged() {
    let app = TestApp::spawn().await;
    // Every shape of request once, so that its series exist.
    made_up_requests(&app, 0, 8).await;
    let before = metrics_series(&app).await;
    made_up_requests(&app, 8, 3000).await;
    let after = metrics_series(&app).await;
    let grown: Vec<&String> = after.difference(&before).collect();
    assert!(
        grown.is_empty(),
        "new series: {:?}",
        &grown[..grown.len().min(5)]
    );
    assert_eq!(before.len(), after.len());
    assert!(
        after
            .iter()
            .any(|s| s.contains(r#"method="OTHER""#) && s.contains(r#"route="unmatched""#)),
        "made-up methods count as OTHER on unmatched: {after:?}"
    );
}

#[actix_web::test]
async fn with_metrics_addr_metrics_are_served_on_their_own_listener_only() {
    let issuer = TestIssuer::start(&[&keys().primary]);
    let (database_url, _dir) = Backend::Sqlite.fresh_database();
    let env = [
        ("AUTH0_ISSUER", issuer.issuer.as_str()),
        ("AUTH0_AUDIENCE", AUDIENCE),
        ("DATABASE_URL", database_url.as_str()),
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    let settings = Settings::from_lookup(
        |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        },
        false,
    )
    .expect("settings");
    let app = Application::build(settings).await.expect("app builds");
    let (api, metrics) = (app.port(), app.metrics_port().expect("a metrics listener"));
    assert_ne!(api, metrics);
    actix_web::rt::spawn(app.run());
    let client = reqwest::Client::new();

    let on_api = client
        .get(format!("http://127.0.0.1:{api}/metrics"))
        .send()
        .await
        .expect("api port");
    let body = assert_problem(on_api, 404, "/metrics on the API port").await;
    assert_eq!(body["type"], "urn:usergate:problem:not-found");
    let healthz = client
        .get(format!("http://127.0.0.1:{api}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200, "the API port still serves the API");
    let document: serde_json::Value = client
        .get(format!("http://127.0.0.1:{api}/openapi.json"))
        .send()
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("a JSON document");
    assert!(document["paths"]["/healthz"].is_object(), "{document}");
    assert!(
        document["paths"]["/metrics"].is_null(),
        "the API port's document does not promise /metrics"
    );

    let scraped = client
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .send()
        .await
        .expect("metrics port");
    assert_eq!(scraped.status(), 200);
    assert!(
        scraped.headers()["content-type"]
            .to_str()
            .is_ok_and(|ct| ct.starts_with("text/plain")),
    );
    let text = scraped.text().await.expect("metrics body");
    assert!(text.contains("usergate_http_requests_total"), "{text}");
    assert!(
        text.contains(r#"route="/healthz""#),
        "counts the API port's requests: {text}"
    );
    let elsewhere = client
        .get(format!("http://127.0.0.1:{metrics}/users/me"))
        .send()
        .await
        .expect("metrics port, other path");
    assert_problem(elsewhere, 404, "only /metrics on the metrics port").await;
}
