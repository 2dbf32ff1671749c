//! Property tests: the parsers a client feeds never panic, and through the
//! real app arbitrary credentials, query strings and bodies never get a 5xx.
//!
//! Each property runs proptest's default 256 cases; for a longer search run
//! e.g. `PROPTEST_CASES=20000 cargo test --test api hardening::properties`.

use std::{sync::mpsc, thread, time::Duration};

use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use usergate::{
    auth::{Credentials, key_set::KeySet, token::UnverifiedToken},
    http::json::parse_json,
    users::{
        dto::{CreateUser, MeChanges, UpdateUser},
        query::ListParams,
    },
};

use crate::support::app::TestApp;

fn config() -> Config {
    Config {
        // A failure is turned into a named regression test, not a file.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text shaped like the inputs: mostly token characters, some of anything.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_\\-.=+/~ ]{0,64}",
        any::<String>(),
        "(?i)(bearer|dpop|basic) {0,3}[ -~]{0,80}",
    ]
}

/// A compact JWS of arbitrary JSON-ish header and payload.
fn jws_like() -> impl Strategy<Value = String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let json = prop_oneof![
        "\\{(\"(alg|kid|typ|crit|enc|jwk|x5c|iss|exp|aud|sub)\":(\"[ -~]{0,12}\"|[0-9eE.+-]{1,12}|null|true|\\[\\]|\\{\\}),?){0,6}\\}",
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    (json.clone(), json, "[A-Za-z0-9_-]{0,40}", 0..6usize).prop_map(
        |(header, payload, signature, dots)| {
            let mut token = format!(
                "{}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            token.push_str(&".x".repeat(dots.saturating_sub(3)));
            token
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_authorization_parser_never_panics(value in token_like()) {
        let _ = Credentials::parse(&value);
    }

    #[test]
    fn the_unverified_token_parser_never_panics(token in prop_oneof![token_like(), jws_like()]) {
        if let Ok(parsed) = UnverifiedToken::parse(&token) {
            let _ = (parsed.issuer(), parsed.audiences());
        }
    }

    #[test]
    fn the_jwks_parser_never_panics(body in prop_oneof![
        any::<Vec<u8>>(),
        "\\{\"keys\":\\[(\\{(\"(kty|kid|n|e|x|y|crv|alg|use|key_ops)\":(\"[A-Za-z0-9_-]{0,16}\"|\\[\"(sign|verify)\"\\]|1),?){0,8}\\},?){0,3}\\]\\}"
            .prop_map(String::into_bytes),
    ]) {
        let _ = KeySet::from_jwks_json(&body, &[jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::ES256]);
    }

    #[test]
    fn the_list_query_parser_never_panics(
        limit in proptest::option::of(token_like()),
        offset in proptest::option::of("[0-9]{0,30}|[ -~]{0,10}"),
        search in proptest::option::of(any::<String>()),
        ordering in proptest::option::of("-?(id|email|created_at|[ -~]{0,10})"),
    ) {
        let _ = ListParams { limit, offset, search, ordering }.parse();
    }

    #[test]
    fn the_json_body_parser_never_panics(body in json_like()) {
        let _ = parse_json::<MeChanges>(body.as_bytes());
        let _ = parse_json::<CreateUser>(body.as_bytes());
        let _ = parse_json::<UpdateUser>(body.as_bytes());
        let _ = parse_json::<serde_json::Value>(body.as_bytes());
    }
}

proptest! {
    #![proptest_config(config())]

    /// What the extractor accepts, a strict reader (one value, then only
    /// whitespace) reads the same way: nothing hides after the value.
    #[test]
    fn the_json_body_parser_accepts_only_one_json_value(body in json_like()) {
        if parse_json::<serde_json::Value>(body.as_bytes()).is_ok() {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(body.as_bytes()).is_ok());
        }
        if let Ok(changes) = parse_json::<MeChanges>(body.as_bytes()) {
            let strict: serde_json::Value = serde_json::from_slice(body.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("accepted {body:?}, which is not one value: {e}")))?;
            prop_assert!(strict.is_object(), "{changes:?}");
        }
    }
}

/// Bodies shaped like the users' JSON, and anything at all.
fn json_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ ]?\\{(\"(sub|email|name|is_active|admin)\":(\"[^\"\\\\]{0,20}\"|true|false|null|-?[0-9]{1,20}|\\[\\]|\\{\\}),?){0,5}\\}[ -~]{0,4}",
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        any::<String>(),
    ]
}

