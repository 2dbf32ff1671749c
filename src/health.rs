//! Liveness and readiness.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{Verifier, jwks::KeyStore},
    db,
    db::DbPool,
    report::Chain,
};

/// Set when the server starts draining: `/readyz` then answers 503.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the server as draining.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// `{"status":"ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness and the state of each part.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// `ok`, or why the database is not ready.
    pub database: String,
    /// `ok` when every trusted issuer's key set is loaded, else why not.
    pub keys: String,
    /// Each trusted issuer's key set: `ok`, or why none is loaded.
    pub issuers: BTreeMap<String, String>,
    /// True once shutdown has begun.
    pub draining: bool,
}

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", responses((status = 200, description = "Serving", body = Health)))]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Ready for traffic: the database answers and a key set is loaded.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: the database or the keys are unavailable, or the server is draining",
            body = Readiness, headers(("Retry-After" = String, description = "Seconds to wait before trying again")))))]
pub async fn readyz(
    pool: web::Data<DbPool>,
    verifier: web::Data<Verifier>,
    draining: web::Data<Draining>,
) -> HttpResponse {
    let database = match db::ping(&pool).await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            log::warn!("readiness: database unavailable: {}", Chain(&e));
            "unavailable".to_owned()
        }
    };
    let issuers: BTreeMap<String, String> = verifier
        .issuers()
        .iter()
        .map(|(issuer, store)| (issuer.to_owned(), key_state(store)))
        .collect();
    let keys = match issuers.iter().find(|(_, state)| *state != "ok") {
        None => "ok".to_owned(),
        Some((issuer, _)) => format!("unavailable: no signing key set loaded yet for {issuer}"),
    };
    let draining = draining.is_draining();
    let ready = database == "ok" && keys == "ok" && !draining;
    let body = Readiness {
        status: if ready { "ok" } else { "unavailable" },
        database,
        keys,
        issuers,
        draining,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
            .json(body)
    }
}

/// `ok` once a key set is loaded (a later failed refresh keeps it in use),
/// else why none could be.
fn key_state(store: &KeyStore) -> String {
    match (store.current(), store.problem()) {
        (Some(_), _) => "ok".to_owned(),
        (None, Some(why)) => format!("unavailable: {why}"),
        (None, None) => "unavailable: no signing key set loaded yet".to_owned(),
    }
}
