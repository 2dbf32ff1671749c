//! `usergate explain-token`: why a token would be accepted or refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::Value;

use super::{
    AuthError, TokenCache, TokenError,
    cache::unix_now,
    jwks::{self, KeySet, KeyStore},
    verifier::{MAX_TOKEN_BYTES, RawHeader, Verifier},
};
use crate::config::AuthSettings;

/// The verdict and the lines that explain it.
#[derive(Debug)]
pub struct Explanation {
    /// Whether the server would accept the token.
    pub accepted: bool,
    /// Human-readable findings, in order.
    pub lines: Vec<String>,
}

/// Fetches the configured JWKS once.
pub async fn fetch_key_set(settings: &AuthSettings) -> Result<KeySet, String> {
    let client = jwks::http_client(settings).map_err(|e| e.to_string())?;
    let body = jwks::download(&client, &settings.jwks_url).await?;
    KeySet::from_jwks_json(&body, &settings.algorithms)
}

/// Explains `token` against `settings`, trusting `keys` (or saying why there are none).
pub async fn explain(
    token: &str,
    settings: &AuthSettings,
    keys: Result<KeySet, String>,
) -> Explanation {
    let mut lines = Vec::new();
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    let refuse = |mut lines: Vec<String>, why: String| {
        lines.push(format!("REFUSED: {why}"));
        Explanation {
            accepted: false,
            lines,
        }
    };
    if token.is_empty() {
        return refuse(lines, "no token given".into());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return refuse(
            lines,
            format!(
                "the token is {} bytes, over the {MAX_TOKEN_BYTES}-byte limit",
                token.len()
            ),
        );
    }
    match RawHeader::parse(token) {
        Err(TokenError::Opaque) => {
            return refuse(
                lines,
                format!(
                    "this is an opaque access token, not a JWT. Auth0 issues those when the login did not ask \
                     for an audience: add audience={} to the /authorize (or token) request",
                    settings.audiences.join(" or ")
                ),
            );
        }
        Err(_) => {
            return refuse(
                lines,
                "this is not a JWT (expected three base64url parts with a JSON header)".into(),
            );
        }
        Ok(header) => lines.push(format!(
            "header: alg={} kid={}",
            header.alg,
            header.kid.as_deref().unwrap_or("(none)")
        )),
    }
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or(Value::Null);
    describe_claims(&payload, &mut lines);
    let audience_matches = audiences(&payload)
        .iter()
        .any(|a| settings.audiences.contains(a));
    let looks_like_id_token = payload.get("nonce").is_some()
        || payload.get("at_hash").is_some()
        || (!audience_matches && payload.get("scope").is_none() && payload.get("email").is_some());
    if looks_like_id_token && !audience_matches {
        return refuse(
            lines,
            format!(
                "this looks like an ID token (audience is the application's client id, not the API; it carries \
                 nonce/at_hash or profile claims). Send the access token, requested with audience={}",
                settings.audiences.join(" or ")
            ),
        );
    }

    let keys = match keys {
        Ok(keys) => keys,
        Err(e) => {
            return refuse(
                lines,
                format!(
                    "the signing keys could not be loaded from {}: {e}",
                    settings.jwks_url
                ),
            );
        }
    };
    let verifier = Verifier::new(settings, KeyStore::fixed(keys), TokenCache::disabled());
    match verifier.verify(token).await {
        Ok(principal) => {
            lines.push(format!(
                "ACCEPTED: subject {} with permissions [{}]",
                principal.sub,
                principal.permissions.join(", ")
            ));
            Explanation {
                accepted: true,
                lines,
            }
        }
        Err(e) => {
            let why = match &e {
                AuthError::Invalid(TokenError::Audience) => format!(
                    "wrong audience: the token is for {:?}, this API accepts {:?}",
                    audiences(&payload),
                    settings.audiences
                ),
                AuthError::Invalid(TokenError::Issuer) => format!(
                    "wrong issuer: the token says {}, this API trusts {} (exactly, with the trailing slash)",
                    payload.get("iss").unwrap_or(&Value::Null),
                    settings.issuer
                ),
                AuthError::Invalid(TokenError::Algorithm) => format!(
                    "the algorithm is not allowed: allowed are {:?} (none and HS* never are)",
                    settings.algorithms
                ),
                AuthError::Invalid(TokenError::UnknownKid) => {
                    "the token's kid is not in the tenant's JWKS: it was signed by another tenant or a rotated-out key".into()
                }
                AuthError::Invalid(TokenError::Expired) => format!(
                    "expired (beyond the {}s leeway)",
                    settings.leeway_secs
                ),
                other => other.to_string(),
            };
            refuse(lines, why)
        }
    }
}

fn audiences(payload: &Value) -> Vec<String> {
    match payload.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn describe_claims(payload: &Value, lines: &mut Vec<String>) {
    for claim in ["iss", "sub", "aud", "azp", "scope", "permissions"] {
        if let Some(v) = payload.get(claim) {
            lines.push(format!("{claim}: {v}"));
        }
    }
    let now = unix_now();
    for claim in ["iat", "nbf", "exp"] {
        if let Some(t) = payload.get(claim).and_then(Value::as_i64) {
            let delta = t - now;
            let when = if delta >= 0 {
                format!("in {delta}s")
            } else {
                format!("{}s ago", -delta)
            };
            lines.push(format!("{claim}: {t} ({when})"));
        }
    }
}
