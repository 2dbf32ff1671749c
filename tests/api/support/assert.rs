//! Assertions on answers: problem+json, JSON successes, the User shape, the
//! one header reader, challenges, and an answer as text for snapshots.

use chrono::{DateTime, FixedOffset};
use reqwest::Response;
use serde_json::Value;

use super::{app::TestApp, dpop::ALGS};

/// The value of header `name`, `None` when absent. A header sent more than
/// once, or not visible ASCII, fails the test: no caller expects either.
pub fn header(response: &Response, name: &str) -> Option<String> {
    let mut values = response.headers().get_all(name).iter();
    let value = values.next()?;
    assert!(
        values.next().is_none(),
        "{name} is sent more than once: {:?}",
        response.headers()
    );
    let text = value
        .to_str()
        .unwrap_or_else(|_| panic!("{name} is not visible ASCII: {value:?}"));
    Some(text.to_owned())
}

/// The whole `WWW-Authenticate` value of the app at `base` (`DPOP_MODE`
/// allowed, the default): `Bearer`, the parameters, the `resource_metadata`
/// every challenge points at, then the `DPoP` challenge beside it.
pub fn challenge(base: &str, params: &str) -> String {
    format!(r#"{}, DPoP algs="{ALGS}""#, bearer_challenge(base, params))
}

/// The `WWW-Authenticate` value with DPoP disabled: `Bearer` alone.
pub fn bearer_challenge(base: &str, params: &str) -> String {
    format!(r#"Bearer {params}, resource_metadata="{base}/.well-known/oauth-protected-resource""#)
}

/// The `WWW-Authenticate` value of a refused DPoP proof (or of any refusal
/// with DPoP required, then without the trailing `Bearer`): `DPoP`, the
/// parameters, `resource_metadata`, then the `Bearer` challenge beside it.
pub fn dpop_challenge(base: &str, params: &str) -> String {
    format!(
        r#"DPoP {params}, resource_metadata="{base}/.well-known/oauth-protected-resource", Bearer realm="usergate""#
    )
}

/// Asserts a problem+json answer and returns its body.
pub async fn assert_problem(response: Response, status: u16, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context}: status");
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/problem+json"),
        "{context}: content type"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{context}: body status");
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].is_string(),
            "{context}: problem lacks {member}: {body}"
        );
    }
    body
}

/// Asserts a 401 `invalid_token` answer saying `description`, whole: the
/// challenge, the problem type and its detail.
pub async fn assert_invalid_token(response: Response, description: &str, context: &str) {
    let base = response.url().origin().ascii_serialization();
    assert_eq!(
        header(&response, "www-authenticate"),
        Some(challenge(
            &base,
            &format!(
                r#"realm="usergate", error="invalid_token", error_description="{description}""#
            )
        )),
        "{context}: the whole challenge"
    );
    let body = assert_problem(response, 401, context).await;
    assert_eq!(
        body["type"], "urn:usergate:problem:invalid-token",
        "{context}"
    );
    assert_eq!(
        body["detail"],
        format!("invalid token: {description}"),
        "{context}"
    );
}

/// Asserts a JSON success answer and returns its body.
pub async fn expect_json(response: Response, status: u16, context: &str) -> Value {
    let got = response.status().as_u16();
    let content_type = header(&response, "content-type");
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{context}: status (body {text})");
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "{context}: content type"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"))
}

/// The members of the User JSON, sorted.
const USER_FIELDS: &[&str] = &[
    "created_at",
    "email",
    "id",
    "is_active",
    "last_seen_at",
    "name",
    "sub",
    "updated_at",
];

/// A UTC RFC 3339 time member of `user`.
pub fn time(user: &Value, field: &str) -> DateTime<FixedOffset> {
    let text = user[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {user}"));
    assert!(text.ends_with('Z'), "{field} is UTC: {text}");
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
}

/// Asserts the User JSON shape and the members of `expected`.
pub fn assert_user(user: &Value, expected: &Value, context: &str) {
    let mut fields: Vec<&str> = user
        .as_object()
        .unwrap_or_else(|| panic!("{context}: not an object: {user}"))
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, USER_FIELDS, "{context}: fields of {user}");
    assert!(
        user["id"].as_i64().is_some_and(|id| id > 0),
        "{context}: id {user}"
    );
    assert!(
        user["is_active"].is_boolean(),
        "{context}: is_active {user}"
    );
    for field in ["email", "name"] {
        assert!(
            user[field].is_null() || user[field].is_string(),
            "{context}: {field} {user}"
        );
    }
    let created = time(user, "created_at");
    assert!(time(user, "updated_at") >= created, "{context}: {user}");
    if !user["last_seen_at"].is_null() {
        time(user, "last_seen_at");
    }
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(&user[key], value, "{context}: {key} of {user}");
    }
}

/// Whether `id` is a version 4 uuid, as request ids usergate makes are.
pub fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
}

/// The whole answer as text, for a snapshot: status line, every header but
/// `Date` (by name), a blank line, the body byte for byte. What varies per
/// run is replaced: the request id (a fresh uuid) by `[request-id]`, and
/// `base`, the app's address with its port, by `http://127.0.0.1:[PORT]`.
pub async fn answer_text(response: Response, base: &str) -> String {
    let id = header(&response, "x-request-id").expect("X-Request-Id");
    assert!(is_uuid(&id), "X-Request-Id is a fresh uuid: {id}");
    let mut text = format!("{:?} {}\n", response.version(), response.status());
    let mut headers: Vec<(&str, &str)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| {
            let value = value.to_str().expect("visible ASCII header");
            (name.as_str(), value)
        })
        .collect();
    // By name only: a header sent twice keeps its order.
    headers.sort_by_key(|(name, _)| *name);
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push('\n');
    text.push_str(&response.text().await.expect("body"));
    text.replace(&id, "[request-id]")
        .replace(base, "http://127.0.0.1:[PORT]")
}

/// The `/metrics` text of `app` (asserting a 200 Prometheus answer).
pub async fn metrics_text(app: &TestApp) -> String {
    let r = app.get_anonymous("/metrics").await;
    assert_eq!(r.status(), 200);
    let content_type = header(&r, "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.expect("metrics text")
}

/// The value of the one sample `series` (a name, with its labels if any)
/// in the Prometheus `text`; `None` when it is not there.
pub fn series_value(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
}

/// The sum of metric `name`'s samples whose labels contain `labels` in the
/// Prometheus `text` (0 when there is none).
pub fn sample(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
