//! RFC 9728 protected resource metadata, and the dev JWKS.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{auth::ALL_PERMISSIONS, config::Settings};

/// How a client gets a token for this API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedResource {
    /// The API identifier (the first configured audience).
    pub resource: String,
    /// The token issuer.
    pub authorization_servers: Vec<String>,
    /// Always `["header"]`: tokens are read from `Authorization` only.
    pub bearer_methods_supported: Vec<&'static str>,
    /// The permissions the API checks.
    pub scopes_supported: Vec<&'static str>,
}

/// RFC 9728 metadata.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", tag = "health",
    responses((status = 200, body = ProtectedResource)))]
pub async fn protected_resource(settings: web::Data<Settings>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CACHE_CONTROL,
            "public, max-age=3600",
        ))
        .json(ProtectedResource {
            resource: settings.auth.audiences.first().cloned().unwrap_or_default(),
            authorization_servers: vec![settings.auth.issuer.clone()],
            bearer_methods_supported: vec!["header"],
            scopes_supported: ALL_PERMISSIONS.to_vec(),
        })
}

/// The dev key's JWKS (dev mode only).
pub async fn dev_jwks(jwks: web::Data<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(jwks.get_ref())
}
