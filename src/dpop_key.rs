//! A DPoP client key (RFC 9449) for the command line: the key a dev token
//! is bound to (`mint-token --dpop-key`) and that signs the proofs of
//! `dpop-proof`. P-256 (ES256), kept on disk as PKCS#8 PEM, created on
//! first use.

use std::{
    fs,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde::Serialize;

use crate::{
    auth::{dpop::token_hash, key_set::thumbprint},
    dev_issuer::{DevKeyError, create_key_file, io},
};

/// A P-256 key pair that binds tokens and signs their proofs.
pub struct DpopKey {
    encoding: EncodingKey,
    jwk: Jwk,
    thumbprint: String,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'a str,
    htu: String,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
}

impl DpopKey {
    /// Loads the key at `path`, creating it (and a private folder) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, DevKeyError> {
        if !path.exists() {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| DevKeyError::Crypto("generation"))?;
            if create_key_file(path, pkcs8.as_ref(), "creating the DPoP key")? {
                log::info!("created a new DPoP key at {}", path.display());
            }
        }
        let pem = fs::read(path).map_err(io("reading the DPoP key", path))?;
        Self::from_pem(&pem)
    }

    /// Parses a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, DevKeyError> {
        let not_p256 = |e: &dyn std::fmt::Display| DevKeyError::NotP256Pkcs8(e.to_string());
        let parsed = pem::parse(pem_bytes).map_err(|e| not_p256(&e))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, parsed.contents())
            .map_err(|e| not_p256(&e))?;
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .filter(|xy| xy.len() == 64)
            .map(|xy| xy.split_at(32))
            .ok_or_else(|| not_p256(&"not an uncompressed P-256 point"))?;
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }))
        .map_err(|e| not_p256(&e))?;
        let thumbprint = thumbprint(&jwk).ok_or(DevKeyError::Crypto("thumbprint"))?;
        Ok(Self {
            encoding: EncodingKey::from_ec_der(parsed.contents()),
            jwk,
            thumbprint,
        })
    }

    /// The RFC 7638 thumbprint of the public key: a bound token's `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The `cnf` claim that binds a token to this key.
    pub fn confirmation(&self) -> serde_json::Value {
        serde_json::json!({ "jkt": self.thumbprint })
    }

    /// A fresh proof (new `jti`, `iat` now) for one `method` request to
    /// `url` (its query and fragment left out), with `ath` when `token` is
    /// given.
    pub fn proof(
        &self,
        method: &str,
        url: &url::Url,
        token: Option<&str>,
    ) -> Result<String, DevKeyError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let claims = ProofClaims {
            jti: uuid::Uuid::new_v4().to_string(),
            htm: method,
            htu: htu.to_string(),
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            ath: token.map(token_hash),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_loaded_again_with_the_same_thumbprint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys/dpop.pem");
        let first = DpopKey::load_or_create(&path).expect("created");
        let again = DpopKey::load_or_create(&path).expect("loaded");
        assert_eq!(first.thumbprint(), again.thumbprint());
        assert_eq!(first.thumbprint().len(), 43, "base64url of SHA-256");
    }
}
