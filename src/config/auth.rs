//! The `auth` section: how tokens are verified.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::{ConfigError, DEV_AUDIENCE, Env, split_list};
use crate::http::PublicUrl;

/// Token verification settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Exact `iss` value tokens must carry; ends with `/`.
    pub issuer: String,
    /// Where the key set is fetched from (unused in dev mode, whose key is local).
    pub jwks_url: Url,
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
        let (issuer, jwks_url) = if dev_mode {
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
            (issuer, parse_url("AUTH0_JWKS_URL", &jwks)?)
        } else {
            tenant_urls(env)?
        };
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
            issuer,
            jwks_url,
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
}

/// The tenant's issuer and JWKS URL, from `AUTH0_ISSUER` or `AUTH0_DOMAIN`.
fn tenant_urls(env: &Env<'_>) -> Result<(String, Url), ConfigError> {
    let issuer = match (env.get("AUTH0_ISSUER"), env.get("AUTH0_DOMAIN")) {
        (Some(issuer), _) => issuer,
        (None, Some(domain)) => issuer_from_domain(&domain)?,
        (None, None) => {
            return Err(ConfigError::new(
                "AUTH0_DOMAIN",
                "is required (e.g. example.eu.auth0.com), or set AUTH0_ISSUER; \
                 for local work without a tenant run `usergate serve --dev`",
            ));
        }
    };
    let issuer_url = parse_url("AUTH0_ISSUER", &issuer)?;
    if !issuer.ends_with('/') {
        return Err(ConfigError::new(
            "AUTH0_ISSUER",
            format!("must end with '/' as Auth0's issuer does (got {issuer})"),
        ));
    }
    require_https("AUTH0_ISSUER", &issuer_url)?;
    let jwks = env
        .get("AUTH0_JWKS_URL")
        .unwrap_or_else(|| format!("{issuer}.well-known/jwks.json"));
    let jwks_url = parse_url("AUTH0_JWKS_URL", &jwks)?;
    require_https("AUTH0_JWKS_URL", &jwks_url)?;
    Ok((issuer, jwks_url))
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

fn is_loopback(url: &Url) -> bool {
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
