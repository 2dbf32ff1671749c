//! RFC 9728 protected resource metadata, and the dev JWKS.

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::{DpopMode, dpop::ALGS},
    config::AuthSettings,
    dev_issuer::DevKey,
    users::permissions::ALL_PERMISSIONS,
};

/// How a client gets a token for this API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProtectedResource {
    /// The API identifier (the first configured audience).
    pub resource: String,
    /// The trusted token issuers, the primary first.
    pub authorization_servers: Vec<String>,
    /// Always `["header"]`: tokens are read from `Authorization` only.
    pub bearer_methods_supported: Vec<&'static str>,
    /// The permissions the API checks.
    pub scopes_supported: Vec<&'static str>,
    /// The algorithms a DPoP proof may use (absent when `DPOP_MODE=disabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<&'static str>>,
    /// Whether every token must be DPoP-bound (`DPOP_MODE=required`).
    pub dpop_bound_access_tokens_required: bool,
}

impl ProtectedResource {
    /// The metadata of an API verifying tokens as `auth` and `dpop` say.
    pub fn of(auth: &AuthSettings, dpop: DpopMode) -> Self {
        Self {
            resource: auth.audiences.first().cloned().unwrap_or_default(),
            authorization_servers: auth.issuers.clone(),
            bearer_methods_supported: vec!["header"],
            scopes_supported: ALL_PERMISSIONS.to_vec(),
            dpop_signing_alg_values_supported: (dpop != DpopMode::Disabled)
                .then(|| ALGS.split(' ').collect()),
            dpop_bound_access_tokens_required: dpop == DpopMode::Required,
        }
    }
}

/// RFC 9728 metadata.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource", operation_id = "protected_resource_metadata", tag = "health",
    responses((status = 200, description = "The metadata", body = ProtectedResource,
        headers(("Cache-Control" = String, description = "Cacheable for an hour")))))]
pub async fn protected_resource(metadata: web::Data<ProtectedResource>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(metadata.get_ref())
}

/// The dev key's public JWKS document, served in dev mode only.
pub struct DevJwks(serde_json::Value);

impl DevJwks {
    /// The document of `key`.
    pub fn of(key: &DevKey) -> Self {
        Self(key.jwks())
    }
}

/// The dev key's JWKS (dev mode only).
pub async fn dev_jwks(jwks: web::Data<DevJwks>) -> HttpResponse {
    HttpResponse::Ok().json(&jwks.0)
}
