//! Typed settings, read once from the environment and validated at start.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use url::Url;

use crate::db::DatabaseUrl;

/// The audience `serve --dev` and `mint-token` use when `AUTH0_AUDIENCE` is unset.
pub const DEV_AUDIENCE: &str = "http://localhost:8000/users";

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong, in a few words.
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// Everything the service needs to run, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How tokens are verified.
    pub auth: AuthSettings,
    /// Where the `users` table lives (`DATABASE_URL`).
    pub database_url: DatabaseUrl,
    /// Connections in the pool (`DATABASE_POOL_SIZE`).
    pub database_pool_size: u32,
    /// Listen address (`HOST`).
    pub host: String,
    /// Listen port (`PORT`); 0 picks a free one.
    pub port: u16,
    /// Browser origins allowed to call the API (`CORS_ALLOWED_ORIGINS`); empty = no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Load balancers whose forwarded headers are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
    /// How long `/readyz` answers 503 before the server stops (`SHUTDOWN_DRAIN_SECS`).
    pub shutdown_drain: Duration,
    /// The dev signing key (`DEV_KEY_PATH`).
    pub dev_key_path: PathBuf,
    /// `serve --dev`: trust the local dev key instead of a tenant.
    pub dev_mode: bool,
}

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

impl Settings {
    /// Reads the process environment (after `.env`, which `main` loads).
    pub fn from_env(dev_mode: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), dev_mode)
    }

    /// Builds settings from any variable lookup; empty values count as unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        dev_mode: bool,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".into());
        let port: u16 = parse_or("PORT", get("PORT"), 8000)?;

        let (issuer, jwks_url) = if dev_mode {
            let issuer = format!("http://localhost:{port}/");
            let jwks = format!("{issuer}.well-known/jwks.json");
            (issuer, parse_url("AUTH0_JWKS_URL", &jwks)?)
        } else {
            let issuer = match (get("AUTH0_ISSUER"), get("AUTH0_DOMAIN")) {
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
            let jwks =
                get("AUTH0_JWKS_URL").unwrap_or_else(|| format!("{issuer}.well-known/jwks.json"));
            let jwks_url = parse_url("AUTH0_JWKS_URL", &jwks)?;
            require_https("AUTH0_JWKS_URL", &jwks_url)?;
            (issuer, jwks_url)
        };

        let audiences: Vec<String> = match get("AUTH0_AUDIENCE") {
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

        let algorithms = match get("AUTH0_ALGORITHMS") {
            Some(list) => parse_algorithms(&list)?,
            None => vec![Algorithm::RS256],
        };

        let auth = AuthSettings {
            issuer,
            jwks_url,
            audiences,
            algorithms,
            leeway_secs: parse_or("AUTH_LEEWAY_SECS", get("AUTH_LEEWAY_SECS"), 60)?,
            jwks_refresh: positive_secs("JWKS_REFRESH_SECS", get("JWKS_REFRESH_SECS"), 600)?,
            jwks_cooldown: secs("JWKS_COOLDOWN_SECS", get("JWKS_COOLDOWN_SECS"), 30)?,
            jwks_timeout: positive_secs("JWKS_TIMEOUT_SECS", get("JWKS_TIMEOUT_SECS"), 5)?,
        };

        let database_url = DatabaseUrl::parse(
            get("DATABASE_URL")
                .as_deref()
                .unwrap_or("sqlite://usergate.db"),
        )
        .map_err(|problem| ConfigError::new("DATABASE_URL", problem))?;
        let database_pool_size: u32 =
            parse_or("DATABASE_POOL_SIZE", get("DATABASE_POOL_SIZE"), 10)?;
        if database_pool_size == 0 {
            return Err(ConfigError::new("DATABASE_POOL_SIZE", "must be at least 1"));
        }

        let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
            .map(|list| split_list(&list))
            .unwrap_or_default()
            .into_iter()
            .map(|origin| parse_origin(&origin))
            .collect::<Result<_, _>>()?;
        let trusted_proxies = get("TRUSTED_PROXIES")
            .map(|list| split_list(&list))
            .unwrap_or_default()
            .iter()
            .map(|net| parse_net(net))
            .collect::<Result<_, _>>()?;

        Ok(Self {
            auth,
            database_url,
            database_pool_size,
            host,
            port,
            cors_allowed_origins,
            trusted_proxies,
            shutdown_drain: secs("SHUTDOWN_DRAIN_SECS", get("SHUTDOWN_DRAIN_SECS"), 5)?,
            dev_key_path: get("DEV_KEY_PATH")
                .unwrap_or_else(|| ".usergate/dev-key.pem".into())
                .into(),
            dev_mode,
        })
    }
}

/// The host part of a URL that reaches a server listening on `host`: a
/// wildcard address is reached on loopback, an IPv6 address in brackets.
pub fn reachable_host(host: &str) -> String {
    match host {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "[::1]".to_owned(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_owned(),
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

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_or<T: FromStr>(
    var: &'static str,
    value: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ConfigError::new(
                var,
                format!("must be a non-negative whole number (got {v:?})"),
            )
        }),
    }
}

