//! `usergate explain-token`: why a token would be accepted or refused, in
//! three steps: decode the input, diagnose it, phrase the verdict.

use serde_json::Value;

use super::{
    AuthError, Credentials, Principal, TokenCache, TokenError, Verifier,
    claims::unix_now,
    jwks::KeyStore,
    key_set::{JwksError, KeySet},
    token::{MAX_TOKEN_BYTES, UnverifiedToken},
};
use crate::{config::AuthSettings, report::Chain};

/// The verdict and the lines that explain it.
#[derive(Debug)]
pub struct Explanation {
    /// Whether the server would accept the token.
    pub accepted: bool,
    /// Human-readable findings, in order.
    pub lines: Vec<String>,
}

/// Why a token would be refused, before it is put in words.
enum Refusal {
    NoToken,
    Malformed(&'static str),
    TooLarge(usize),
    Opaque,
    NotJwt,
    IdToken,
    NoKeys(JwksError),
    Refused(AuthError),
}

/// Explains `input` (a token, or a whole `Bearer …` value) against
/// `settings`, trusting `keys` (or saying why there are none).
pub async fn explain(
    input: &str,
    settings: &AuthSettings,
    keys: Result<KeySet, JwksError>,
) -> Explanation {
    let mut lines = Vec::new();
    let verdict = match decode(input) {
        Ok((token, unverified)) => {
            describe(&unverified, &mut lines);
            diagnose(&token, &unverified, settings, keys)
                .await
                .map_err(|refusal| (refusal, Some(unverified)))
        }
        Err(refusal) => Err((refusal, None)),
    };
    phrase(verdict, settings, lines)
}

/// The token out of the input, parsed without trusting it.
fn decode(input: &str) -> Result<(String, UnverifiedToken), Refusal> {
    let input = input.trim();
    let token = if input.contains(' ') {
        match Credentials::parse(input) {
            Credentials::Bearer(token) | Credentials::Dpop { token, .. } => token,
            Credentials::Malformed(why) => return Err(Refusal::Malformed(why)),
            Credentials::Missing => return Err(Refusal::NotJwt),
        }
    } else {
        input.to_owned()
    };
    if token.is_empty() {
        return Err(Refusal::NoToken);
    }
    match UnverifiedToken::parse(&token) {
        Ok(unverified) => Ok((token, unverified)),
        Err(TokenError::TooLarge) => Err(Refusal::TooLarge(token.len())),
        Err(TokenError::Opaque) => Err(Refusal::Opaque),
        Err(e @ TokenError::Header(_)) => Err(Refusal::Refused(e.into())),
        Err(_) => Err(Refusal::NotJwt),
    }
}

/// Runs the verifier on the token, after the checks it cannot phrase well.
async fn diagnose(
    token: &str,
    unverified: &UnverifiedToken,
    settings: &AuthSettings,
    keys: Result<KeySet, JwksError>,
) -> Result<Principal, Refusal> {
    let claim = |name| unverified.claim(name).ok().flatten();
    let audience_matches = unverified
        .audiences()
        .iter()
        .any(|a| settings.audiences.iter().any(|ours| ours == a));
    let looks_like_id_token = claim("nonce").is_some()
        || claim("at_hash").is_some()
        || (!audience_matches && claim("scope").is_none() && claim("email").is_some());
    if looks_like_id_token && !audience_matches {
        return Err(Refusal::IdToken);
    }
    let keys = keys.map_err(Refusal::NoKeys)?;
    let verifier = Verifier::new(settings, KeyStore::fixed(keys), TokenCache::disabled());
    let principal = verifier
        .verify_parsed(token, unverified)
        .await
        .map_err(Refusal::Refused)?;
    // Explained as a bearer token: a bound one is only good with its proof.
    if principal.jkt.is_some() {
        return Err(Refusal::Refused(TokenError::BoundAsBearer.into()));
    }
    Ok(principal)
}

fn phrase(
    verdict: Result<Principal, (Refusal, Option<UnverifiedToken>)>,
    settings: &AuthSettings,
    mut lines: Vec<String>,
) -> Explanation {
    let (refusal, unverified) = match verdict {
        Ok(principal) => {
            lines.push(format!(
                "ACCEPTED: subject {} with permissions [{}]",
                principal.sub,
                principal.permissions.join(", ")
            ));
            return Explanation {
                accepted: true,
                lines,
            };
        }
        Err(refused) => refused,
    };
    let audiences = settings.audiences.join(" or ");
    let why = match refusal {
        Refusal::NoToken => "no token given".to_owned(),
        Refusal::Malformed(why) => format!("not a usable bearer credential: {why}"),
        Refusal::TooLarge(len) => {
            format!("the token is {len} bytes, over the {MAX_TOKEN_BYTES}-byte limit")
        }
        Refusal::Opaque => format!(
            "this is an opaque access token, not a JWT. Auth0 issues those when the login did not ask \
             for an audience: add audience={audiences} to the /authorize (or token) request"
        ),
        Refusal::NotJwt => {
            "this is not a JWT (expected three base64url parts with a JSON header)".to_owned()
        }
        Refusal::IdToken => format!(
            "this looks like an ID token (audience is the application's client id, not the API; it carries \
             nonce/at_hash or profile claims). Send the access token, requested with audience={audiences}"
        ),
        Refusal::NoKeys(e) => format!(
            "the signing keys could not be loaded from {}: {}",
            settings.jwks_url,
            Chain(&e)
        ),
        Refusal::Refused(e) => refused_because(&e, unverified.as_ref(), settings),
    };
    lines.push(format!("REFUSED: {why}"));
    Explanation {
        accepted: false,
        lines,
    }
}

fn refused_because(
    e: &AuthError,
    unverified: Option<&UnverifiedToken>,
    settings: &AuthSettings,
) -> String {
    let claim = |name| {
        unverified
            .and_then(|u| u.claim(name).ok().flatten())
            .unwrap_or(&Value::Null)
    };
    match e {
        AuthError::Invalid(TokenError::Audience) => format!(
            "wrong audience: the token is for {:?}, this API accepts {:?}",
            unverified
                .map(UnverifiedToken::audiences)
                .unwrap_or_default(),
            settings.audiences
        ),
        AuthError::Invalid(TokenError::Issuer) => format!(
            "wrong issuer: the token says {}, this API trusts {} (exactly, with the trailing slash)",
            claim("iss"),
            settings.issuer
        ),
        AuthError::Invalid(TokenError::Algorithm) => format!(
            "the algorithm is not allowed: allowed are {:?} (none and HS* never are)",
            settings.algorithms
        ),
        AuthError::Invalid(TokenError::UnknownKid) => {
            "the token's kid is not in the tenant's JWKS: \
             it was signed by another tenant or a rotated-out key"
                .to_owned()
        }
        AuthError::Invalid(TokenError::BoundAsBearer) => format!(
            "DPoP-bound token sent as Bearer: it is bound to the key with thumbprint {} \
             (cnf.jkt) and is accepted only as `Authorization: DPoP` with a proof signed by that key",
            claim("cnf").get("jkt").unwrap_or(&Value::Null)
        ),
        AuthError::Invalid(TokenError::Expired) => {
            format!("expired (beyond the {}s leeway)", settings.leeway_secs)
        }
        other => other.to_string(),
    }
}

/// The header and the claims a reader wants to see first.
fn describe(unverified: &UnverifiedToken, lines: &mut Vec<String>) {
    let header = &unverified.header;
    lines.push(format!(
        "header: alg={} kid={}",
        header.alg,
        header.kid.as_deref().unwrap_or("(none)")
    ));
    let claim = |name| unverified.claim(name).ok().flatten();
    for name in ["iss", "sub", "aud", "azp", "scope", "permissions"] {
        if let Some(v) = claim(name) {
            lines.push(format!("{name}: {v}"));
        }
    }
    let now = unix_now();
    for name in ["iat", "nbf", "exp"] {
        if let Some(t) = claim(name).and_then(Value::as_i64) {
            // Any i64 may come in a token: no arithmetic here may overflow.
            let delta = t.saturating_sub(now);
            let when = if delta >= 0 {
                format!("in {delta}s")
            } else {
                format!("{}s ago", delta.unsigned_abs())
            };
            lines.push(format!("{name}: {t} ({when})"));
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn times_at_the_ends_of_the_range_are_described_without_overflow() {
        let payload = format!(r#"{{"iat":{},"exp":{}}}"#, i64::MIN, i64::MAX);
        let token = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let unverified = UnverifiedToken::parse(&token).expect("jws");
        let mut lines = Vec::new();
        describe(&unverified, &mut lines);
        assert!(lines.iter().any(|l| l.contains("s ago")), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("exp: ") && l.contains("in ")),
            "{lines:?}"
        );
    }
}
