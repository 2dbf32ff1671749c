//! Security headers: `nosniff` on every answer; a content security policy
//! and no framing for the documentation pages.

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::Next,
};

/// What the Swagger UI page needs: its own scripts and styles (it sets
/// inline styles), its inline SVG images, and the document it fetches.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A JSON document loads nothing and is never framed.
const DOCUMENT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Middleware: adds the headers to every answer, error answers included.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let policy = policy_of(req.path());
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(policy) = policy {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(response)
}

/// The policy of the documentation paths; `None` elsewhere.
fn policy_of(path: &str) -> Option<&'static str> {
    if path == "/openapi.json" {
        Some(DOCUMENT_POLICY)
    } else if path == "/docs" || path.starts_with("/docs/") {
        Some(DOCS_POLICY)
    } else {
        None
    }
}
