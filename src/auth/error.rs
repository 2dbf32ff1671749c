//! Why a request was not authenticated, and its RFC 6750 challenge.

use actix_web::http::StatusCode;

/// The realm named in every challenge.
pub const REALM: &str = "usergate";

/// An authentication failure.
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
    /// No `kid` in the header, or an unusable one.
    #[error("the token has no usable key id")]
    MissingKid,
    /// No trusted key with this `kid`, even after a refresh.
    #[error("the token's signing key is unknown")]
    UnknownKid,
    /// `iss` is not the configured issuer.
    #[error("the token has the wrong issuer")]
    Issuer,
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
            Self::MissingKid => "malformed",
            Self::UnknownKid => "unknown_kid",
            Self::Issuer => "issuer",
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
        }
    }

    /// 401, 400 for a malformed request, 503 while no keys are loaded.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(_) => StatusCode::UNAUTHORIZED,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn problem_kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::Missing => ("missing-credentials", "Authentication required"),
            Self::Malformed(_) => ("invalid-request", "Malformed credentials"),
            Self::Invalid(_) => ("invalid-token", "Invalid token"),
            Self::KeysUnavailable => ("keys-unavailable", "Signing keys unavailable"),
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, parameters comma-separated).
    pub fn challenge(&self) -> String {
        let mut c = Challenge::new();
        match self {
            Self::Missing | Self::KeysUnavailable => {}
            Self::Malformed(why) => {
                c.param("error", "invalid_request");
                c.param("error_description", why);
            }
            Self::Invalid(e) => {
                c.param("error", "invalid_token");
                c.param("error_description", &e.to_string());
            }
        }
        c.finish()
    }
}

/// The challenge of a 403 for a missing permission.
pub fn insufficient_scope_challenge(scope: &str) -> String {
    // As the DESIGN writes it: no realm, the error first, then the scope.
    let mut c = Challenge(String::from("Bearer"));
    c.param("error", "insufficient_scope");
    c.param("scope", scope);
    c.param(
        "error_description",
        &format!("this operation needs the {scope} permission"),
    );
    c.finish()
}

/// Builds `Bearer realm="…", k="v", …` with RFC 7230 quoted-string escaping.
struct Challenge(String);

impl Challenge {
    fn new() -> Self {
        let mut c = Self(String::from("Bearer"));
        c.param("realm", REALM);
        c
    }

    fn param(&mut self, name: &str, value: &str) {
        self.0.push_str(if self.0.len() == "Bearer".len() {
            " "
        } else {
            ", "
        });
        self.0.push_str(name);
        self.0.push_str("=\"");
        for ch in value.chars() {
            // Header values must stay visible ASCII; anything else is dropped.
            match ch {
                '"' | '\\' => {
                    self.0.push('\\');
                    self.0.push(ch);
                }
                ' '..='~' => self.0.push(ch),
                _ => {}
            }
        }
        self.0.push('"');
    }

    /// The header value; the request-context middleware appends
    /// `resource_metadata`, which needs the request's public URL.
    fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_comma_separated_and_escaped() {
        assert_eq!(AuthError::Missing.challenge(), r#"Bearer realm="usergate""#);
        assert_eq!(
            AuthError::Invalid(TokenError::Expired).challenge(),
            r#"Bearer realm="usergate", error="invalid_token", error_description="the token has expired""#
        );
        let mut c = Challenge::new();
        c.param("x", "a\"b\\c\u{7}é");
        assert_eq!(c.0, r#"Bearer realm="usergate", x="a\"b\\c""#);
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        assert_eq!(
            insufficient_scope_challenge("read:users"),
            r#"Bearer error="insufficient_scope", scope="read:users", error_description="this operation needs the read:users permission""#
        );
    }
}
