//! The `http` section: where the server listens and how it builds URLs.

use std::{net::SocketAddr, time::Duration};

use url::Url;

use super::{ConfigError, Env, split_list};
use crate::http::{PublicUrl, TrustedProxies};

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
    /// The base URL clients use (`PUBLIC_URL`); every absolute URL is built
    /// from it when set, and never from `Host` or forwarded headers.
    pub public_url: Option<PublicUrl>,
    /// Where `/metrics` is served instead of the API port (`METRICS_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
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
            shutdown_drain: env.secs_in("SHUTDOWN_DRAIN_SECS", 5, 0..=300)?,
            public_url: env
                .get("PUBLIC_URL")
                .map(|url| PublicUrl::parse(&url).map_err(|p| ConfigError::new("PUBLIC_URL", p)))
                .transpose()?,
            metrics_addr: env
                .get("METRICS_ADDR")
                .map(|addr| parse_socket_addr("METRICS_ADDR", &addr))
                .transpose()?,
        })
    }
}

/// Whether a listen address only accepts connections from this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

fn parse_socket_addr(var: &'static str, addr: &str) -> Result<SocketAddr, ConfigError> {
    addr.parse().map_err(|_| {
        ConfigError::new(
            var,
            format!("{addr:?} is not an IP address and port like 0.0.0.0:9000"),
        )
    })
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
