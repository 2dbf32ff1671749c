//! A compact JWS read without trusting it: its header and payload are parsed
//! once, here, for the verifier (to pick a key) and for `explain-token`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::TokenError;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The JOSE header, read only to pick the key.
#[derive(Debug)]
pub struct JoseHeader {
    /// The algorithm the token claims.
    pub alg: String,
    /// The key id.
    pub kid: Option<String>,
    /// The token's media type (`at+jwt` for RFC 9068 access tokens).
    pub typ: Option<String>,
    /// Content encryption (JWE only).
    pub enc: Option<String>,
    /// Critical extensions; we understand none.
    pub crit: Option<Value>,
}

/// The header as sent, each registered parameter as raw JSON, so that one
/// of the wrong type is reported by name rather than as a broken token.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    typ: Option<Value>,
    cty: Option<Value>,
    jku: Option<Value>,
    x5u: Option<Value>,
    x5t: Option<Value>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<Value>,
    enc: Option<Value>,
    zip: Option<Value>,
    url: Option<Value>,
    nonce: Option<Value>,
    jwk: Option<Value>,
    x5c: Option<Value>,
    crit: Option<Value>,
}

impl RawHeader {
    /// Checks every registered parameter's type (as `jsonwebtoken` will read
    /// them) and keeps those the verifier uses.
    fn check(self) -> Result<JoseHeader, TokenError> {
        let strings = [
            (&self.typ, "typ must be a string"),
            (&self.cty, "cty must be a string"),
            (&self.jku, "jku must be a string"),
            (&self.x5u, "x5u must be a string"),
            (&self.x5t, "x5t must be a string"),
            (&self.x5t_s256, "x5t#S256 must be a string"),
            (&self.zip, "zip must be a string"),
            (&self.url, "url must be a string"),
            (&self.nonce, "nonce must be a string"),
        ];
        for (value, problem) in strings {
            string(value.as_ref(), problem)?;
        }
        for (value, problem) in [
            (&self.x5c, "x5c must be an array of strings"),
            (&self.crit, "crit must be an array of strings"),
        ] {
            if value.as_ref().is_some_and(|v| !is_string_array(v)) {
                return Err(TokenError::Header(problem));
            }
        }
        if let Some(jwk) = &self.jwk
            && Jwk::deserialize(jwk).is_err()
        {
            return Err(TokenError::Header("jwk must be a JSON Web Key"));
        }
        Ok(JoseHeader {
            alg: string(self.alg.as_ref(), "alg must be a string")?.ok_or(TokenError::NotJwt)?,
            kid: string(self.kid.as_ref(), "kid must be a string")?,
            typ: string(self.typ.as_ref(), "typ must be a string")?,
            enc: string(self.enc.as_ref(), "enc must be a string")?,
            crit: self.crit,
        })
    }
}

/// An optional string parameter; `problem` when it is another JSON type.
fn string(value: Option<&Value>, problem: &'static str) -> Result<Option<String>, TokenError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::Header(problem)),
    }
}

fn is_string_array(value: &Value) -> bool {
    value
        .as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
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
        let header: Option<Result<JoseHeader, TokenError>> = header
            .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
            .and_then(|h| serde_json::from_slice::<RawHeader>(&h).ok())
            .map(RawHeader::check);
        match (segments, header) {
            // A JWE (Auth0's opaque tokens are JWEs with "dir"), not a signed JWT.
            (5, _) => Err(TokenError::Opaque),
            (3, Some(Err(malformed))) => Err(malformed),
            (3, Some(Ok(header))) if header.enc.is_none() => Ok(Self {
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
            // An array (which `jsonwebtoken` would search) or any other type.
            Some(_) => Err(TokenError::Claim("iss")),
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

    #[test]
    fn a_header_parameter_of_the_wrong_type_is_named() {
        for (header, problem) in [
            (
                r#"{"alg":"RS256","kid":"k","typ":5}"#,
                "typ must be a string",
            ),
            (r#"{"alg":7,"kid":"k"}"#, "alg must be a string"),
            (r#"{"alg":"RS256","kid":["k"]}"#, "kid must be a string"),
            (
                r#"{"alg":"RS256","kid":"k","x5c":"c"}"#,
                "x5c must be an array of strings",
            ),
            (
                r#"{"alg":"RS256","kid":"k","jwk":"k"}"#,
                "jwk must be a JSON Web Key",
            ),
        ] {
            let token = format!("{}.{}.sig", b64(header), b64(r#"{"iss":"i"}"#));
            let err = UnverifiedToken::parse(&token).expect_err(header);
            assert_eq!(err, TokenError::Header(problem), "{header}");
            assert_eq!(
                err.to_string(),
                format!("the token header is malformed: {problem}")
            );
        }
    }

    #[test]
    fn an_issuer_array_is_not_an_issuer() {
        let token = format!(
            "{}.{}.sig",
            b64(r#"{"alg":"RS256","kid":"k"}"#),
            b64(r#"{"iss":["i"]}"#)
        );
        let parsed = UnverifiedToken::parse(&token).expect("jws");
        assert_eq!(parsed.issuer(), Err(TokenError::Claim("iss")));
    }
}