fn secs(var: &'static str, value: Option<String>, default: u64) -> Result<Duration, ConfigError> {
    parse_or(var, value, default).map(Duration::from_secs)
}

fn positive_secs(
    var: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let d = secs(var, value, default)?;
    if d.is_zero() {
        return Err(ConfigError::new(var, "must be at least 1 second"));
    }
    Ok(d)
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

fn parse_origin(origin: &str) -> Result<String, ConfigError> {
    const VAR: &str = "CORS_ALLOWED_ORIGINS";
    let url = Url::parse(origin).map_err(|_| {
        ConfigError::new(
            VAR,
            format!("{origin:?} is not an origin like https://app.example.com"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.path() != "/"
        || origin.ends_with('/')
    {
        return Err(ConfigError::new(
            VAR,
            format!(
                "{origin:?} is not an origin like https://app.example.com (scheme, host, optional port; no path)"
            ),
        ));
    }
    Ok(origin.to_owned())
}

fn parse_net(net: &str) -> Result<IpNet, ConfigError> {
    net.parse::<IpNet>()
        .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                "TRUSTED_PROXIES",
                format!("{net:?} is not an IP address or CIDR"),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned(), false)
    }

    #[test]
    fn domain_gives_issuer_and_jwks_url() {
        let s = settings(&[
            ("AUTH0_DOMAIN", "example.eu.auth0.com"),
            ("AUTH0_AUDIENCE", "a, b"),
        ])
        .expect("valid settings");
        assert_eq!(s.auth.issuer, "https://example.eu.auth0.com/");
        assert_eq!(
            s.auth.jwks_url.as_str(),
            "https://example.eu.auth0.com/.well-known/jwks.json"
        );
        assert_eq!(s.auth.audiences, vec!["a", "b"]);
        assert_eq!(s.auth.algorithms, vec![Algorithm::RS256]);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let base = [("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH0_AUDIENCE", "api")];
        let cases: &[(&str, &str, &str)] = &[
            ("PORT", "eighty", "PORT"),
            ("AUTH0_ALGORITHMS", "HS256", "AUTH0_ALGORITHMS"),
            ("AUTH0_ALGORITHMS", "none", "AUTH0_ALGORITHMS"),
            ("AUTH0_ISSUER", "https://t.auth0.com", "AUTH0_ISSUER"),
            ("AUTH0_ISSUER", "http://t.auth0.com/", "AUTH0_ISSUER"),
            (
                "AUTH0_JWKS_URL",
                "http://evil.example/jwks",
                "AUTH0_JWKS_URL",
            ),
            ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
            ("DATABASE_POOL_SIZE", "0", "DATABASE_POOL_SIZE"),
            ("TRUSTED_PROXIES", "10.0.0.0/33", "TRUSTED_PROXIES"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example/path",
                "CORS_ALLOWED_ORIGINS",
            ),
            ("JWKS_TIMEOUT_SECS", "0", "JWKS_TIMEOUT_SECS"),
        ];
        for (var, value, expected) in cases {
            let mut vars = base.to_vec();
            vars.push((var, value));
            let err = settings(&vars).expect_err(&format!("{var}={value} must be refused"));
            assert_eq!(err.var, *expected, "{var}={value}: {err}");
        }
        assert_eq!(
            settings(&[("AUTH0_AUDIENCE", "api")])
                .expect_err("no domain")
                .var,
            "AUTH0_DOMAIN"
        );
        assert_eq!(
            settings(&[("AUTH0_DOMAIN", "t.auth0.com")])
                .expect_err("no audience")
                .var,
            "AUTH0_AUDIENCE"
        );
    }

    #[test]
    fn loopback_http_issuer_is_allowed_for_tests() {
        let s = settings(&[
            ("AUTH0_ISSUER", "http://127.0.0.1:9999/"),
            ("AUTH0_AUDIENCE", "api"),
        ])
        .expect("loopback issuer");
        assert_eq!(
            s.auth.jwks_url.as_str(),
            "http://127.0.0.1:9999/.well-known/jwks.json"
        );
    }

    #[test]
    fn wildcard_and_ipv6_hosts_become_reachable_url_hosts() {
        for (listen, url_host) in [
            ("0.0.0.0", "127.0.0.1"),
            ("::", "[::1]"),
            ("::1", "[::1]"),
            ("10.1.2.3", "10.1.2.3"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(reachable_host(listen), url_host, "{listen}");
        }
    }

    #[test]
    fn dev_mode_needs_no_tenant() {
        let s = Settings::from_lookup(|_| None, true).expect("dev settings");
        assert_eq!(s.auth.issuer, "http://localhost:8000/");
        assert_eq!(s.auth.audiences, vec![DEV_AUDIENCE]);
    }
}
