//! What a verified access token says about its caller.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};

use super::TokenError;
use crate::{
    config::PermissionsFrom,
    fields::{Email, Name, Subject},
};

/// Seconds since the epoch, as `exp`, `nbf` and `iat` count them.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The claims usergate reads from an access token.
#[derive(Debug, Deserialize)]
pub struct AccessClaims {
    /// The issuer, as sent: it must be a string (`jsonwebtoken` also takes
    /// an array holding the right issuer, which no issuer sends).
    #[serde(default)]
    pub iss: Option<serde_json::Value>,
    /// The Auth0 subject.
    #[serde(default, deserialize_with = "lenient_string")]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch; required (`jsonwebtoken` checks it,
    /// and reports it missing only if deserialization lets it be absent).
    #[serde(default)]
    pub exp: Option<f64>,
    /// Issue time, seconds since the epoch.
    #[serde(default)]
    pub iat: Option<f64>,
    /// Space-separated OAuth scopes.
    #[serde(default, deserialize_with = "lenient_string")]
    pub scope: Option<String>,
    /// Auth0 RBAC permissions.
    #[serde(default, deserialize_with = "lenient_strings")]
    pub permissions: Vec<String>,
    /// Email, when the tenant adds it to access tokens.
    #[serde(default, deserialize_with = "lenient_string")]
    pub email: Option<String>,
    /// Whether the IdP verified `email`; `false` means the address is unproven.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    /// Name, when the tenant adds it to access tokens.
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// Auth0's grant type, `client-credentials` for machine-to-machine tokens.
    #[serde(default, deserialize_with = "lenient_string")]
    pub gty: Option<String>,
    /// The client the token was issued to (RFC 9068).
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_id: Option<String>,
    /// The same, in Auth0's classic access token profile.
    #[serde(default, deserialize_with = "lenient_string")]
    pub azp: Option<String>,
    /// RFC 9449 §6.1 confirmation: `{"jkt": "<thumbprint>"}` binds the token to a DPoP key.
    #[serde(default)]
    pub cnf: Option<serde_json::Value>,
}

/// The authenticated caller, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the token is about.
    pub sub: Subject,
    /// What the claims named by `AUTH_PERMISSIONS_FROM` grant (by default
    /// `scope` ∪ `permissions`), sorted, without duplicates.
    pub permissions: Vec<String>,
    /// The client the token was issued to: RFC 9068's `client_id`, or
    /// Auth0's `azp`.
    pub client_id: Option<String>,
    /// A valid `email` claim, if any.
    pub email: Option<Email>,
    /// A valid `name` claim, if any.
    pub name: Option<Name>,
    /// The token's `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// A machine client's token (client credentials grant), not a person's.
    pub is_machine: bool,
    /// The DPoP key the token is bound to (`cnf.jkt`): every request must
    /// then carry a proof signed by it.
    pub jkt: Option<String>,
}

impl Principal {
    /// Builds the principal, its permissions granted by the claims `from`
    /// names; the subject must be present and valid.
    pub fn from_claims(claims: AccessClaims, from: PermissionsFrom) -> Result<Self, TokenError> {
        if !matches!(claims.iss, Some(serde_json::Value::String(_))) {
            return Err(TokenError::Claim("iss"));
        }
        let sub = claims
            .sub
            .and_then(|s| Subject::parse(s).ok())
            .ok_or(TokenError::Claim("sub"))?;
        let scope = claims.scope.as_deref().filter(|_| from.scope());
        let granted = if from.permissions() {
            claims.permissions
        } else {
            Vec::new()
        };
        let mut permissions: Vec<String> = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .chain(granted)
            .collect();
        // Auth0 marks such tokens with `gty`, and names their subject
        // `<client_id>@clients`; either is enough.
        let is_machine = claims.gty.as_deref() == Some("client-credentials")
            || sub.as_str().ends_with("@clients");
        permissions.sort_unstable();
        permissions.dedup();
        // A confirmation we cannot check (no string `jkt`) must not be ignored.
        let jkt = match &claims.cnf {
            None => None,
            Some(cnf) => Some(
                cnf.get("jkt")
                    .and_then(serde_json::Value::as_str)
                    .filter(|jkt| !jkt.is_empty())
                    .ok_or(TokenError::Claim("cnf"))?
                    .to_owned(),
            ),
        };
        Ok(Self {
            sub,
            permissions,
            // An address the IdP says it has not verified is not copied.
            email: claims
                .email
                .filter(|_| claims.email_verified != Some(false))
                .and_then(|e| Email::parse(e).ok()),
            name: claims.name.and_then(|n| Name::parse(n).ok()),
            expires_at: claims.exp.ok_or(TokenError::Claim("exp"))? as i64,
            is_machine,
            client_id: claims.client_id.or(claims.azp),
            jkt,
        })
    }

    /// Whether the token grants `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }
}

