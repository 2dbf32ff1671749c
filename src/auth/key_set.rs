//! The keys usergate trusts, by `kid`, read from a JWKS document; and the
//! one download function every fetch uses.

use std::{collections::HashMap, time::Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse, ThumbprintHash},
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
    /// The OpenID discovery document is unusable; says why.
    #[error("{0}")]
    Discovery(&'static str),
    /// The discovery document is another issuer's.
    #[error("the discovery document names issuer {0:?}, not this one")]
    IssuerMismatch(String),
    /// The discovery document's `jwks_uri` is plain HTTP off loopback.
    #[error("the discovery document's jwks_uri must use https (got {0})")]
    InsecureJwksUri(String),
}

/// A key set larger than this is garbage, not keys.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// RSA keys shorter than this are refused (bits of the modulus itself).
const MIN_RSA_MODULUS_BITS: usize = 2048;

/// A verification key and the algorithms it may be used with.
pub struct TrustedKey {
    /// The public key.
    pub key: DecodingKey,
    /// The JWK's own `alg`, or every allowed algorithm of its type.
    pub algorithms: Vec<Algorithm>,
    /// The RFC 7638 thumbprint: what the key is, whatever its `kid` says.
    pub thumbprint: String,
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

    /// Whether a key of `old` is gone or has other material under the same
    /// `kid` here: tokens verified with `old` must then be verified again.
    pub fn replaces_keys_of(&self, old: &KeySet) -> bool {
        old.keys.iter().any(|(kid, key)| {
            self.keys
                .get(kid)
                .is_none_or(|new| new.thumbprint != key.thumbprint)
        })
    }
}

fn trusted_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<(String, TrustedKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    // RFC 7517 §4.3: a key whose operations are listed may do only those.
    if matches!(&jwk.common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            if modulus_bits(&rsa.n).is_none_or(|bits| bits < MIN_RSA_MODULUS_BITS) {
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
    let thumbprint = thumbprint(jwk)?;
    Some((
        kid,
        TrustedKey {
            key,
            algorithms,
            thumbprint,
        },
    ))
}

/// The RFC 7638 SHA-256 thumbprint of `jwk`, base64url: what the key is,
/// whatever its `kid` says (and what a DPoP token's `cnf.jkt` names).
pub fn thumbprint(jwk: &Jwk) -> Option<String> {
    jwk.thumbprint(ThumbprintHash::SHA256).ok()
}

/// The length in bits of a base64url big-endian integer, leading zero
/// bytes and bits not counted (a zero-padded short modulus stays short).
pub fn modulus_bits(n: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')).ok()?;
    let first = bytes.iter().position(|b| *b != 0)?;
    let leading_zero_bits = bytes[first].leading_zeros() as usize;
    Some((bytes.len() - first) * 8 - leading_zero_bits)
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

/// One GET of a JWKS or discovery document, refusing bodies over [`MAX_JWKS_BYTES`].
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

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rsa::{KeyPair, KeySize},
        signature::KeyPair as _,
    };
    use serde_json::{Value, json};

    use super::*;

    /// The public JWK of a new RSA key.
    fn rsa_jwk(kid: &str, size: KeySize) -> Value {
        let pair = KeyPair::generate(size).expect("rsa keygen");
        let public = pair.public_key();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        json!({
            "kty": "RSA", "kid": kid, "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    fn load(keys: &[Value]) -> Result<KeySet, JwksError> {
        KeySet::from_jwks_json(
            json!({ "keys": keys }).to_string().as_bytes(),
            &[Algorithm::RS256],
        )
    }

    #[test]
    fn a_key_whose_operations_exclude_verify_does_not_verify() {
        let jwk = rsa_jwk("k", KeySize::Rsa2048);
        for ops in [json!(["sign"]), json!(["encrypt", "wrapKey"]), json!([])] {
            let mut key = jwk.clone();
            key["key_ops"] = ops.clone();
            assert!(matches!(load(&[key]), Err(JwksError::NoUsableKey)), "{ops}");
        }
        let mut key = jwk;
        key["key_ops"] = json!(["verify"]);
        assert_eq!(load(&[key]).map(|s| s.len()).ok(), Some(1));
    }

    #[test]
    fn a_short_modulus_padded_with_zero_bytes_is_still_short() {
        let mut jwk = rsa_jwk("k", KeySize::Rsa2048);
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n"))
            .expect("base64");
        // The low 1024 bits, written on 2048 bits with leading zero bytes.
        let mut padded = vec![0u8; 128];
        padded.extend_from_slice(&n[128..]);
        padded[128] |= 0x80;
        jwk["n"] = json!(URL_SAFE_NO_PAD.encode(&padded));
        assert!(matches!(load(&[jwk]), Err(JwksError::NoUsableKey)));
        assert_eq!(modulus_bits(&URL_SAFE_NO_PAD.encode(&padded)), Some(1024));
        assert_eq!(modulus_bits(&URL_SAFE_NO_PAD.encode([0, 0, 1])), Some(1));
        assert_eq!(modulus_bits(""), None);
        assert_eq!(modulus_bits("!!"), None);
    }

    #[test]
    fn new_material_under_an_old_kid_replaces_the_key() {
        let (first, second) = (
            rsa_jwk("k", KeySize::Rsa2048),
            rsa_jwk("k", KeySize::Rsa2048),
        );
        let other = rsa_jwk("other", KeySize::Rsa2048);
        let old = load(std::slice::from_ref(&first)).expect("old set");
        assert!(
            !load(&[first.clone(), other.clone()])
                .expect("same")
                .replaces_keys_of(&old)
        );
        assert!(
            load(&[second])
                .expect("new material")
                .replaces_keys_of(&old)
        );
        assert!(load(&[other]).expect("kid gone").replaces_keys_of(&old));
    }
}
