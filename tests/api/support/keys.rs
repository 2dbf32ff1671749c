//! The test issuer's signing keys, generated once per test process.

use std::sync::OnceLock;

use aws_lc_rs::{
    encoding::{AsDer, PublicKeyX509Der},
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A fresh P-256 key pair, its PKCS#8 document, and its public point's
/// coordinates in base64url (a JWK's `x` and `y`).
pub struct P256 {
    /// The pair, to sign with.
    pub pair: EcdsaKeyPair,
    /// The same key as PKCS#8 DER.
    pub pkcs8: Vec<u8>,
    /// The public point's x coordinate, base64url.
    pub x: String,
    /// The public point's y coordinate, base64url.
    pub y: String,
}

impl P256 {
    /// A new random key.
    pub fn generate() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("ec keygen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("ec pkcs8");
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = point[1..].split_at(32);
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        Self {
            pkcs8: pkcs8.as_ref().to_vec(),
            pair,
            x,
            y,
        }
    }
}

/// A signing key of the test issuer, with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    /// Key id.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// Private key for signing.
    pub encoding: EncodingKey,
    /// The public JWK (with `kid`, `use`, `alg`).
    pub jwk: Value,
    /// The public key as PEM (for the HS256-with-public-key attack).
    pub public_pem: String,
}

impl TestKey {
    /// A new RSA-2048 key that signs with `alg` (RS* or PS*).
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let der = pair.as_der().expect("pkcs8");
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let spki: PublicKeyX509Der<'static> = public.as_der().expect("spki");
        Self {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("rsa pem"),
            jwk: json!({"kty": "RSA", "use": "sig", "alg": rsa_alg_name(alg), "kid": kid, "n": n, "e": e}),
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
        }
    }

    /// A new P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let P256 { pkcs8, x, y, .. } = P256::generate();
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&pkcs8),
            jwk: json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid,
                        "x": x, "y": y}),
            public_pem: String::new(),
        }
    }

    /// This key with another kid.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut k = self.clone();
        k.kid = kid.into();
        k.jwk["kid"] = json!(kid);
        k
    }

    /// Signs `claims` with this key's algorithm and kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }

    /// Signs with another algorithm of the same family (e.g. RS384 with an RSA key).
    pub fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// The JWK `alg` of an RSA key; any other algorithm is a mistake in the test.
fn rsa_alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        other => panic!("TestKey::rsa: an RSA key cannot sign with {other:?} (RS* or PS* only)"),
    }
}

/// Keys generated once per test process (RSA generation is the slow part).
pub struct Keys {
    /// The issuer's main RS256 key, kid "key-1".
    pub primary: TestKey,
    /// A second RS256 key, kid "key-2", for rotation.
    pub rotated: TestKey,
    /// An attacker's RS256 key (kid "key-1" too: same name, other key).
    pub attacker: TestKey,
    /// A P-256 key, kid "ec-1".
    pub ec: TestKey,
}

/// The process-wide test keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        primary: TestKey::rsa("key-1", Algorithm::RS256),
        rotated: TestKey::rsa("key-2", Algorithm::RS256),
        attacker: TestKey::rsa("key-1", Algorithm::RS256),
        ec: TestKey::ec("ec-1"),
    })
}
