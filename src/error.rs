//! The app's error: the one place failures become HTTP answers.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};

use crate::{
    auth::Rejection,
    db::DbError,
    http::{Problem, RequestError},
    report::Chain,
};

/// Every failure a handler or middleware can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed or refused credentials, or a missing permission.
    #[error(transparent)]
    Auth(#[from] Rejection),
    /// The request is unusable as sent (a field, the body, the query).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The caller's row is deactivated.
    #[error("this user is deactivated")]
    Inactive,
    /// The caller's subject was deleted by an admin.
    #[error("this user was deleted")]
    Deleted,
    /// A machine client (client-credentials token) asked for its own user.
    #[error("machine clients (client-credentials tokens) have no user")]
    MachineClient,
    /// No such user.
    #[error("no user with this id")]
    NotFound,
    /// No such endpoint.
    #[error("no endpoint at this path")]
    NoRoute,
    /// The resource already exists.
    #[error("{0}")]
    Conflict(&'static str),
    /// The database does not answer.
    #[error("database unavailable")]
    Unavailable(#[source] DbError),
    /// A bug or an unexpected failure; the cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A field-level validation failure.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        RequestError::invalid(field, detail).into()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e)
        } else {
            Self::Internal(Box::new(e))
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Auth(e) => e.status_code(),
            Self::Request(e) => e.status_code(),
            Self::Inactive | Self::Deleted | Self::MachineClient => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title, detail) = match self {
            Self::Auth(e) => return e.error_response(),
            Self::Request(e) => return e.error_response(),
            Self::Inactive => ("user-inactive", "User deactivated", self.to_string()),
            Self::Deleted => ("user-deleted", "User deleted", self.to_string()),
            Self::MachineClient => ("machine-client", "Machine client", self.to_string()),
            Self::NotFound | Self::NoRoute => ("not-found", "Not found", self.to_string()),
            Self::Conflict(_) => ("conflict", "Conflict", self.to_string()),
            Self::Unavailable(cause) => {
                log::warn!("database unavailable: {}", Chain(cause));
                (
                    "service-unavailable",
                    "Service unavailable",
                    "the database is not answering; try again shortly".to_owned(),
                )
            }
            Self::Internal(cause) => {
                log::error!("internal error: {}", Chain(cause.as_ref()));
                (
                    "internal",
                    "Internal server error",
                    "an unexpected error happened; it has been logged".to_owned(),
                )
            }
        };
        Problem::new(self.status_code(), slug, title, detail).respond(|response| {
            if matches!(self, Self::Unavailable(_)) {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
        })
    }
}
