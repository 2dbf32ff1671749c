//! The `Authorization` header, parsed per RFC 6750 §2.1 and RFC 9449 §7.1:
//! the one parser of credentials (the middleware and `explain-token` both use it).

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header};

/// What the `Authorization` header holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A well-formed bearer token.
    Bearer(String),
    /// `DPoP <token>`, with the one `DPoP` proof header, or why there is none.
    Dpop {
        /// The access token.
        token: String,
        /// The proof JWS as sent, or what is wrong with the `DPoP` headers.
        proof: Result<String, &'static str>,
    },
    /// No bearer credentials at all.
    Missing,
    /// A header that is not a usable `Bearer <token>`.
    Malformed(&'static str),
}

impl Credentials {
    /// Reads the request's `Authorization` headers (never the query or body).
    pub fn from_request_head(req: &HttpRequest) -> Self {
        let mut headers = req.headers().get_all(header::AUTHORIZATION);
        let Some(value) = headers.next() else {
            return Self::Missing;
        };
        if headers.next().is_some() {
            return Self::Malformed("several Authorization headers");
        }
        let Ok(value) = value.to_str() else {
            return Self::Malformed("the Authorization header has characters outside ASCII");
        };
        match Self::parse(value) {
            Self::Dpop { token, .. } => Self::Dpop {
                token,
                proof: dpop_proof(req),
            },
            other => other,
        }
    }

    /// Parses one `Authorization` value; the scheme name is case-insensitive.
    /// A `DPoP` value gets its proof from the request ([`Self::from_request_head`]).
    pub fn parse(value: &str) -> Self {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let dpop = scheme.eq_ignore_ascii_case("dpop");
        if !dpop && !scheme.eq_ignore_ascii_case("bearer") {
            // Another scheme carries no credentials of ours: a plain 401 challenge.
            return Self::Missing;
        }
        let token = rest.trim_matches(' ');
        if token.is_empty() {
            return Self::Malformed(if dpop {
                "DPoP without a token"
            } else {
                "Bearer without a token"
            });
        }
        if token.contains(' ') {
            return Self::Malformed("more than one token");
        }
        if !is_b64token(token) {
            return Self::Malformed("the token has characters a bearer token cannot have");
        }
        if dpop {
            Self::Dpop {
                token: token.to_owned(),
                proof: Err("no DPoP proof header"),
            }
        } else {
            Self::Bearer(token.to_owned())
        }
    }
}

/// The largest proof read; a proof is a few hundred bytes.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// The one `DPoP` header of `req` (RFC 9449 §4.3: exactly one).
fn dpop_proof(req: &HttpRequest) -> Result<String, &'static str> {
    let mut proofs = req.headers().get_all("dpop");
    let proof = proofs.next().ok_or("no DPoP proof header")?;
    if proofs.next().is_some() {
        return Err("more than one DPoP proof header");
    }
    let proof = proof
        .to_str()
        .map_err(|_| "the DPoP proof has characters outside ASCII")?
        .trim();
    if proof.is_empty() || proof.len() > MAX_PROOF_BYTES {
        return Err("the DPoP proof is empty or too large");
    }
    Ok(proof.to_owned())
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

impl FromRequest for Credentials {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self::from_request_head(req)))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn parse(values: &[&str]) -> Credentials {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((header::AUTHORIZATION, *v));
        }
        Credentials::from_request_head(&req.to_http_request())
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        assert_eq!(parse(&[]), Credentials::Missing);
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Credentials::Missing);
        assert_eq!(
            parse(&["bearer abc.def.ghi"]),
            Credentials::Bearer("abc.def.ghi".into())
        );
        assert_eq!(
            parse(&["dpop abc.def.ghi"]),
            Credentials::Dpop {
                token: "abc.def.ghi".into(),
                proof: Err("no DPoP proof header")
            }
        );
        assert_eq!(
            parse(&["BEARER abc=="]),
            Credentials::Bearer("abc==".into())
        );
        for (case, values) in [
            ("no token", &["Bearer"][..]),
            ("blank token", &["Bearer   "][..]),
            ("two tokens", &["Bearer a b"][..]),
            ("bad characters", &["Bearer a,b"][..]),
            ("padding only", &["Bearer =="][..]),
            ("two headers", &["Bearer a", "Bearer b"][..]),
            ("dpop without token", &["DPoP "][..]),
        ] {
            assert!(matches!(parse(values), Credentials::Malformed(_)), "{case}");
        }
    }
}
