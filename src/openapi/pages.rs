//! `/openapi.json` and the Swagger UI page under `/docs`, served from the binary.

use std::sync::Arc;

use actix_web::{
    HttpResponse,
    http::header::{self, ContentEncoding},
    web,
};
use utoipa::OpenApi;
use utoipa_swagger_ui::Config;

use super::ApiDoc;
use crate::{error::ApiError, metrics::PATH as METRICS_PATH};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";

/// The document, rendered once, and the page's configuration.
#[derive(Clone)]
pub struct Docs {
    document: web::Bytes,
    page: Arc<Config<'static>>,
}

impl Docs {
    /// Renders the document of this build; without `/metrics` when it is
    /// served on its own listener (`METRICS_ADDR`) rather than the API port.
    pub fn new(metrics_on_api: bool) -> Self {
        let mut api = ApiDoc::openapi();
        if !metrics_on_api {
            api.paths.paths.remove(METRICS_PATH);
        }
        let document = api
            .to_json()
            .unwrap_or_else(|e| format!(r#"{{"error":"the document did not render: {e}"}}"#));
        Self {
            document: web::Bytes::from(document),
            // No spec validation: it would send the document's URL to swagger.io.
            page: Arc::new(Config::new([DOCUMENT_PATH]).validator_url("none")),
        }
    }
}

/// The OpenAPI document.
pub async fn document(docs: web::Data<Docs>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime::APPLICATION_JSON)
        .body(docs.document.clone())
}

/// `/docs` itself: the page lives at `/docs/`.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// A file of the Swagger UI page; 404 for a name it does not have.
pub async fn file(
    docs: web::Data<Docs>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = utoipa_swagger_ui::serve(&path, docs.page.clone())
        .map_err(|e| ApiError::Internal(e.to_string().into()))?
        .ok_or(ApiError::NoRoute)?;
    let mut response = HttpResponse::Ok();
    if file.gzpipped {
        response.insert_header((header::CONTENT_ENCODING, ContentEncoding::Gzip));
    }
    Ok(response
        .content_type(file.content_type)
        .body(file.bytes.into_owned()))
}
