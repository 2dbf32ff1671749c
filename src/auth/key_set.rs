//! The keys usergate trusts, by `kid`, read from a JWKS document; and the
//! one download function every fetch uses.

use std::{collections::HashMap, time::Instant};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};
use url::Url;

use crate::config::AuthSettings;

/// Why no key set could be had from the identity provider.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The request did not complete.
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    /// The IdP answered, but not 200.
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    /// The body is too large to be a key set.
    #[error("body over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The body is not a JWKS document.
    #[error("not a JWKS document")]
    NotJwks(#[source] serde_json::Error),
    /// A JWKS, but without a key usergate may verify with.
    #[error("the JWKS holds no usable signing key for the allowed algorithms")]
    NoUsableKey,
}

/// A key set larger than this is garbage, not keys.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// RSA keys shorter than this are refused (bytes of modulus).
const MIN_RSA_MODULUS_BYTES: usize = 2048 / 8;

/// A verification key and the algorithms it may be used with.
pub struct TrustedKey {
    /// The public key.
    pub key: DecodingKey,
    /// The JWK's own `alg`, or every allowed algorithm of its type.
    pub algorithms: Vec<Algorithm>,
}

/// The keys usergate currently trusts, by `kid`.
pub struct KeySet {
    keys: HashMap<String, TrustedKey>,
    /// When this set was fetched.
    pub loaded_at: Instant,
}

impl KeySet {
    /// Keeps the signing keys of `jwks` that fit the allow-list; skips the rest.
    pub fn from_jwks_json(body: &[u8], allowed: &[Algorithm]) -> Result<Self, JwksError> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(body).map_err(JwksError::NotJwks)?;
        let keys: HashMap<_, _> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| trusted_key(&jwk, allowed))
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(Self {
            keys,
            loaded_at: Instant::now(),
        })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never true for a published set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(super) fn lost_keys_of(&self, old: &KeySet) -> bool {
        old.keys.keys().any(|kid| !self.keys.contains_key(kid))
    }
}

fn trusted_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<(String, TrustedKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus_len = base64_len(&rsa.n);
            if modulus_len < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ]
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        // Symmetric and other keys never verify tokens here.
        _ => return None,
    };
    let mut algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if let Some(declared) = jwk.common.key_algorithm {
        let declared = Algorithm::try_from(declared).ok()?;
        algorithms.retain(|a| *a == declared);
    }
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, TrustedKey { key, algorithms }))
}

/// Decoded length of unpadded base64url text.
fn base64_len(b64: &str) -> usize {
    b64.trim_end_matches('=').len() * 3 / 4
}

/// The JWKS client every fetch uses: its time limit, no redirects.
pub fn http_client(settings: &AuthSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(settings.jwks_timeout)
        .connect_timeout(settings.jwks_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("usergate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One GET of the JWKS document, refusing bodies over [`MAX_JWKS_BYTES`].
pub async fn download(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, JwksError> {
    let failed = |e: reqwest::Error| JwksError::Request(e.without_url());
    let mut response = client.get(url.clone()).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(JwksError::Status(response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Downloads and parses the configured key set once.
pub async fn fetch(client: &reqwest::Client, settings: &AuthSettings) -> Result<KeySet, JwksError> {
    let body = download(client, &settings.jwks_url).await?;
    KeySet::from_jwks_json(&body, &settings.algorithms)
}
