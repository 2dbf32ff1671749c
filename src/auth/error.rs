//! Why a request was not authenticated or authorized, and how it is answered.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
};

use super::challenge::Challenge;
use crate::http::{Problem, public_base_url};

/// An authentication or authorization failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or another scheme than Bearer.
    #[error("this endpoint needs a bearer token in the Authorization header")]
    Missing,
    /// The header is there but not a usable `Bearer <token>`.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// A token was sent and refused.
    #[error("invalid token: {0}")]
    Invalid(#[from] TokenError),
    /// No key set has been loaded yet, so no token can be checked.
    #[error("the signing keys of the identity provider are not loaded yet; try again shortly")]
    KeysUnavailable,
    /// A valid token without the permission this operation needs.
    #[error("this operation needs the {0} permission")]
    InsufficientScope(&'static str),
}

/// Why a token was refused; the message is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Over the size limit; not parsed at all.
    #[error("the token is too large")]
    TooLarge,
    /// Not three base64url segments with a JSON header.
    #[error("the token is not a JWT")]
    NotJwt,
    /// A JWE or other opaque token, as Auth0 issues when no audience was requested.
    #[error(
        "the token is opaque (encrypted or not a JWT); request an access token for this API's audience"
    )]
    Opaque,
    /// `alg` is `none`, HS*, or not in the allow-list.
    #[error("the token's algorithm is not allowed")]
    Algorithm,
    /// A header parameter of the wrong type; says which.
    #[error("the token header is malformed: {0}")]
    Header(&'static str),
    /// No `kid` in the header, or an unusable one.
    #[error("the token has no usable key id")]
    MissingKid,
    /// No trusted key with this `kid`, even after a refresh.
    #[error("the token's signing key is unknown")]
    UnknownKid,
    /// `iss` is not one of the configured issuers.
    #[error("the token has the wrong issuer")]
    Issuer,
    /// `typ` says the JWT is something else than an access token.
    #[error("the token's typ says it is not an access token")]
    NotAccessToken,
    /// `AUTH_REQUIRE_AT_JWT` is on and `typ` is not `at+jwt`.
    #[error("the token's typ is not at+jwt (only RFC 9068 access tokens are accepted)")]
    NotAtJwt,
    /// A `nonce` claim: an ID token, not an access token.
    #[error("the token carries a nonce: it is an ID token, not an access token")]
    Nonce,
    /// `aud` names none of the configured audiences.
    #[error("the token is not meant for this API (wrong audience)")]
    Audience,
    /// `exp` is past, beyond the leeway.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future, beyond the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or has the wrong type.
    #[error("the token lacks a valid {0} claim")]
    Claim(&'static str),
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    Signature,
}

impl TokenError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotJwt => "not_jwt",
            Self::Opaque => "opaque",
            Self::Algorithm => "algorithm",
            Self::Header(_) | Self::MissingKid => "malformed",
            Self::UnknownKid => "unknown_kid",
            Self::Issuer => "issuer",
            Self::NotAccessToken | Self::NotAtJwt => "typ",
            Self::Nonce => "nonce",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Claim(_) => "claims",
            Self::Signature => "signature",
        }
    }
}

impl AuthError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::Invalid(e) => e.reason(),
            Self::KeysUnavailable => "keys_unavailable",
            Self::InsufficientScope(_) => "insufficient_scope",
        }
    }

    /// 401; 400 for a malformed request; 403 for a missing permission; 503
    /// while no keys are loaded.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(_) => StatusCode::UNAUTHORIZED,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn problem_kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Missing => ("missing-credentials", "Authentication required"),
            Self::Malformed(_) => ("invalid-request", "Malformed credentials"),
            Self::Invalid(_) => ("invalid-token", "Invalid token"),
            Self::KeysUnavailable => ("keys-unavailable", "Signing keys unavailable"),
            Self::InsufficientScope(_) => ("insufficient-scope", "Insufficient scope"),
        }
    }

    /// The challenge of this failure, if it has one (a 503 has none).
    pub fn challenge(&self) -> Option<Challenge> {
        Some(match self {
            Self::Missing => Challenge::bearer(),
            Self::Malformed(why) => Challenge::bearer()
                .param("error", "invalid_request")
                .param("error_description", why),
            Self::Invalid(e) => Challenge::bearer()
                .param("error", "invalid_token")
                .param("error_description", &e.to_string()),
            Self::InsufficientScope(scope) => Challenge::bare_bearer()
                .param("error", "insufficient_scope")
                .param("scope", scope)
                .param("error_description", &self.to_string()),
            Self::KeysUnavailable => return None,
        })
    }

    /// The answer to `req`: counted by reason, its challenge pointing at the
    /// resource metadata of the URL the client used.
    pub fn reject(self, req: &HttpRequest) -> Rejection {
        metrics::counter!("usergate_auth_failures_total", "reason" => self.reason()).increment(1);
        let challenge = self
            .challenge()
            .map(|c| c.resource_metadata(&public_base_url(req)).finish());
        Rejection {
            error: self,
            challenge,
        }
    }
}

/// An [`AuthError`] as answered to one request.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    /// What failed.
    pub error: AuthError,
    /// The complete `WWW-Authenticate` value, if the failure has one.
    pub challenge: Option<String>,
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let (slug, title) = self.error.problem_kind();
        Problem::new(self.status_code(), slug, title, self.error.to_string()).respond(|response| {
            if let Some(challenge) = &self.challenge {
                response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
            }
            if self.error == AuthError::KeysUnavailable {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_challenge() {
        let challenge = |e: AuthError| e.challenge().map(Challenge::finish);
        assert_eq!(
            challenge(AuthError::Missing).as_deref(),
            Some(r#"Bearer realm="usergate""#)
        );
        assert_eq!(
            challenge(AuthError::Invalid(TokenError::Expired)).as_deref(),
            Some(
                r#"Bearer realm="usergate", error="invalid_token", error_description="the token has expired""#
            )
        );
        assert_eq!(
            challenge(AuthError::InsufficientScope("read:users")).as_deref(),
            Some(
                r#"Bearer error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
            )
        );
        assert_eq!(challenge(AuthError::KeysUnavailable), None);
    }
}
