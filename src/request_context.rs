//! Per-request context: the request id, and the public URL the client sees.

use actix_web::{
    Error, HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};

use crate::config::Settings;

/// The request id header, read from clients and always answered.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of one request.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

tokio::task_local! {
    /// The id of the request being served, for error bodies.
    static REQUEST_ID: HeaderValue;
}

/// A client's id is kept when short and plain; otherwise a fresh one is made.
fn accept_or_make(incoming: Option<&HeaderValue>) -> HeaderValue {
    incoming
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 128
                && b.iter().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
                })
        })
        .cloned()
        .unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4();
            let mut buf = uuid::Uuid::encode_buffer();
            HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
                .unwrap_or_else(|_| HeaderValue::from_static("-"))
        })
}

/// Middleware: gives the request an id, exposes it to error bodies and
/// returns it; points every Bearer challenge at the RFC 9728 metadata.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = accept_or_make(req.headers().get(&X_REQUEST_ID));
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    if let Some(challenge) = response.headers().get(header::WWW_AUTHENTICATE) {
        let url = format!(
            "{}/.well-known/oauth-protected-resource",
            public_base_url(response.request())
        );
        let mut value = challenge.as_bytes().to_vec();
        value.extend_from_slice(b", resource_metadata=\"");
        value.extend_from_slice(url.as_bytes());
        value.push(b'"');
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    Ok(response)
}

/// The current request's id, when called while serving one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// `scheme://host` as the client sees it: forwarded headers count only when
/// the peer is one of `TRUSTED_PROXIES`.
pub fn public_base_url(req: &HttpRequest) -> String {
    let trusted = req.app_data::<web::Data<Settings>>().is_some_and(|s| {
        req.peer_addr()
            .is_some_and(|peer| s.trusted_proxies.iter().any(|net| net.contains(&peer.ip())))
    });
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
    fn plain_ids_are_kept_and_others_replaced() {
        let kept = HeaderValue::from_static("abc-123");
        assert_eq!(accept_or_make(Some(&kept)), kept);
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).expect("header value");
            let made = accept_or_make(Some(&value));
            assert_ne!(made, value, "{bad:?}");
            assert_eq!(made.len(), 36, "a fresh uuid replaces {bad:?}");
        }
    }
}
