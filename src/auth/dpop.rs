//! DPoP proofs (RFC 9449 §4.3): the proof a client sends with a
//! sender-constrained token, checked on every request, and remembered once.

use std::{str::FromStr, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk},
};
use serde_json::{Map, Value};
use url::Url;

use super::{
    AuthError,
    claims::unix_now,
    key_set::{modulus_bits, thumbprint},
    replay::ReplayStore,
};

/// The proof algorithms accepted: asymmetric only, RSA keys of 2048 bits or more.
pub const PROOF_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
];

/// [`PROOF_ALGORITHMS`] as the challenges' `algs` parameter lists them.
pub const ALGS: &str = "ES256 ES384 RS256 PS256";

/// The members of a private (or symmetric) JWK: a proof carrying one is refused.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// `DPOP_MODE`: whether sender-constrained tokens are accepted, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// Bearer and DPoP both work; a bound token must come with a proof.
    Allowed,
    /// Only DPoP: Bearer is refused.
    Required,
    /// The DPoP scheme is not accepted; bound tokens are refused.
    Disabled,
}

/// A `DPOP_MODE` value that names no mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be allowed, required or disabled (got {0:?})")]
pub struct UnknownDpopMode(String);

impl FromStr for DpopMode {
    type Err = UnknownDpopMode;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "allowed" => Ok(Self::Allowed),
            "required" => Ok(Self::Required),
            "disabled" => Ok(Self::Disabled),
            _ => Err(UnknownDpopMode(value.to_owned())),
        }
    }
}