/// A string claim; any other JSON type counts as absent rather than failing the token.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

/// A boolean claim; any other JSON type counts as absent.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_bool())
}

/// An array of strings; other members and other types are ignored.
fn lenient_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> AccessClaims {
        serde_json::from_value(json).expect("claims deserialize")
    }

    fn principal(claims: AccessClaims) -> Result<Principal, TokenError> {
        Principal::from_claims(claims, PermissionsFrom::Both)
    }

    #[test]
    fn only_the_claims_named_grant_permissions() {
        let json = serde_json::json!({
            "iss": "i", "sub": "s", "exp": 10, "scope": "read:users", "permissions": ["delete:users"]
        });
        for (from, expected) in [
            (PermissionsFrom::Permissions, vec!["delete:users"]),
            (PermissionsFrom::Scope, vec!["read:users"]),
            (PermissionsFrom::Both, vec!["delete:users", "read:users"]),
        ] {
            let p = Principal::from_claims(claims(json.clone()), from).expect("principal");
            assert_eq!(p.permissions, expected, "{from:?}");
        }
    }

    #[test]
    fn the_client_is_rfc_9068_client_id_or_auth0_azp() {
        for (json, expected) in [
            (
                serde_json::json!({"client_id": "c1", "azp": "a1"}),
                Some("c1"),
            ),
            (serde_json::json!({"azp": "a1"}), Some("a1")),
            (serde_json::json!({}), None),
        ] {
            let mut json = json;
            json["iss"] = "i".into();
            json["sub"] = "s".into();
            json["exp"] = 10.into();
            let p = principal(claims(json.clone())).expect("principal");
            assert_eq!(p.client_id.as_deref(), expected, "{json}");
        }
    }

    #[test]
    fn permissions_are_scope_union_permissions() {
        let p = principal(claims(serde_json::json!({
            "iss": "i", "sub": "auth0|1", "exp": 10, "scope": "openid read:users  profile",
            "permissions": ["delete:users", "read:users", 7]
        })))
        .expect("valid principal");
        assert_eq!(
            p.permissions,
            ["delete:users", "openid", "profile", "read:users"]
        );
        assert!(p.has("delete:users") && !p.has("create:users"));
    }

    #[test]
    fn client_credentials_tokens_are_machine_clients() {
        for (case, json, machine) in [
            (
                "gty",
                serde_json::json!({"sub": "abc", "gty": "client-credentials"}),
                true,
            ),
            (
                "@clients sub",
                serde_json::json!({"sub": "abc@clients"}),
                true,
            ),
            ("person", serde_json::json!({"sub": "auth0|abc"}), false),
            (
                "other gty",
                serde_json::json!({"sub": "auth0|abc", "gty": "password"}),
                false,
            ),
            (
                "clients inside",
                serde_json::json!({"sub": "a@clients.example"}),
                false,
            ),
        ] {
            let mut json = json;
            json["exp"] = 10.into();
            json["iss"] = "https://issuer.example/".into();
            let p = principal(claims(json)).expect("valid principal");
            assert_eq!(p.is_machine, machine, "{case}");
        }
    }

    #[test]
    fn subject_is_required() {
        for sub in [
            serde_json::json!(null),
            serde_json::json!(""),
            serde_json::json!(42),
        ] {
            let c = claims(serde_json::json!({"iss": "i", "sub": sub, "exp": 10}));
            assert_eq!(principal(c), Err(TokenError::Claim("sub")));
        }
    }

    #[test]
    fn invalid_profile_claims_are_dropped_not_fatal() {
        let p = principal(claims(serde_json::json!({
            "iss": "i", "sub": "s", "exp": 10, "email": "not an email", "name": {"first": "Ada"}
        })))
        .expect("valid principal");
        assert_eq!((p.email, p.name), (None, None));
    }

    #[test]
    fn an_unverified_email_is_not_copied() {
        let email_of = |verified: serde_json::Value| {
            let mut json =
                serde_json::json!({"iss": "i", "sub": "s", "exp": 10, "email": "ada@example.com"});
            if !verified.is_null() {
                json["email_verified"] = verified;
            }
            principal(claims(json))
                .expect("valid principal")
                .email
                .map(String::from)
        };
        assert_eq!(email_of(serde_json::json!(false)), None);
        assert_eq!(
            email_of(serde_json::json!(true)).as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(
            email_of(serde_json::Value::Null).as_deref(),
            Some("ada@example.com")
        );
    }

    #[test]
    fn an_issuer_that_is_not_a_string_is_refused() {
        for iss in [
            serde_json::json!(["i"]),
            serde_json::json!(null),
            serde_json::json!(7),
        ] {
            let c = claims(serde_json::json!({"iss": iss, "sub": "s", "exp": 10}));
            assert_eq!(principal(c), Err(TokenError::Claim("iss")), "{iss}");
        }
    }
}
