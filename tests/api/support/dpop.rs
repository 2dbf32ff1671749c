//! A DPoP client of the test's own (RFC 9449), written from the RFCs and
//! not from usergate's code: a P-256 key, its RFC 7638 thumbprint, and
//! proofs built by hand so that each can be wrong in exactly one way.

use aws_lc_rs::{
    digest::{SHA256, digest},
    encoding::AsBigEndian,
    hmac,
    signature::EcdsaKeyPair,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use super::{app::TestApp, keys::P256, now};

/// The proof algorithms usergate lists in its `DPoP` challenges.
pub const ALGS: &str = "ES256 ES384 RS256 PS256";

/// A client's P-256 DPoP key.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    /// The public JWK: `kty`, `crv`, `x`, `y`.
    pub jwk: Value,
    /// The private scalar, base64url (for the proof that leaks it).
    pub d: String,
}

impl DpopKey {
    /// A new key.
    pub fn generate() -> Self {
        let P256 { pair, x, y, .. } = P256::generate();
        let d = pair.private_key().as_be_bytes().expect("private scalar");
        Self {
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            d: URL_SAFE_NO_PAD.encode(d.as_ref()),
            pair,
        }
    }

    /// RFC 7638: SHA-256 over the required members in lexicographic order,
    /// no whitespace, base64url.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().expect("x"),
            self.jwk["y"].as_str().expect("y")
        );
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()).as_ref())
    }

    /// The `cnf` claim of a token bound to this key.
    pub fn cnf(&self) -> Value {
        json!({ "jkt": self.thumbprint() })
    }

    /// A valid proof for `method url` with `token`.
    pub fn proof(&self, method: &str, url: &str, token: &str) -> String {
        self.sign(&self.header(), &claims(method, url, token))
    }

    /// The header of a valid proof: `typ`, `alg`, the public `jwk`.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// A compact JWS of `header` and `claims`, signed ES256 by this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = self.pair.sign(&rng, input.as_bytes()).expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The claims of a valid proof: a fresh `jti`, `iat` now, `htm`, `htu`, `ath`.
pub fn claims(method: &str, url: &str, token: &str) -> Value {
    json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": url,
        "iat": now(),
        "ath": ath(token),
    })
}

/// `ath`: base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()).as_ref())
}

/// A proof MAC'd with HS256 under `secret` (a symmetric algorithm).
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

impl TestApp {
    /// `method path` with `Authorization: DPoP token` and one `DPoP` header
    /// per proof.
    pub async fn send_dpop(
        &self,
        method: Method,
        path: &str,
        token: &str,
        proofs: &[&str],
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("authorization", format!("DPoP {token}"));
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        request.send().await.expect("request")
    }
}
