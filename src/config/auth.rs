//! The `auth` section: how tokens are verified.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::{ConfigError, DEV_AUDIENCE, Env, split_list};
use crate::http::PublicUrl;

/// Which claims grant permissions (`AUTH_PERMISSIONS_FROM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionsFrom {
    /// Auth0's RBAC `permissions` array only.
    Permissions,
    /// The space-separated `scope` claim only.
    Scope,
    /// Both, as a union (the default).
    Both,
}

impl PermissionsFrom {
    /// Reads `AUTH_PERMISSIONS_FROM`: `permissions`, `scope`, or both
    /// names comma-separated (the default).
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let Some(value) = env.get("AUTH_PERMISSIONS_FROM") else {
            return Ok(Self::Both);
        };
        let invalid = |problem: String| ConfigError::new("AUTH_PERMISSIONS_FROM", problem);
        let (mut permissions, mut scope) = (false, false);
        for name in split_list(&value) {
            match name.as_str() {
                "permissions" => permissions = true,
                "scope" => scope = true,
                other => {
                    return Err(invalid(format!(
                        "unknown claim {other:?} (use permissions, scope, or permissions,scope)"
                    )));
                }
            }
        }
        match (permissions, scope) {
            (true, true) => Ok(Self::Both),
            (true, false) => Ok(Self::Permissions),
            (false, true) => Ok(Self::Scope),
            (false, false) => Err(invalid("must name permissions, scope, or both".to_owned())),
        }
    }

    /// Whether the `permissions` claim grants permissions.
    pub fn permissions(self) -> bool {
        self != Self::Scope
    }

    /// Whether the `scope` claim grants permissions.
    pub fn scope(self) -> bool {
        self != Self::Permissions
    }

    /// The claims, in words (for logs and explain-token).
    pub fn describe(self) -> &'static str {
        match self {
            Self::Permissions => "the permissions claim only",
            Self::Scope => "the scope claim only",
            Self::Both => "the permissions and scope claims",
        }
    }
}

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The trusted issuers, the primary first: the exact `iss` values tokens
    /// may carry, each ending with `/`. A fixed allow-list, never empty.
    pub issuers: Vec<String>,
    /// `AUTH0_JWKS_URL` (only with one issuer); `None`: each issuer's key set
    /// is found through its OpenID discovery document.
    pub jwks_url: Option<Url>,
    /// Which claims grant permissions.
    pub permissions_from: PermissionsFrom,
    /// Whether only RFC 9068 access tokens (`typ` `at+jwt`) are accepted.
    pub require_at_jwt: bool,
    /// Accepted `aud` values; never empty.
    pub audiences: Vec<String>,
    /// Allowed JWS algorithms; never empty, never HS* or `none`.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Background refresh interval of the key set.
    pub jwks_refresh: Duration,
    /// Least time between two fetches caused by unknown `kid`s.
    pub jwks_cooldown: Duration,
    /// Time limit of one key set fetch.
    pub jwks_timeout: Duration,
}

impl AuthSettings {
    /// Reads the section; in dev mode the issuer is the local server on `port`.
    pub fn from_env(env: &Env<'_>, dev_mode: bool, port: u16) -> Result<Self, ConfigError> {
        let (issuers, jwks_url) = if dev_mode {
            // Behind a balancer every replica must trust the same issuer:
            // the URL clients use.
            let issuer = match env.get("PUBLIC_URL") {
                Some(url) => format!(
                    "{}/",
                    PublicUrl::parse(&url)
                        .map_err(|problem| ConfigError::new("PUBLIC_URL", problem))?
                        .as_str()
                ),
                None => format!("http://localhost:{port}/"),
            };
            let jwks = format!("{issuer}.well-known/jwks.json");
            (vec![issuer], Some(parse_url("AUTH0_JWKS_URL", &jwks)?))
        } else {
            tenant_urls(env)?
        };
        let permissions_from = PermissionsFrom::from_env(env)?;
        let require_at_jwt = flag(env, "AUTH_REQUIRE_AT_JWT")?;
        let audiences: Vec<String> = match env.get("AUTH0_AUDIENCE") {
            Some(list) => split_list(&list),
            None if dev_mode => vec![DEV_AUDIENCE.to_owned()],
            None => Vec::new(),
        };
        if audiences.is_empty() {
            return Err(ConfigError::new(
                "AUTH0_AUDIENCE",
                "is required: the API identifier of your Auth0 API (comma-separated for several)",
            ));
        }
        let algorithms = match env.get("AUTH0_ALGORITHMS") {
            Some(list) => parse_algorithms(&list)?,
            None => vec![Algorithm::RS256],
        };
        Ok(Self {
            issuers,
            jwks_url,
            permissions_from,
            require_at_jwt,
            audiences,
            algorithms,
            // Bounded so that no time arithmetic can overflow and no setting
            // turns a safeguard off (a zero cooldown fetches on every unknown kid).
            leeway_secs: env.secs_in("AUTH_LEEWAY_SECS", 60, 0..=300)?.as_secs(),
            jwks_refresh: env.secs_in("JWKS_REFRESH_SECS", 600, 1..=86_400)?,
            jwks_cooldown: env.secs_in("JWKS_COOLDOWN_SECS", 30, 1..=3_600)?,
            jwks_timeout: env.secs_in("JWKS_TIMEOUT_SECS", 5, 1..=60)?,
        })
    }

    /// The primary issuer (RFC 9728's first, dev tokens').
    pub fn primary_issuer(&self) -> &str {
        self.issuers.first().map_or("", String::as_str)
    }
}

