//! Why a request was not authenticated or authorized, and how it is answered.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};

use super::{
    challenge::Challenge,
    dpop::{ALGS, DpopError, DpopMode},
};
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
    /// A DPoP proof missing, invalid, replayed or for another request.
    #[error("invalid DPoP proof: {0}")]
    Proof(#[from] DpopError),
    /// The shared store of used proofs cannot be reached: nothing is accepted.
    #[error("DPoP proofs cannot be checked for replay right now; try again shortly")]
    ReplayStoreDown,
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
    /// A token bound with `cnf` sent as Bearer (RFC 9449 §7.2), or any
    /// bound token while DPoP is disabled.
    #[error("DPoP-bound token sent as Bearer")]
    BoundAsBearer,
    /// A Bearer token while `DPOP_MODE=required`.
    #[error("this API accepts DPoP-bound tokens only, sent with the DPoP scheme")]
    DpopRequired,
    /// A token without `cnf.jkt` sent with the DPoP scheme.
    #[error("the token is not DPoP-bound (no cnf.jkt) but was sent with the DPoP scheme")]
    NotBound,
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
            Self::BoundAsBearer => "dpop_bound_as_bearer",
            Self::DpopRequired => "dpop_required",
            Self::NotBound => "dpop_unbound",
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
            Self::Proof(e) => e.reason(),
            Self::ReplayStoreDown => "dpop_replay_store",
        }
    }

    /// 401; 400 for a malformed request; 403 for a missing permission; 503
    /// while no keys are loaded.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(_) | Self::Proof(_) => StatusCode::UNAUTHORIZED,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::KeysUnavailable | Self::ReplayStoreDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn problem_kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Missing => ("missing-credentials", "Authentication required"),
            Self::Malformed(_) => ("invalid-request", "Malformed credentials"),
            Self::Invalid(_) => ("invalid-token", "Invalid token"),
            Self::KeysUnavailable => ("keys-unavailable", "Signing keys unavailable"),
            Self::InsufficientScope(_) => ("insufficient-scope", "Insufficient scope"),
            Self::Proof(_) => ("invalid-dpop-proof", "Invalid DPoP proof"),
            Self::ReplayStoreDown => (
                "dpop-replay-store-unavailable",
                "DPoP replay store unavailable",
            ),
        }
    }

    /// The `error` and other parameters of this failure's challenge; `None`
    /// for a 503, which has no challenge.
    fn challenge_params(&self) -> Option<Vec<(&'static str, String)>> {
        let described = |error: &'static str, why: String| {
            vec![("error", error.to_owned()), ("error_description", why)]
        };
        Some(match self {
            Self::Missing => Vec::new(),
            Self::Malformed(why) => described("invalid_request", (*why).to_owned()),
            Self::Invalid(e) => described("invalid_token", e.to_string()),
            Self::Proof(e) => described("invalid_dpop_proof", e.to_string()),
            Self::InsufficientScope(scope) => vec![
                ("error", "insufficient_scope".to_owned()),
                ("scope", (*scope).to_owned()),
                ("error_description", self.to_string()),
            ],
            Self::KeysUnavailable | Self::ReplayStoreDown => return None,
        })
    }

    /// The challenges of this failure under `mode`, pointing at the resource
    /// metadata under `base_url`: the one carrying the error first, then the
    /// other scheme's (DPoP beside Bearer unless disabled, alone when required).
    pub fn challenge(&self, mode: DpopMode, base_url: &str) -> Option<Challenge> {
        let params = self.challenge_params()?;
        let dpop_first = mode == DpopMode::Required || matches!(self, Self::Proof(_));
        let mut challenge = if dpop_first {
            let (error, rest) = match params.split_first() {
                Some((("error", error), rest)) => (Some(error), rest),
                _ => (None, &params[..]),
            };
            let start = match error {
                Some(error) => Challenge::bare_dpop().param("error", error),
                None => Challenge::bare_dpop(),
            };
            rest.iter()
                .fold(start.param("algs", ALGS), |c, (k, v)| c.param(k, v))
        } else {
            let start = match self {
                Self::InsufficientScope(_) => Challenge::bare_bearer(),
                _ => Challenge::bearer(),
            };
            params.iter().fold(start, |c, (k, v)| c.param(k, v))
        };
        challenge = challenge.resource_metadata(base_url);
        Some(match (mode, dpop_first) {
            (DpopMode::Allowed, true) => challenge.and(Challenge::bearer()),
            (DpopMode::Allowed, false) => challenge.and(Challenge::dpop(ALGS)),
            _ => challenge,
        })
    }

    /// The answer to `req`: counted by reason, its challenges (as the app's
    /// `DPOP_MODE` lists them) pointing at the resource metadata of the URL
    /// the client used.
    pub fn reject(self, req: &HttpRequest) -> Rejection {
        metrics::counter!("usergate_auth_failures_total", "reason" => self.reason()).increment(1);
        let mode = req
            .app_data::<web::Data<DpopMode>>()
            .map_or(DpopMode::Disabled, |mode| *mode.get_ref());
        let challenge = self
            .challenge(mode, &public_base_url(req))
            .map(Challenge::finish);
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
            if matches!(
                self.error,
                AuthError::KeysUnavailable | AuthError::ReplayStoreDown
            ) {
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
        let challenge = |e: AuthError, mode| e.challenge(mode, "http://h").map(Challenge::finish);
        let meta = r#"resource_metadata="http://h/.well-known/oauth-protected-resource""#;
        assert_eq!(
            challenge(AuthError::Missing, DpopMode::Disabled),
            Some(format!(r#"Bearer realm="usergate", {meta}"#))
        );
        assert_eq!(
            challenge(AuthError::Invalid(TokenError::Expired), DpopMode::Allowed),
            Some(format!(
                r#"Bearer realm="usergate", error="invalid_token", error_description="the token has expired", {meta}, DPoP algs="{ALGS}""#
            ))
        );
        assert_eq!(
            challenge(
                AuthError::InsufficientScope("read:users"),
                DpopMode::Disabled
            ),
            Some(format!(
                r#"Bearer error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission", {meta}"#
            ))
        );
        assert_eq!(
            challenge(AuthError::Proof(DpopError::Replayed), DpopMode::Allowed),
            Some(format!(
                r#"DPoP error="invalid_dpop_proof", algs="{ALGS}", error_description="the DPoP proof was already used", {meta}, Bearer realm="usergate""#
            ))
        );
        assert_eq!(
            challenge(AuthError::Missing, DpopMode::Required),
            Some(format!(r#"DPoP algs="{ALGS}", {meta}"#))
        );
        assert_eq!(
            challenge(AuthError::KeysUnavailable, DpopMode::Allowed),
            None
        );
        assert_eq!(
            challenge(AuthError::ReplayStoreDown, DpopMode::Allowed),
            None
        );
    }
}
