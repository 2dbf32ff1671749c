//! One access line per request: in text as before, and with fields for
//! `LOG_FORMAT=json` (request id, method, route pattern, status, duration,
//! replica, trace id). Nothing a client sends reaches it unbounded.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};

use super::{
    request_id::X_REQUEST_ID,
    routes::{method_label, route_label},
};

/// The log target of access lines.
pub const TARGET: &str = "usergate::access";

/// Which process answered: the host name and port, distinct per replica.
#[derive(Debug, Clone)]
pub struct ReplicaId(pub String);

/// The trace id of a valid W3C `traceparent` value; used for logs only.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = parts.next().is_none()
        && hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then_some(trace)
}

/// Middleware: logs the request once it is answered (the path, never the query).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let method = method_label(req.method());
    let trace = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(trace_id)
        .map(str::to_owned);
    let replica = req.app_data::<web::Data<ReplicaId>>().cloned();
    let response = next.call(req).await?;
    let request = response.request();
    let route = route_label(request);
    let request_id = response
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let status = response.status().as_u16();
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    let peer = request
        .peer_addr()
        .map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
    let replica = replica.as_deref().map_or("-", |r| r.0.as_str());
    log::info!(
        target: TARGET,
        request_id,
        method,
        route = route.as_str(),
        status,
        duration_ms,
        replica,
        trace_id = trace.as_deref().unwrap_or_default();
        "{peer} \"{method} {}\" {status} {duration_ms:.3}ms request_id={request_id}",
        request.path()
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_traceparents_give_a_trace_id() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-\"}{injected-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_id(bad), None, "{bad:?}");
        }
    }
}
