//! Typed settings, read once from the environment and validated at start,
//! in sections: each subcommand loads only the sections it needs.

mod auth;
mod dpop;
mod http;

use std::{ops::RangeInclusive, path::PathBuf, str::FromStr, time::Duration};

pub use auth::{AuthSettings, PermissionsFrom, is_loopback};
pub use dpop::DpopSettings;
pub use http::{HttpSettings, Listen, is_loopback_host, reachable_host};

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

    /// Whole seconds within `range`; anything outside is refused naming `var`.
    fn secs_in(
        &self,
        var: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(var, default)?;
        if !range.contains(&secs) {
            return Err(ConfigError::new(
                var,
                format!(
                    "must be between {} and {} seconds (got {secs})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(Duration::from_secs(secs))
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
    /// DPoP proofs.
    pub dpop: DpopSettings,
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
        if dev_mode && !is_loopback_host(&http.listen.host) {
            // The dev key and its printed all-permissions token must never be
            // reachable from another machine (the Docker image sets 0.0.0.0).
            return Err(ConfigError::new(
                "HOST",
                format!(
                    "serve --dev listens on loopback only (got {}); unset HOST or set HOST=127.0.0.1",
                    http.listen.host
                ),
            ));
        }
        Ok(Self {
            auth: AuthSettings::from_env(&env, dev_mode, http.listen.port)?,
            http,
            database: DatabaseSettings::from_env(&env)?,
            dev: DevSettings::from_env(&env, dev_mode),
            dpop: DpopSettings::from_env(&env)?,
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
    /// The tenant settings that are set but that dev mode does not use.
    pub ignored: Vec<&'static str>,
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
            ignored: if enabled {
                DEV_IGNORED
                    .iter()
                    .copied()
                    .filter(|var| env.get(var).is_some())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// What dev mode replaces by its own issuer and key.
const DEV_IGNORED: &[&str] = &["AUTH0_DOMAIN", "AUTH0_ISSUER", "AUTH0_JWKS_URL"];

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::http::PublicUrl;

    pub(super) fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
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
        assert_eq!(s.auth.issuers, ["https://example.eu.auth0.com/"]);
        assert_eq!(s.auth.jwks_url, None, "found through discovery");
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
            (
                "AUTH0_ISSUER",
                "https://a.example/, https://b.example",
                "AUTH0_ISSUER",
            ),
            ("AUTH0_ISSUER", " , ", "AUTH0_ISSUER"),
            ("AUTH_PERMISSIONS_FROM", "roles", "AUTH_PERMISSIONS_FROM"),
            ("AUTH_PERMISSIONS_FROM", " , ", "AUTH_PERMISSIONS_FROM"),
            ("AUTH_REQUIRE_AT_JWT", "yes please", "AUTH_REQUIRE_AT_JWT"),
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
    fn durations_outside_their_range_are_refused_naming_the_variable() {
        let base = [("AUTH0_DOMAIN", "t.auth0.com"), ("AUTH0_AUDIENCE", "api")];
        for (var, value) in [
            ("JWKS_COOLDOWN_SECS", "0"),
            ("JWKS_COOLDOWN_SECS", "3601"),
            ("AUTH_LEEWAY_SECS", "18446744073709551615"),
            ("AUTH_LEEWAY_SECS", "301"),
            ("JWKS_REFRESH_SECS", "0"),
            ("JWKS_REFRESH_SECS", "86401"),
            ("JWKS_TIMEOUT_SECS", "61"),
            ("SHUTDOWN_DRAIN_SECS", "301"),
            ("SHUTDOWN_DRAIN_SECS", "-1"),
            ("PUBLIC_URL", "https://api.example.com/v1"),
            ("PUBLIC_URL", "api.example.com"),
            ("METRICS_ADDR", "9000"),
        ] {
            let mut vars = base.to_vec();
            vars.push((var, value));
            let err = settings(&vars).expect_err(&format!("{var}={value} must be refused"));
            assert_eq!(err.var, var, "{var}={value}: {err}");
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        let mut vars = base.to_vec();
        vars.extend([
            ("AUTH_LEEWAY_SECS", "300"),
            ("JWKS_COOLDOWN_SECS", "1"),
            ("SHUTDOWN_DRAIN_SECS", "0"),
            ("PUBLIC_URL", "https://api.example.com/"),
            ("METRICS_ADDR", "0.0.0.0:9000"),
        ]);
        let s = settings(&vars).expect("values at the bounds");
        assert_eq!(s.auth.leeway_secs, 300);
        assert_eq!(
            s.http.public_url.as_ref().map(PublicUrl::as_str),
            Some("https://api.example.com")
        );
    }

    #[test]
    fn dev_mode_refuses_a_host_other_machines_reach() {
        let dev =
            |host: &str| Settings::from_lookup(|k| (k == "HOST").then(|| host.to_owned()), true);
        for host in ["0.0.0.0", "::", "10.1.2.3", "example.com"] {
            let err = dev(host).expect_err(host);
            assert_eq!(err.var, "HOST", "{host}");
        }
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            assert!(dev(host).is_ok(), "{host}");
        }
    }

    #[test]
    fn dev_mode_names_the_tenant_settings_it_ignores() {
        let vars: HashMap<&str, &str> = [
            ("AUTH0_DOMAIN", "t.auth0.com"),
            ("AUTH0_JWKS_URL", "https://t.auth0.com/jwks"),
            ("AUTH0_AUDIENCE", "api"),
        ]
        .into();
        let s = Settings::from_lookup(|k| vars.get(k).map(|v| v.to_string()), true)
            .expect("dev settings");
        assert_eq!(s.dev.ignored, ["AUTH0_DOMAIN", "AUTH0_JWKS_URL"]);
    }

    #[test]
    fn loopback_http_issuer_is_allowed_for_tests() {
        let s = settings(&[
            ("AUTH0_ISSUER", "http://127.0.0.1:9999/"),
            ("AUTH0_AUDIENCE", "api"),
        ])
        .expect("loopback issuer");
        assert_eq!(s.auth.issuers, ["http://127.0.0.1:9999/"]);
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
        assert_eq!(s.auth.issuers, ["http://localhost:8000/"]);
        assert_eq!(s.auth.audiences, vec![DEV_AUDIENCE]);
    }
}