/// Why a proof was refused; the message is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Not a usable proof: no header, two, not a JWS, wrong `typ`, a claim missing.
    #[error("the DPoP proof is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is symmetric, `none`, or not in [`PROOF_ALGORITHMS`] for its key.
    #[error("the DPoP proof's algorithm is not allowed (allowed: {ALGS})")]
    Algorithm,
    /// The `jwk` header holds a private or symmetric key.
    #[error("the DPoP proof's jwk must be a public key")]
    PrivateKey,
    /// The signature does not verify with the proof's own `jwk`.
    #[error("the DPoP proof's signature is invalid")]
    Signature,
    /// `htm` is not this request's method.
    #[error("the DPoP proof is for another HTTP method")]
    Method,
    /// `htu` is not this request's URL.
    #[error("the DPoP proof is for another URL")]
    Url,
    /// `iat` is older than the max age, or ahead beyond the leeway.
    #[error("the DPoP proof is too old or not yet valid")]
    Age,
    /// `ath` is not the hash of the access token sent.
    #[error("the DPoP proof is for another access token (ath)")]
    TokenHash,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`).
    #[error("the DPoP proof is signed by another key than the token is bound to")]
    Key,
    /// This proof's `jti` was accepted before.
    #[error("the DPoP proof was already used")]
    Replayed,
}

impl DpopError {
    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "dpop_malformed",
            Self::Algorithm => "dpop_algorithm",
            Self::PrivateKey => "dpop_private_key",
            Self::Signature => "dpop_signature",
            Self::Method => "dpop_htm",
            Self::Url => "dpop_htu",
            Self::Age => "dpop_age",
            Self::TokenHash => "dpop_ath",
            Self::Key => "dpop_jkt",
            Self::Replayed => "dpop_replay",
        }
    }
}

/// The request a proof must be for.
pub struct ProofTarget<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request URL without query and fragment, as the client sees it.
    pub url: &'a str,
    /// The access token sent beside the proof.
    pub token: &'a str,
    /// The token's `cnf.jkt`.
    pub jkt: &'a str,
}

/// Checks proofs and remembers their `jti`s; cheap to clone.
#[derive(Clone)]
pub struct Dpop {
    inner: Arc<Inner>,
}

struct Inner {
    mode: DpopMode,
    max_age: i64,
    leeway: i64,
    store: Arc<dyn ReplayStore>,
}

impl Dpop {
    /// Proofs up to `max_age` old (and `leeway` ahead), remembered in `store`.
    pub fn new(
        mode: DpopMode,
        max_age: Duration,
        leeway: Duration,
        store: Arc<dyn ReplayStore>,
    ) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            inner: Arc::new(Inner {
                mode,
                max_age: secs(max_age),
                leeway: secs(leeway),
                store,
            }),
        }
    }

    /// `DPOP_MODE`.
    pub fn mode(&self) -> DpopMode {
        self.inner.mode
    }

    /// Checks `proof` for `target`, then records it: accepted once only.
    pub async fn check(&self, proof: &str, target: &ProofTarget<'_>) -> Result<(), AuthError> {
        let jti = self.verify(proof, target, unix_now())?;
        let key = replay_key(target.jkt, &jti.id);
        // The last second it can be accepted in (`iat` and now are whole
        // seconds), plus the leeway: a replica whose clock runs behind by up
        // to the leeway must still find it.
        let expires_at = jti
            .iat
            .saturating_add(self.inner.max_age)
            .saturating_add(self.inner.leeway);
        match self.inner.store.first_use(key, expires_at).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::Proof(DpopError::Replayed)),
            Err(_) => Err(AuthError::ReplayStoreDown),
        }
    }

    /// Every check but replay; returns the proof's `jti` and `iat`.
    fn verify(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
        now: i64,
    ) -> Result<ProofId, DpopError> {
        let (alg, jwk) = proof_key(proof)?;
        // Before the signature: only the bound key is worth any RSA work.
        if thumbprint(&jwk).as_deref() != Some(target.jkt) {
            return Err(DpopError::Key);
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| DpopError::Malformed("unusable jwk"))?;
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::Base64(_) => DpopError::Signature,
                ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    DpopError::Malformed("the claims are not a JSON object")
                }
                _ => DpopError::Malformed("unusable proof"),
            })?
            .claims;
        let text = |name: &'static str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or(DpopError::Malformed(name))
        };
        let id = text("jti")?;
        if id.is_empty() || id.len() > MAX_JTI_LEN {
            return Err(DpopError::Malformed("jti"));
        }
        if text("htm")? != target.method {
            return Err(DpopError::Method);
        }
        if !same_url(text("htu")?, target.url) {
            return Err(DpopError::Url);
        }
        // `as` saturates: no claim value can overflow here.
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or(DpopError::Malformed("iat"))? as i64;
        if iat < now.saturating_sub(self.inner.max_age)
            || iat > now.saturating_add(self.inner.leeway)
        {
            return Err(DpopError::Age);
        }
        if text("ath").map_err(|_| DpopError::TokenHash)? != token_hash(target.token) {
            return Err(DpopError::TokenHash);
        }
        Ok(ProofId {
            id: id.to_owned(),
            iat,
        })
    }
}

/// A verified proof's `jti` and `iat`.
pub struct ProofId {
    id: String,
    iat: i64,
}

/// The proof's algorithm and public key, from its header; nothing trusted yet.
fn proof_key(proof: &str) -> Result<(Algorithm, Jwk), DpopError> {
    let mut parts = proof.split('.');
    let header = parts.next().unwrap_or_default();
    if parts.count() != 2 {
        return Err(DpopError::Malformed("not a compact JWS"));
    }
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(DpopError::Malformed("the header is not JSON"))?;
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(DpopError::Malformed("typ must be dpop+jwt"));
    }
    if header.contains_key("crit") {
        return Err(DpopError::Malformed("crit is not understood"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|alg| Algorithm::from_str(alg).ok())
        .filter(|alg| PROOF_ALGORITHMS.contains(alg))
        .ok_or(DpopError::Algorithm)?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::Malformed("no jwk header"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::PrivateKey);
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|_| DpopError::Malformed("jwk is not a JSON Web Key"))?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(rsa), Algorithm::RS256 | Algorithm::PS256) => {
            modulus_bits(&rsa.n).is_some_and(|bits| bits >= 2048)
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        _ => false,
    };
    if !fits {
        return Err(DpopError::Algorithm);
    }
    Ok((alg, jwk))
}

/// `htu` and the request URL name the same resource, query and fragment aside.
fn same_url(htu: &str, expected: &str) -> bool {
    match (Url::parse(htu), Url::parse(expected)) {
        (Ok(mut htu), Ok(expected)) => {
            htu.set_query(None);
            htu.set_fragment(None);
            htu == expected
        }
        _ => false,
    }
}

/// `ath`: base64url(SHA-256(token)).
pub fn token_hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What a proof is remembered under: its key and `jti`, hashed to a fixed size.
fn replay_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(jkt.as_bytes());
    context.update(b"\0");
    context.update(jti.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenges_algs_are_the_accepted_algorithms() {
        let names: Vec<String> = PROOF_ALGORITHMS.iter().map(|a| format!("{a:?}")).collect();
        assert_eq!(ALGS, names.join(" "));
    }

    #[test]
    fn modes_parse_case_insensitively_and_nothing_else() {
        assert_eq!("Required".parse(), Ok(DpopMode::Required));
        assert_eq!("allowed".parse(), Ok(DpopMode::Allowed));
        assert_eq!("disabled".parse(), Ok(DpopMode::Disabled));
        assert!("on".parse::<DpopMode>().is_err());
    }

    #[test]
    fn htu_ignores_query_and_fragment_only() {
        let url = "http://127.0.0.1:8000/users/me";
        assert!(same_url("http://127.0.0.1:8000/users/me?x=1#f", url));
        assert!(same_url("HTTP://127.0.0.1:8000/users/me", url));
        assert!(!same_url("http://127.0.0.1:8000/users", url));
        assert!(!same_url("https://127.0.0.1:8000/users/me", url));
        assert!(!same_url("not a url", url));
    }
}
