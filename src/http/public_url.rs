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

/// The base URL clients use (`PUBLIC_URL`): `scheme://host[:port]`, no
/// path, query or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses an `http(s)://host[:port]` URL; a trailing `/` is allowed.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let shape = "must be a base URL like https://api.example.com (http or https, host, optional port; no path, query or credentials)";
        let url = url::Url::parse(raw).map_err(|e| format!("{shape} ({e}): {raw}"))?;
        let bare = matches!(url.scheme(), "http" | "https")
            && url.host().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && !raw.trim_end_matches('/').ends_with('?');
        if !bare {
            return Err(format!("{shape}: {raw}"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// `scheme://host[:port]`, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `scheme://host` as the client sees it: `PUBLIC_URL` alone when set;
/// otherwise the request's `Host` (or a trusted proxy's forwarded host),
/// when it is a well-formed authority, else the server's own address.
pub fn public_base_url(req: &HttpRequest) -> String {
    if let Some(Some(public)) = req
        .app_data::<web::Data<Option<PublicUrl>>>()
        .map(|d| d.get_ref())
    {
        return public.0.clone();
    }
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
    let host = if is_authority(&host) {
        host
    } else {
        req.app_config().host().to_owned()
    };
    format!("{scheme}://{host}")
}

/// `host[:port]` as RFC 3986 writes an authority without credentials: a DNS
/// name, an IPv4 address or a bracketed IPv6 address, and a port of 1 to
/// 65535. Anything else is never echoed back into a URL.
pub fn is_authority(authority: &str) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_dns_name(host),
    };
    port_ok && host_ok
}

/// Dot-separated labels of letters, digits, `_` and inner hyphens, at most 253
/// characters (IPv4 addresses are of this shape too).
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
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

    #[test]
    fn only_well_formed_authorities_are_echoed() {
        for good in [
            "api.example.com",
            "api.example.com:8443",
            "127.0.0.1:8000",
            "[::1]:8000",
            "[2001:db8::1]",
            "localhost",
        ] {
            assert!(is_authority(good), "{good}");
        }
        for bad in [
            "",
            "evil.example/path",
            "user@evil.example",
            "evil.example:0",
            "evil.example:99999",
            "evil.example:",
            "a..b",
            "-evil.example",
            "[::1",
            "[not-v6]:80",
            "evil.example:80:80",
            "a b",
        ] {
            assert!(!is_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn public_urls_are_bare_http_bases() {
        assert_eq!(
            PublicUrl::parse("https://api.example.com/").map(|u| u.as_str().to_owned()),
            Ok("https://api.example.com".to_owned())
        );
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:8000").map(|u| u.as_str().to_owned()),
            Ok("http://127.0.0.1:8000".to_owned())
        );
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://api.example.com/v1",
            "https://api.example.com/?a=b",
            "https://user:pw@api.example.com",
            "https://api.example.com/#top",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
