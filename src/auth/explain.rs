//! `usergate explain-token`: why a token would be accepted or refused, in
//! three steps: decode the input, diagnose it, phrase the verdict.

use serde_json::Value;

use super::{
    AuthError, Credentials, Issuers, Principal, TokenCache, TokenError, Verifier,
    claims::unix_now,
    key_set::{JwksError, KeySet},
    token::{MAX_TOKEN_BYTES, UnverifiedToken},
};
use crate::{
    config::{AuthSettings, PermissionsFrom},
    report::Chain,
};

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
    UnknownIssuer(String),
    NoKeys(String, JwksError),
    Refused(AuthError),
}

/// Explains `input` (a token, or a whole `Bearer …` value) against
/// `settings`, trusting the key set `keys` gives for the token's issuer
/// (or saying why there is none). `keys` is only asked for a configured issuer.
pub async fn explain(
    input: &str,
    settings: &AuthSettings,
    keys: impl AsyncFnOnce(&str) -> Result<KeySet, JwksError>,
) -> Explanation {
    let mut lines = Vec::new();
    let verdict = match decode(input) {
        Ok((token, unverified)) => {
            describe(&unverified, &mut lines);
            note_ignored_claims(&unverified, settings.permissions_from, &mut lines);
            diagnose(&token, &unverified, settings, keys)
                .await
                .map_err(|refusal| (refusal, Some(unverified)))
        }
        Err(refusal) => Err((refusal, None)),
    };
    phrase(verdict, settings, lines)
}

/// Says which present claim grants nothing under `AUTH_PERMISSIONS_FROM`.
fn note_ignored_claims(
    unverified: &UnverifiedToken,
    from: PermissionsFrom,
    lines: &mut Vec<String>,
) {
    let ignored = match from {
        PermissionsFrom::Permissions => "scope",
        PermissionsFrom::Scope => "permissions",
        PermissionsFrom::Both => return,
    };
    if unverified.claim(ignored).ok().flatten().is_some() {
        lines.push(format!(
            "note: permissions come from {} (AUTH_PERMISSIONS_FROM): its {ignored} claim grants nothing",
            from.describe()
        ));
    }
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
    keys: impl AsyncFnOnce(&str) -> Result<KeySet, JwksError>,
) -> Result<(Principal, String), Refusal> {
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
    let issuer = unverified
        .issuer()
        .map_err(|e| Refusal::Refused(e.into()))?
        .to_owned();
    if !settings.issuers.contains(&issuer) {
        return Err(Refusal::UnknownIssuer(issuer));
    }
    let keys = keys(&issuer)
        .await
        .map_err(|e| Refusal::NoKeys(issuer.clone(), e))?;
    let issuers = Issuers::fixed(&issuer, keys);
    let verifier = Verifier::new(settings, issuers, TokenCache::disabled());
    let principal = verifier
        .verify_parsed(token, unverified)
        .await
        .map_err(Refusal::Refused)?;
    // Explained as a bearer token: a bound one is only good with its proof.
    if principal.jkt.is_some() {
        return Err(Refusal::Refused(TokenError::BoundAsBearer.into()));
    }
    Ok((principal, issuer))
}

fn phrase(
    verdict: Result<(Principal, String), (Refusal, Option<UnverifiedToken>)>,
    settings: &AuthSettings,
    mut lines: Vec<String>,
) -> Explanation {
    let (refusal, unverified) = match verdict {
        Ok((principal, issuer)) => {
            lines.push(format!(
                "ACCEPTED: subject {} with permissions [{}], issued by {issuer}",
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
        Refusal::UnknownIssuer(issuer) => format!(
            "issuer not in AUTH0_ISSUER: the token says {issuer:?}, this API trusts {} \
             (exactly, with the trailing slash)",
            settings.issuers.join(", ")
        ),
        Refusal::NoKeys(issuer, e) => format!(
            "the signing keys of {issuer} could not be loaded: {}",
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
            settings.issuers.join(", ")
        ),
        AuthError::Invalid(TokenError::NotAtJwt) => format!(
            "typ is not at+jwt (it is {}): AUTH_REQUIRE_AT_JWT=true accepts only RFC 9068 access tokens",
            unverified
                .and_then(|u| u.header.typ.as_deref())
                .unwrap_or("absent")
        ),
        AuthError::Invalid(TokenError::NotAccessToken) => format!(
            "typ is not at+jwt: {} says this JWT is not an access token",
            unverified
                .and_then(|u| u.header.typ.as_deref())
                .unwrap_or_default()
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
        "header: alg={} kid={} typ={}",
        header.alg,
        header.kid.as_deref().unwrap_or("(none)"),
        header.typ.as_deref().unwrap_or("(none)")
    ));
    let claim = |name| unverified.claim(name).ok().flatten();
    for name in [
        "iss",
        "sub",
        "aud",
        "azp",
        "client_id",
        "scope",
        "permissions",
    ] {
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
