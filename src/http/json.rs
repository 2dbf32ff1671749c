//! JSON request bodies whose failures are problem+json naming the field.

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, error::PayloadError, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::RequestError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body: `application/json`, at most 64 KiB, every field checked by
/// its type; errors name the JSON path at fault.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = RequestError;
    type Future = LocalBoxFuture<'static, Result<Self, RequestError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        });
        let body = web::Bytes::from_request(req, payload);
        let too_large = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|len| len > MAX_BODY_BYTES);
        Box::pin(async move {
            if too_large {
                return Err(RequestError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            let bytes = body.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => RequestError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                _ => RequestError::BadRequest("the request body could not be read".into()),
            })?;
            // Without a Content-Length (chunked, or compressed) only the bytes tell.
            if bytes.len() > MAX_BODY_BYTES {
                return Err(RequestError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            if !is_json {
                return Err(RequestError::BadRequest(
                    "the body must be JSON, sent as Content-Type: application/json".into(),
                ));
            }
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Deserializes a JSON object, naming the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    // serde would read a struct from an array of its fields in order; a body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(RequestError::invalid("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return RequestError::BadRequest(format!("the body is not valid JSON: {inner}"));
        }
        let detail = strip_position(&inner.to_string());
        if path == "." || path.is_empty() {
            // Missing and unknown fields are reported at the top level; name them.
            let field = quoted_name(&detail).unwrap_or_else(|| "body".into());
            RequestError::invalid(field, detail)
        } else {
            RequestError::invalid(path, detail)
        }
    })?;
    // One value, then only whitespace: a proxy or an audit log reading a
    // second value must not see other fields than the handler.
    de.end().map_err(|_| {
        RequestError::BadRequest(
            "the body must be exactly one JSON value, with nothing after it".into(),
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; a client needs the field, not that.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The first `name` in backquotes, as serde writes field names.
fn quoted_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        sub: String,
        is_active: Option<bool>,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json::<Body>(json.as_bytes()) {
            Err(RequestError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"sub": "a", "is_active": "yes"}"#).as_deref(),
            Some("is_active")
        );
        assert_eq!(field_of(r#"{"is_active": true}"#).as_deref(), Some("sub"));
        assert_eq!(
            field_of(r#"{"sub": "a", "admin": true}"#).as_deref(),
            Some("admin")
        );
        assert_eq!(field_of(r#" ["a", true]"#).as_deref(), Some("body"));
        assert!(matches!(
            parse_json::<Body>(b"{not json"),
            Err(RequestError::BadRequest(_))
        ));
    }

    #[test]
    fn a_body_is_exactly_one_json_value() {
        for body in [
            r#"{"sub":"a"}{"sub":"b"}"#,
            r#"{"sub":"a"} garbage"#,
            r#"{"sub":"a"} 1"#,
        ] {
            assert!(
                matches!(
                    parse_json::<Body>(body.as_bytes()),
                    Err(RequestError::BadRequest(_))
                ),
                "{body}"
            );
        }
        assert!(parse_json::<Body>(b" {\"sub\":\"a\"} \n").is_ok());
    }
}
