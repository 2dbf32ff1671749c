//! The base URL a client sees, for absolute links: forwarded headers count
//! only when the peer is a trusted proxy.

use std::net::IpAddr;

use actix_web::{HttpRequest, http::header, web};
use ipnet::IpNet;

/// Load balancers whose `X-Forwarded-*`/`Forwarded` headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of IPs and CIDRs.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|net| {
                net.parse::<IpNet>()
                    .or_else(|_| net.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{net:?} is not an IP address or CIDR"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// `scheme://host` as the client sees it.
pub fn public_base_url(req: &HttpRequest) -> String {
    let trusted = req
        .app_data::<web::Data<TrustedProxies>>()
        .is_some_and(|proxies| req.peer_addr().is_some_and(|p| proxies.contains(p.ip())));
    let (scheme, host) = if trusted {
        let info = req.connection_info();
        (info.scheme().to_owned(), info.host().to_owned())
    } else {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| req.app_config().host().to_owned());
        let scheme = if req.app_config().secure() {
            "https"
        } else {
            "http"
        };
        (scheme.to_owned(), host)
    };
    let scheme = if scheme == "https" { "https" } else { "http" };
    let host = if is_plain_host(&host) {
        host
    } else {
        req.app_config().host().to_owned()
    };
    format!("{scheme}://{host}")
}

/// Host names and `[v6]:port` forms only; anything else is not echoed back.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_ips_or_cidrs() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").expect("valid list");
        assert!(proxies.contains("10.1.2.3".parse().expect("ip")));
        assert!(proxies.contains("127.0.0.1".parse().expect("ip")));
        assert!(!proxies.contains("192.168.0.1".parse().expect("ip")));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert_eq!(TrustedProxies::parse(""), Ok(TrustedProxies::default()));
    }
}
