//! A compact JWS read without trusting it: its header and payload are parsed
//! once, here, for the verifier (to pick a key) and for `explain-token`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::TokenError;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header, read only to pick the key.
#[derive(Debug, Deserialize)]
pub struct JoseHeader {
    /// The algorithm the token claims.
    pub alg: String,
    /// The key id.
    pub kid: Option<String>,
    /// Content encryption (JWE only).
    pub enc: Option<String>,
    /// Critical extensions; we understand none.
    pub crit: Option<Value>,
}

/// A token's header and claims, not verified.
#[derive(Debug)]
pub struct UnverifiedToken {
    /// The JOSE header.
    pub header: JoseHeader,
    /// The payload's claims; `None` when the payload is not a JSON object.
    pub claims: Option<Map<String, Value>>,
}

impl UnverifiedToken {
    /// Parses a compact JWS, telling opaque tokens apart.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (header, payload) = (parts.next(), parts.next());
        let segments = 2 + parts.count();
        let segments = match (header, payload) {
            (Some(_), None) => 1,
            _ => segments,
        };
        let header: Option<JoseHeader> = header
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice(&h).ok());
        match (segments, header) {
            // A JWE (Auth0's opaque tokens are JWEs with "dir"), not a signed JWT.
            (5, _) => Err(TokenError::Opaque),
            (3, Some(header)) if header.enc.is_none() => Ok(Self {
                header,
                claims: payload
                    .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                    .and_then(|p| serde_json::from_slice(&p).ok()),
            }),
            (1, None) => Err(TokenError::Opaque),
            _ => Err(TokenError::NotJwt),
        }
    }

    /// One claim; `NotJwt` when the payload is not a JSON object.
    pub fn claim(&self, name: &str) -> Result<Option<&Value>, TokenError> {
        Ok(self.claims.as_ref().ok_or(TokenError::NotJwt)?.get(name))
    }

    /// The unverified `iss`, when it is a string.
    pub fn issuer(&self) -> Result<&str, TokenError> {
        match self.claim("iss")? {
            Some(Value::String(iss)) => Ok(iss),
            Some(_) => Err(TokenError::Issuer),
            None => Err(TokenError::Claim("iss")),
        }
    }

    /// The unverified `aud` values.
    pub fn audiences(&self) -> Vec<&str> {
        match self.claim("aud").ok().flatten() {
            Some(Value::String(a)) => vec![a],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    fn alg_of(token: &str) -> Result<String, TokenError> {
        UnverifiedToken::parse(token).map(|t| t.header.alg)
    }

    #[test]
    fn headers_tell_jws_from_opaque_tokens() {
        let jws = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(r#"{"iss":"i"}"#)
        );
        assert_eq!(alg_of(&jws), Ok("RS256".to_owned()));
        let parsed = UnverifiedToken::parse(&jws).expect("jws");
        assert_eq!(parsed.issuer(), Ok("i"));
        let jwe = format!("{}.x.y.z.w", b64(r#"{"alg":"dir","enc":"A256GCM"}"#));
        assert_eq!(alg_of(&jwe), Err(TokenError::Opaque));
        assert_eq!(alg_of("Zx4mQf0bYd6c2kP9"), Err(TokenError::Opaque));
        assert_eq!(alg_of("a.b.c"), Err(TokenError::NotJwt));
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert_eq!(alg_of(&unsigned), Ok("none".to_owned()));
        assert_eq!(
            alg_of(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::TooLarge)
        );
    }
}
