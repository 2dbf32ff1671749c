//! Checks an access token: cheap checks first, then the key, the signature and the claims.

use std::{collections::HashMap, str::FromStr, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};

use super::{
    AuthError, TokenError,
    cache::TokenCache,
    claims::{AccessClaims, Principal, unix_now},
    issuers::Issuers,
    jwks::KeyStore,
    key_set::KeySet,
    token::{JoseHeader, MAX_TOKEN_BYTES, UnverifiedToken},
};
use crate::config::{AuthSettings, PermissionsFrom};

/// `typ` values (lowercase, without `application/`) of JWTs that are never
/// access tokens: DPoP proofs (RFC 9449), ID tokens (as some IdPs label
/// them), logout tokens (OIDC Back-Channel Logout), security event tokens
/// (RFC 8417), JWT-secured authorization requests (RFC 9101), introspection
/// answers (RFC 9701), SD-JWT key binding (RFC 9901) and client assertions
/// (RFC 7523 profiles).
pub const NOT_ACCESS_TOKEN_TYPES: &[&str] = &[
    "dpop+jwt",
    "id_token",
    "id_token+jwt",
    "id+jwt",
    "logout+jwt",
    "secevent+jwt",
    "oauth-authz-req+jwt",
    "token-introspection+jwt",
    "kb+jwt",
    "client-authentication+jwt",
];

/// The largest clock skew allowed (`AUTH_LEEWAY_SECS` is bounded to it).
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Verifies access tokens; cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    leeway: i64,
    /// Only `typ` `at+jwt` is accepted (`AUTH_REQUIRE_AT_JWT`).
    require_at_jwt: bool,
    permissions_from: PermissionsFrom,
    /// One ready validation per allowed algorithm.
    validations: HashMap<Algorithm, Validation>,
    /// How long a request waits for a refresh caused by an unknown `kid`.
    refresh_wait: Duration,
    issuers: Issuers,
    cache: TokenCache,
}

impl Verifier {
    /// A verifier for `settings`, reading each issuer's keys from `issuers`.
    pub fn new(settings: &AuthSettings, issuers: Issuers, cache: TokenCache) -> Self {
        // Configuration bounds it already; settings built in code must not
        // make `jsonwebtoken`'s `now - leeway` wrap either.
        let leeway = settings.leeway_secs.min(MAX_LEEWAY_SECS);
        let validations = settings
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.set_issuer(&settings.issuers);
                v.set_audience(&settings.audiences);
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.leeway = leeway;
                v.validate_nbf = true;
                (*alg, v)
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                leeway: i64::try_from(leeway).unwrap_or(0),
                require_at_jwt: settings.require_at_jwt,
                permissions_from: settings.permissions_from,
                validations,
                refresh_wait: settings.jwks_timeout + Duration::from_millis(500),
                issuers,
                cache,
            }),
        }
    }

    /// Forgets the verified tokens of `sub` (its user was deleted).
    pub fn forget_subject(&self, sub: &str) {
        self.inner.cache.forget_subject(sub);
    }

    /// The trusted issuers and their key stores (for readiness and metrics).
    pub fn issuers(&self) -> &Issuers {
        &self.inner.issuers
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
        let unverified = UnverifiedToken::parse(token)?;
        let (principal, store, keys) = self.verify_with_keys(token, &unverified).await?;
        let principal = Arc::new(principal);
        // A key set published meanwhile may have replaced the key (and
        // cleared the cache): then this result is not remembered.
        if store.current().is_some_and(|now| Arc::ptr_eq(&now, &keys)) {
            self.inner.cache.insert(cache_key, principal.clone());
        }
        Ok(principal)
    }

    /// Verifies a token already parsed into `unverified`, bypassing the cache.
    pub async fn verify_parsed(
        &self,
        token: &str,
        unverified: &UnverifiedToken,
    ) -> Result<Principal, AuthError> {
        self.verify_with_keys(token, unverified)
            .await
            .map(|(principal, _, _)| principal)
    }

    /// Verifies, and says with which key set.
    async fn verify_with_keys(
        &self,
        token: &str,
        unverified: &UnverifiedToken,
    ) -> Result<(Principal, &KeyStore, Arc<KeySet>), AuthError> {
        let (alg, kid) = self.check_header(&unverified.header)?;
        // A string, and one of ours: only a token that could be ours may
        // make that issuer's actor call it (the verified claims are checked
        // again below, and only this issuer's keys can verify it).
        let store = self
            .inner
            .issuers
            .get(unverified.issuer()?)
            .ok_or(TokenError::Issuer)?;
        // RFC 8725 §3.11: an ID token is not an access token, even when
        // its audience happens to be this API.
        if unverified.claim("nonce")?.is_some() {
            return Err(TokenError::Nonce.into());
        }

        let mut keys = store.current();
        if keys.as_ref().is_none_or(|k| k.get(&kid).is_none()) {
            store.refresh(self.inner.refresh_wait).await;
            keys = store.current();
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
        // `as` saturates (and makes NaN 0): no claim value can overflow here.
        if data
            .claims
            .iat
            .is_some_and(|iat| iat as i64 > unix_now().saturating_add(self.inner.leeway))
        {
            return Err(TokenError::NotYetValid.into());
        }
        let principal = Principal::from_claims(data.claims, self.inner.permissions_from)?;
        Ok((principal, store, keys))
    }

    /// Allowed algorithm and a well-formed `kid`, without touching any key.
    pub fn check_header(&self, header: &JoseHeader) -> Result<(Algorithm, String), TokenError> {
        if header.crit.is_some() {
            return Err(TokenError::NotJwt);
        }
        let alg = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|alg| self.inner.validations.contains_key(alg))
            .ok_or(TokenError::Algorithm)?;
        let kid = header
            .kid
            .clone()
            .filter(|kid| {
                !kid.is_empty() && kid.len() <= 256 && kid.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or(TokenError::MissingKid)?;
        self.check_typ(header.typ.as_deref())?;
        Ok((alg, kid))
    }

    /// RFC 9068 §2.1 / RFC 8725 §3.11: a JWT typed as something else is
    /// never an access token; with `AUTH_REQUIRE_AT_JWT` only `at+jwt` is.
    fn check_typ(&self, typ: Option<&str>) -> Result<(), TokenError> {
        let Some(typ) = typ else {
            return if self.inner.require_at_jwt {
                Err(TokenError::NotAtJwt)
            } else {
                Ok(())
            };
        };
        // Media type names are case-insensitive (RFC 7515 §4.1.9).
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        if bare.eq_ignore_ascii_case("at+jwt") {
            return Ok(());
        }
        if NOT_ACCESS_TOKEN_TYPES
            .iter()
            .any(|t| bare.eq_ignore_ascii_case(t))
        {
            return Err(TokenError::NotAccessToken);
        }
        if self.inner.require_at_jwt {
            return Err(TokenError::NotAtJwt);
        }
        Ok(())
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
