//! The one place errors become HTTP answers: RFC 9457 problem+json.

use actix_web::{
    HttpResponse, ResponseError,
    dev::ServiceResponse,
    http::{StatusCode, header},
    middleware::ErrorHandlerResponse,
};
use serde::Serialize;

use crate::{auth::AuthError, db::DbError, request_context};

/// Every failure a handler or middleware can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed or refused credentials (400/401 with a Bearer challenge).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A valid token without the permission this operation needs.
    #[error("this operation needs the {0} permission")]
    InsufficientScope(&'static str),
    /// The caller's row is deactivated.
    #[error("this user is deactivated")]
    Inactive,
    /// No such user.
    #[error("no user with this id")]
    NotFound,
    /// No such endpoint.
    #[error("no endpoint at this path")]
    NoRoute,
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
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// The body is over the limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The database does not answer.
    #[error("database unavailable")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, never shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A field-level validation failure.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Auth(e) => e.problem_kind(),
            Self::InsufficientScope(_) => ("insufficient-scope", "Insufficient scope"),
            Self::Inactive => ("user-inactive", "User deactivated"),
            Self::NotFound | Self::NoRoute => ("not-found", "Not found"),
            Self::Invalid { .. } => ("invalid-field", "Invalid request field"),
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Self::Unavailable(_) => ("service-unavailable", "Service unavailable"),
            Self::Internal(_) => ("internal", "Internal server error"),
        }
    }
}

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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Auth(e) => e.status_code(),
            Self::InsufficientScope(_) | Self::Inactive => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Invalid { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.kind();
        let detail = match self {
            Self::Unavailable(cause) => {
                log::warn!("database unavailable: {cause}");
                "the database is not answering; try again shortly".to_owned()
            }
            Self::Internal(cause) => {
                log::error!("internal error: {cause}");
                "an unexpected error happened; it has been logged".to_owned()
            }
            Self::Invalid { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("urn:usergate:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            field: match self {
                Self::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
            request_id: request_context::current_request_id(),
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        match self {
            Self::Auth(AuthError::KeysUnavailable) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::Auth(e) => {
                response.insert_header((header::WWW_AUTHENTICATE, e.challenge()));
            }
            Self::InsufficientScope(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    crate::auth::insufficient_scope_challenge(scope),
                ));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => Self::Unavailable(cause),
            DbError::Query(e) if is_connection_error(&e) => Self::Unavailable(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::Query(e).into()
    }
}

/// A query error that means "the server went away", not "the query is wrong".
fn is_connection_error(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::BrokenTransactionManager => true,
        Error::DatabaseError(kind, _) => matches!(
            kind,
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand
        ),
        _ => false,
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Turns an error answer that is not problem+json yet (one made by actix or
/// actix-cors rather than by [`ApiError`]) into one, keeping its status.
pub fn problem_fallback<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    // Deliberate non-error bodies (the readiness report) carry no error: keep them.
    let Some(error) = res.response().error().filter(|_| !is_problem) else {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    };
    let status = res.status();
    let reason = status.canonical_reason().unwrap_or("Error");
    let detail = if status.is_client_error() {
        error.to_string()
    } else {
        reason.to_lowercase()
    };
    let problem = Problem {
        kind: format!(
            "urn:usergate:problem:{}",
            reason.to_lowercase().replace(' ', "-")
        ),
        title: reason,
        status: status.as_u16(),
        detail,
        field: None,
        request_id: request_context::current_request_id(),
    };
    let (req, res) = res.into_parts();
    let mut replacement = HttpResponse::build(status);
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement.append_header((name.clone(), value.clone()));
        }
    }
    let replacement = replacement
        .content_type("application/problem+json")
        .body(serde_json::to_string(&problem).unwrap_or_default());
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, replacement).map_into_right_body(),
    ))
}
