//! Typed settings, read once from the environment and validated at start,
//! in sections: each subcommand loads only the sections it needs.

mod auth;

use std::{path::PathBuf, str::FromStr, time::Duration};

pub use auth::AuthSettings;
use url::Url;

use crate::{db::DatabaseUrl, http::TrustedProxies};

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

/// Where variables come from; empty values count as unset.
pub struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl<'a> Env<'a> {
    /// Variables from any lookup (tests pass a map).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self(lookup)
    }

    /// A variable's trimmed value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse_or<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new(
                    var,
                    format!("must be a non-negative whole number (got {v:?})"),
                )
            }),
        }
    }

    fn secs(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.parse_or(var, default).map(Duration::from_secs)
    }

    fn positive_secs(&self, var: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let d = self.secs(var, default)?;
        if d.is_zero() {
            return Err(ConfigError::new(var, "must be at least 1 second"));
        }
        Ok(d)
    }
}

/// Reads the process environment (after `.env`, which `main` loads).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Everything the server needs to run, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where and how the server listens.
    pub http: HttpSettings,
    /// How tokens are verified.
    pub auth: AuthSettings,
    /// Where the `users` table lives.
    pub database: DatabaseSettings,
    /// The local dev issuer.
    pub dev: DevSettings,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env(dev_mode: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(process_env, dev_mode)
    }

    /// Builds every section from any variable lookup.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        dev_mode: bool,
    ) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let http = HttpSettings::from_env(&env)?;
        Ok(Self {
            auth: AuthSettings::from_env(&env, dev_mode, http.listen.port)?,
            http,
            database: DatabaseSettings::from_env(&env)?,
            dev: DevSettings::from_env(&env, dev_mode),
        })
    }
}

/// The listen address (`HOST`, `PORT`).
#[derive(Debug, Clone)]
pub struct Listen {
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free one.
    pub port: u16,
}

impl Listen {
    /// Reads `HOST` and `PORT`.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            host: env.get("HOST").unwrap_or_else(|| "127.0.0.1".into()),
            port: env.parse_or("PORT", 8000)?,
        })
    }
}

/// The `http` section.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where the server listens.
    pub listen: Listen,
    /// Browser origins allowed to call the API (`CORS_ALLOWED_ORIGINS`); empty = no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Load balancers whose forwarded headers are believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// How long `/readyz` answers 503 before the server stops (`SHUTDOWN_DRAIN_SECS`).
    pub shutdown_drain: Duration,
}

impl HttpSettings {
    /// Reads the section.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let cors_allowed_origins = env
            .get("CORS_ALLOWED_ORIGINS")
            .map(|list| split_list(&list))
            .unwrap_or_default()
            .into_iter()
            .map(|origin| parse_origin(&origin))
            .collect::<Result<_, _>>()?;
        let trusted_proxies =
            TrustedProxies::parse(&env.get("TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|problem| ConfigError::new("TRUSTED_PROXIES", problem))?;
        Ok(Self {
            listen: Listen::from_env(env)?,
            cors_allowed_origins,
            trusted_proxies,
            shutdown_drain: env.secs("SHUTDOWN_DRAIN_SECS", 5)?,
        })
    }
}

/// The `database` section.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`.
    pub url: DatabaseUrl,
    /// Connections in the pool (`DATABASE_POOL_SIZE`), at least 1.
    pub pool_size: u32,
}

impl DatabaseSettings {
    /// Reads the section.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = DatabaseUrl::parse(
            env.get("DATABASE_URL")
                .as_deref()
                .unwrap_or("sqlite://usergate.db"),
        )
        .map_err(|problem| ConfigError::new("DATABASE_URL", problem))?;
        let pool_size: u32 = env.parse_or("DATABASE_POOL_SIZE", 10)?;
        if pool_size == 0 {
            return Err(ConfigError::new("DATABASE_POOL_SIZE", "must be at least 1"));
        }
        Ok(Self { url, pool_size })
    }
}

/// The `dev` section.
#[derive(Debug, Clone)]
pub struct DevSettings {
    /// `serve --dev`: trust the local dev key instead of a tenant.
    pub enabled: bool,
    /// The dev signing key (`DEV_KEY_PATH`).
    pub key_path: PathBuf,
}

impl DevSettings {
    /// Reads the section.
    pub fn from_env(env: &Env<'_>, enabled: bool) -> Self {
        Self {
            enabled,
            key_path: env
                .get("DEV_KEY_PATH")
                .unwrap_or_else(|| ".usergate/dev-key.pem".into())
                .into(),
        }
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

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use jsonwebtoken::Algorithm;

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