// ------------------------------------------------------------ through the app

/// The app on its own thread and runtime, so that the property runner can
/// block on each request; stopped when dropped.
struct Served {
    address: String,
    admin: String,
    user: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Served {
    fn start() -> Self {
        let (ready, started) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = TestApp::spawn().await;
                let admin = app.token(
                    "auth0|prop-admin",
                    &["read:users", "create:users", "update:users", "delete:users"],
                );
                let user = app.token("auth0|prop-user", &[]);
                ready
                    .send((app.address.clone(), admin, user))
                    .expect("test thread waits");
                let _ = stopped.await;
            });
        });
        let (address, admin, user) = started
            .recv_timeout(Duration::from_secs(60))
            .expect("the app starts");
        Self {
            address,
            admin,
            user,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `property` with a client and a runtime to block on.
    fn check<S: Strategy>(
        &self,
        strategy: S,
        property: impl Fn(&reqwest::Client, &tokio::runtime::Runtime, S::Value) -> Option<u16>,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _context = runtime.enter();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        TestRunner::new(config())
            .run(&strategy, |value| {
                if let Some(status) = property(&client, &runtime, value) {
                    prop_assert!(status < 500, "answered {status}");
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `request` and returns its status; `None` when the client itself
/// refuses to send it (a value no HTTP client could put on the wire).
fn status(
    client: &reqwest::Client,
    runtime: &tokio::runtime::Runtime,
    request: reqwest::RequestBuilder,
) -> Option<u16> {
    let request = request.build().ok()?;
    runtime
        .block_on(client.execute(request))
        .ok()
        .map(|r| r.status().as_u16())
}

#[test]
fn arbitrary_authorization_values_never_get_a_5xx() {
    let served = Served::start();
    let url = format!("{}/users/me", served.address);
    let values = prop_oneof![
        token_like(),
        jws_like().prop_map(|t| format!("Bearer {t}")),
        any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    served.check(values, |client, runtime, value| {
        status(
            client,
            runtime,
            client.get(&url).header("authorization", value),
        )
    });
}

#[test]
fn arbitrary_query_strings_never_get_a_5xx() {
    let served = Served::start();
    let queries = prop_oneof![
        "((limit|offset|search|ordering|x)=[ -~]{0,24}&?){0,5}",
        "(limit=[0-9]{0,25}&offset=[0-9]{0,25}|search=%[0-9A-Fa-f]{2}[ -~]{0,8}|ordering=-?[a-z_]{0,12})",
        any::<String>(),
    ];
    served.check(queries, |client, runtime, query| {
        let mut url = reqwest::Url::parse(&format!("{}/users", served.address)).ok()?;
        url.set_query(Some(&query));
        status(client, runtime, client.get(url).bearer_auth(&served.admin))
    });
}

#[test]
fn arbitrary_bodies_never_get_a_5xx() {
    let served = Served::start();
    let cases = (json_like(), 0..4usize);
    served.check(cases, |client, runtime, (body, target)| {
        let (method, path, token) = match target {
            0 => (reqwest::Method::PATCH, "/users/me", &served.user),
            1 => (reqwest::Method::POST, "/users", &served.admin),
            2 => (reqwest::Method::PUT, "/users/1", &served.admin),
            _ => (reqwest::Method::PATCH, "/users/1", &served.admin),
        };
        let request = client
            .request(method, format!("{}{path}", served.address))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        status(client, runtime, request)
    });
}
