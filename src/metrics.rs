//! Prometheus metrics: the recorder, the request middleware and `/metrics`.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::{
    auth::Verifier,
    db::DbPool,
    http::routes::{method_label, route_label},
};

/// Latency buckets in seconds, from 100 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder; installed once, shared by every app in the process.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "usergate_http_request_duration_seconds".into(),
                    ),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, which this crate never does.
            let _ = metrics::set_global_recorder(recorder);
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// How often recorded latencies are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The recorder keeps every latency sample until it is folded into the
/// histogram's buckets, which a scrape does; without scrapes (or with
/// `/metrics` never read) memory would grow with every request. One thread
/// folds them on an interval, so memory stays flat whatever the scraping.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        log::warn!("metrics upkeep thread could not start: {e}");
    }
}

/// Middleware: counts requests and times them. Every label comes from a
/// fixed set, so that nothing a client sends can grow the label set: the
/// method (or `OTHER`), the route pattern (or `unmatched`), the status.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    let route = route_label(response.request());
    let status = response.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("usergate_http_requests_total", &labels).increment(1);
    metrics::histogram!("usergate_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    Ok(response)
}

/// Where the metrics are served (on the API port, or alone on `METRICS_ADDR`).
pub const PATH: &str = "/metrics";

/// Prometheus metrics: requests by route and status, latency, auth failures
/// by reason, JWKS fetches, token cache, pool state.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn render(
    handle: web::Data<PrometheusHandle>,
    pool: web::Data<DbPool>,
    verifier: web::Data<Verifier>,
) -> HttpResponse {
    let state = pool.state();
    metrics::gauge!("usergate_db_pool_connections").set(f64::from(state.connections));
    metrics::gauge!("usergate_db_pool_idle_connections").set(f64::from(state.idle_connections));
    metrics::gauge!("usergate_db_pool_max_size").set(f64::from(pool.max_size()));
    // Summed over the issuers; the age is the oldest set's.
    let sets: Vec<_> = verifier
        .issuers()
        .iter()
        .filter_map(|(_, store)| store.current())
        .collect();
    let keys: usize = sets.iter().map(|set| set.len()).sum();
    metrics::gauge!("usergate_jwks_keys").set(keys as f64);
    if let Some(age) = sets.iter().map(|set| set.loaded_at.elapsed()).max() {
        metrics::gauge!("usergate_jwks_age_seconds").set(age.as_secs_f64());
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
