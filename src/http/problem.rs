//! RFC 9457 problem documents: the body of every error answer.

use actix_web::{
    HttpResponse, HttpResponseBuilder, ResponseError,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::ErrorHandlerResponse,
};
use serde::Serialize;

use super::request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "urn:usergate:problem:invalid-token")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id, as in the `X-Request-Id` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A problem of kind `slug` for the request being served.
    pub fn new(
        status: StatusCode,
        slug: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("urn:usergate:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            request_id: request_id::current(),
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The answer: its status, `application/problem+json`, any `headers`, this body.
    pub fn respond(&self, headers: impl FnOnce(&mut HttpResponseBuilder)) -> HttpResponse {
        let mut response = HttpResponse::build(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        );
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        headers(&mut response);
        response.body(serde_json::to_string(self).unwrap_or_default())
    }
}

/// A request the server cannot use as sent; the client's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A field of the body or the query is invalid.
    #[error("{field}: {detail}")]
    Invalid {
        /// The field at fault (a JSON path or a query parameter).
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The request as a whole is unusable (not JSON, wrong content type).
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl RequestError {
    /// A field-level validation failure.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// Its problem document.
    pub fn problem(&self) -> Problem {
        match self {
            Self::Invalid { field, detail } => Problem::new(
                self.status_code(),
                "invalid-field",
                "Invalid request field",
                detail.clone(),
            )
            .with_field(field.clone()),
            Self::BadRequest(_) => Problem::new(
                self.status_code(),
                "bad-request",
                "Bad request",
                self.to_string(),
            ),
            Self::PayloadTooLarge { .. } => Problem::new(
                self.status_code(),
                "payload-too-large",
                "Payload too large",
                self.to_string(),
            ),
        }
    }
}

impl ResponseError for RequestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().respond(|_| {})
    }
}

/// Turns an error answer that is not problem+json yet (one made by actix or
/// actix-cors rather than by our errors) into one, keeping status and headers.
pub fn problem_fallback<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let status = res.status();
    // actix's own 405 (a resource without a route for the method) is a bare
    // answer with `Allow` and no error.
    let not_allowed = status == StatusCode::METHOD_NOT_ALLOWED;
    let error = res.response().error().map(ToString::to_string);
    // Deliberate non-error bodies (the readiness report) carry no error: keep them.
    if is_problem || (error.is_none() && !not_allowed) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = match error {
        _ if not_allowed => format!(
            "{} is not a method of this path; Allow lists the ones it has",
            res.request().method()
        ),
        Some(error) if status.is_client_error() => error,
        _ => reason.to_lowercase(),
    };
    let problem = Problem::new(
        status,
        &reason.to_lowercase().replace(' ', "-"),
        reason,
        detail,
    );
    let (req, res) = res.into_parts();
    let replacement = problem.respond(|replacement| {
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                replacement.append_header((name.clone(), value.clone()));
            }
        }
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, replacement).map_into_right_body(),
    ))
}
