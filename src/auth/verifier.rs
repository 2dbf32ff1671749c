//! Checks an access token: cheap checks first, then the key, the signature and the claims.

use std::{collections::HashMap, str::FromStr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::Deserialize;

use super::{
    AuthError, TokenError,
    cache::{TokenCache, unix_now},
    claims::{AccessClaims, Principal},
    jwks::KeyStore,
};
use crate::config::AuthSettings;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies access tokens; cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    leeway: i64,
    /// One ready validation per allowed algorithm.
    validations: HashMap<Algorithm, Validation>,
    /// How long a request waits for a refresh caused by an unknown `kid`.
    refresh_wait: Duration,
    keys: KeyStore,
    cache: TokenCache,
}

/// The unverified JOSE header, read only to pick the key.
#[derive(Debug, Deserialize)]
pub struct RawHeader {
    /// The algorithm the token claims.
    pub alg: String,
    /// The key id.
    pub kid: Option<String>,
    /// Content encryption (JWE only).
    pub enc: Option<String>,
    /// Critical extensions; we understand none.
    pub crit: Option<serde_json::Value>,
}

impl RawHeader {
    /// Parses the header of a compact JWS, telling opaque tokens apart.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        let parts = token.split('.');
        let segments = parts.clone().count();
        let header = parts.into_iter().next().unwrap_or_default();
        let decoded = URL_SAFE_NO_PAD.decode(header).ok();
        let parsed: Option<RawHeader> = decoded
            .as_deref()
            .and_then(|h| serde_json::from_slice(h).ok());
        match (segments, parsed) {
            // A JWE (Auth0's opaque tokens are JWEs with "dir"), not a signed JWT.
            (5, _) => Err(TokenError::Opaque),
            (3, Some(h)) if h.enc.is_none() => Ok(h),
            (3, Some(_)) => Err(TokenError::NotJwt),
            (1, None) => Err(TokenError::Opaque),
            _ => Err(TokenError::NotJwt),
        }
    }
}

impl Verifier {
    /// A verifier for `settings`, reading keys from `keys`.
    pub fn new(settings: &AuthSettings, keys: KeyStore, cache: TokenCache) -> Self {
        let validations = settings
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.set_issuer(&[&settings.issuer]);
                v.set_audience(&settings.audiences);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.leeway = settings.leeway_secs;
                v.validate_nbf = true;
                (*alg, v)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                issuer: settings.issuer.clone(),
                leeway: i64::try_from(settings.leeway_secs).unwrap_or(i64::MAX),
                validations,
                refresh_wait: settings.jwks_timeout + Duration::from_millis(500),
                keys,
                cache,
            }),
        }
    }

    /// The key store (for readiness and explain-token).
    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// Verifies `token` and returns its principal. May wait, bounded, for a key
    /// refresh when the token names a key not seen yet.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge.into());
        }
        let cache_key = TokenCache::key(token);
        if let Some(principal) = self.inner.cache.get(&cache_key) {
            return Ok(principal);
        }
        let (alg, kid) = self.check_header(token)?;

        let mut keys = self.inner.keys.current();
        if keys.as_ref().is_none_or(|k| k.get(&kid).is_none()) {
            // Only a token that could be ours may make us call the IdP.
            self.check_unverified_issuer(token)?;
            self.inner.keys.refresh(self.inner.refresh_wait).await;
            keys = self.inner.keys.current();
        }
        let keys = keys.ok_or(AuthError::KeysUnavailable)?;
        let trusted = keys.get(&kid).ok_or(TokenError::UnknownKid)?;
        if !trusted.algorithms.contains(&alg) {
            return Err(TokenError::Algorithm.into());
        }
        let validation = self
            .inner
            .validations
            .get(&alg)
            .ok_or(TokenError::Algorithm)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &trusted.key, validation)
            .map_err(map_jwt_error)?;
        if data
            .claims
            .iat
            .is_some_and(|iat| iat as i64 > unix_now() + self.inner.leeway)
        {
            return Err(TokenError::NotYetValid.into());
        }
        let principal = Arc::new(Principal::from_claims(data.claims)?);
        self.inner.cache.insert(cache_key, principal.clone());
        Ok(principal)
    }

    /// Allowed algorithm and a well-formed `kid`, without touching any key.
    pub fn check_header(&self, token: &str) -> Result<(Algorithm, String), TokenError> {
        let header = RawHeader::parse(token)?;
        if header.crit.is_some() {
            return Err(TokenError::NotJwt);
        }
        let alg = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|alg| self.inner.validations.contains_key(alg))
            .ok_or(TokenError::Algorithm)?;
        let kid = header
            .kid
            .filter(|kid| {
                !kid.is_empty() && kid.len() <= 256 && kid.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or(TokenError::MissingKid)?;
        Ok((alg, kid))
    }

    /// The unverified `iss` must be ours before a key fetch is worth it.
    pub fn check_unverified_issuer(&self, token: &str) -> Result<(), TokenError> {
        #[derive(Deserialize)]
        struct Iss {
            iss: Option<serde_json::Value>,
        }
        let payload = token.split('.').nth(1).ok_or(TokenError::NotJwt)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::NotJwt)?;
        let claims: Iss = serde_json::from_slice(&bytes).map_err(|_| TokenError::NotJwt)?;
        match claims.iss {
            Some(serde_json::Value::String(iss)) if iss == self.inner.issuer => Ok(()),
            Some(_) => Err(TokenError::Issuer),
            None => Err(TokenError::Claim("iss")),
        }
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Claim(match claim.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "nbf" => "nbf",
                "sub" => "sub",
                _ => "registered",
            })
        }
        // The header was parsed before and the payload is only decoded once the
        // signature verifies: bad base64 here is a mangled signature segment
        // (e.g. non-zero trailing bits), not a claim problem.
        ErrorKind::Base64(_) => TokenError::Signature,
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => TokenError::Claim("registered"),
        _ => TokenError::NotJwt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn headers_tell_jws_from_opaque_tokens() {
        let jws = format!("{}.{}.sig", b64(r#"{"alg":"RS256","kid":"k"}"#), b64("{}"));
        assert_eq!(
            RawHeader::parse(&jws).map(|h| h.alg),
            Ok("RS256".to_owned())
        );
        let jwe = format!("{}.x.y.z.w", b64(r#"{"alg":"dir","enc":"A256GCM"}"#));
        assert!(matches!(RawHeader::parse(&jwe), Err(TokenError::Opaque)));
        assert!(matches!(
            RawHeader::parse("Zx4mQf0bYd6c2kP9"),
            Err(TokenError::Opaque)
        ));
        assert!(matches!(RawHeader::parse("a.b.c"), Err(TokenError::NotJwt)));
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(
            RawHeader::parse(&unsigned).map(|h| h.alg),
            Ok("none".to_owned())
        );
    }
}