/// The tenant's issuers, from `AUTH0_ISSUER` or `AUTH0_DOMAIN`, and the
/// `AUTH0_JWKS_URL` override (one issuer only).
fn tenant_urls(env: &Env<'_>) -> Result<(Vec<String>, Option<Url>), ConfigError> {
    let list = match (env.get("AUTH0_ISSUER"), env.get("AUTH0_DOMAIN")) {
        (Some(list), _) => list,
        (None, Some(domain)) => issuer_from_domain(&domain)?,
        (None, None) => {
            return Err(ConfigError::new(
                "AUTH0_DOMAIN",
                "is required (e.g. example.eu.auth0.com), or set AUTH0_ISSUER; \
                 for local work without a tenant run `usergate serve --dev`",
            ));
        }
    };
    let mut issuers: Vec<String> = Vec::new();
    for issuer in split_list(&list) {
        let issuer_url = parse_url("AUTH0_ISSUER", &issuer)?;
        if !issuer.ends_with('/') {
            return Err(ConfigError::new(
                "AUTH0_ISSUER",
                format!("must end with '/' as Auth0's issuer does (got {issuer})"),
            ));
        }
        require_https("AUTH0_ISSUER", &issuer_url)?;
        if !issuers.contains(&issuer) {
            issuers.push(issuer);
        }
    }
    if issuers.is_empty() {
        return Err(ConfigError::new(
            "AUTH0_ISSUER",
            "must name at least one issuer",
        ));
    }
    let jwks_url = match env.get("AUTH0_JWKS_URL") {
        None => None,
        Some(_) if issuers.len() > 1 => {
            return Err(ConfigError::new(
                "AUTH0_JWKS_URL",
                format!(
                    "is only allowed with one issuer (AUTH0_ISSUER names {}); unset it so that \
                     each issuer's key set is found through its discovery document",
                    issuers.len()
                ),
            ));
        }
        Some(jwks) => {
            let url = parse_url("AUTH0_JWKS_URL", &jwks)?;
            require_https("AUTH0_JWKS_URL", &url)?;
            Some(url)
        }
    };
    Ok((issuers, jwks_url))
}

/// A `true`/`false` variable (`1`/`0` too, any case); unset is `false`.
fn flag(env: &Env<'_>, var: &'static str) -> Result<bool, ConfigError> {
    match env.get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(ConfigError::new(var, "must be true or false")),
    }
}

fn issuer_from_domain(domain: &str) -> Result<String, ConfigError> {
    let domain = domain.trim_end_matches('/');
    if domain.contains("://") || domain.contains('/') {
        return Err(ConfigError::new(
            "AUTH0_DOMAIN",
            format!("must be a bare host name such as example.eu.auth0.com (got {domain})"),
        ));
    }
    Ok(format!("https://{domain}/"))
}

fn parse_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value)
        .map_err(|e| ConfigError::new(var, format!("is not a valid URL ({e}): {value}")))
}

/// Plain HTTP is only for loopback (tests and dev); a tenant's keys must come over TLS.
fn require_https(var: &'static str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::new(
            var,
            format!("must use https:// unless the host is loopback (got {url})"),
        )),
        other => Err(ConfigError::new(
            var,
            format!("must be an https:// URL (got scheme {other})"),
        )),
    }
}

/// Whether `url`'s host is loopback (where plain HTTP is allowed).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn parse_algorithms(list: &str) -> Result<Vec<Algorithm>, ConfigError> {
    const VAR: &str = "AUTH0_ALGORITHMS";
    let mut algorithms = Vec::new();
    for name in split_list(list) {
        let alg = match name.as_str() {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            n if n.starts_with("HS") || n.eq_ignore_ascii_case("none") => {
                return Err(ConfigError::new(
                    VAR,
                    format!("{n} is never allowed: keys come from a public JWKS"),
                ));
            }
            n => {
                return Err(ConfigError::new(
                    VAR,
                    format!(
                        "unsupported algorithm {n:?} (use RS256..RS512, PS256..PS512, ES256, ES384)"
                    ),
                ));
            }
        };
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::new(VAR, "must name at least one algorithm"));
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::settings;

    #[test]
    fn several_issuers_are_trusted_and_refuse_a_single_jwks_url() {
        let both = [
            ("AUTH0_ISSUER", "https://a.example/, https://b.example/"),
            ("AUTH0_AUDIENCE", "api"),
        ];
        let s = settings(&both).expect("two issuers");
        assert_eq!(s.auth.issuers, ["https://a.example/", "https://b.example/"]);
        assert_eq!(s.auth.primary_issuer(), "https://a.example/");
        let mut with_url = both.to_vec();
        with_url.push(("AUTH0_JWKS_URL", "https://a.example/jwks"));
        let err = settings(&with_url).expect_err("one JWKS URL for two issuers");
        assert_eq!(err.var, "AUTH0_JWKS_URL", "{err}");
    }

    #[test]
    fn permissions_come_from_the_claims_named() {
        for (value, expected) in [
            ("permissions", PermissionsFrom::Permissions),
            ("scope", PermissionsFrom::Scope),
            ("permissions,scope", PermissionsFrom::Both),
            ("scope, permissions", PermissionsFrom::Both),
        ] {
            let s = settings(&[
                ("AUTH0_DOMAIN", "example.eu.auth0.com"),
                ("AUTH0_AUDIENCE", "api"),
                ("AUTH_PERMISSIONS_FROM", value),
            ])
            .expect(value);
            assert_eq!(s.auth.permissions_from, expected, "{value}");
        }
    }
}
