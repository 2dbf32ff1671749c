//! Request ids: taken from the client when plain, made otherwise, echoed on
//! every answer and repeated in problem bodies.

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
};

/// The request id header, read from clients and always answered.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

/// Middleware: gives the request an id, exposes it to error bodies and returns it.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = accept_or_make(req.headers().get(&X_REQUEST_ID));
    let mut response = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    Ok(response)
}

/// The current request's id, when called while serving one.
pub fn current() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
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
