//! The app as production wires it, on 127.0.0.1:0, against an in-process
//! test issuer and a real database (SQLite, or PostgreSQL via
//! TEST_DATABASE_URL); and the requests the tests send it.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use actix_web::web;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use usergate::{Application, Settings};

use super::{
    AUDIENCE,
    assert::{assert_user, expect_json},
    db::Backend,
    issuer::{JwksMode, TestIssuer},
    keys::{TestKey, keys},
};

/// The sub of the admin [`TestApp::spawn_with_admin`] makes.
pub const ADMIN: &str = "auth0|admin";
/// Every users permission.
pub const ALL: &[&str] = &["read:users", "create:users", "update:users", "delete:users"];

/// A running usergate.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The issuer the app trusts.
    pub issuer: TestIssuer,
    /// A client that keeps no cookies and follows no redirects.
    pub client: reqwest::Client,
    /// The database URL the app uses.
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Options for [`TestApp::spawn_with`].
pub struct Options {
    /// Database backend.
    pub backend: Backend,
    /// Extra or overriding environment variables.
    pub env: HashMap<String, String>,
    /// Keys the issuer starts with.
    pub issuer_keys: Vec<TestKey>,
    /// JWKS behaviour at start.
    pub mode: JwksMode,
}

impl Options {
    /// Defaults: the primary key, JWKS up, no extra variables.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            env: HashMap::new(),
            issuer_keys: vec![keys().primary.clone()],
            mode: JwksMode::Up,
        }
    }

    /// Sets one environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }
}

impl TestApp {
    /// The app on SQLite with default settings, ready (keys loaded).
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::new(Backend::Sqlite)).await
    }

    /// The app on `backend`, ready (keys loaded).
    pub async fn spawn_on(backend: Backend) -> Self {
        Self::spawn_with(Options::new(backend)).await
    }

    /// The app on `backend` and a token of [`ADMIN`] holding every users
    /// permission; the admin's row exists, with the smallest id.
    pub async fn spawn_with_admin(backend: Backend) -> (Self, String) {
        let app = Self::spawn_on(backend).await;
        let admin = app.token(ADMIN, ALL);
        expect_json(app.get_me(&admin).await, 200, "admin's first request").await;
        (app, admin)
    }

    /// The app with options; waits for readiness only when the JWKS is up.
    pub async fn spawn_with(options: Options) -> Self {
        let key_refs: Vec<&TestKey> = options.issuer_keys.iter().collect();
        let issuer = TestIssuer::start(&key_refs);
        issuer.set_mode(options.mode.clone());
        let (database_url, dir) = options.backend.fresh_database();
        let mut env: HashMap<String, String> = [
            ("AUTH0_ISSUER", issuer.issuer.as_str()),
            ("AUTH0_AUDIENCE", AUDIENCE),
            ("DATABASE_URL", database_url.as_str()),
            ("DATABASE_POOL_SIZE", "4"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("JWKS_COOLDOWN_SECS", "30"),
            ("JWKS_TIMEOUT_SECS", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.extend(options.env);
        let settings =
            Settings::from_lookup(|k| env.get(k).cloned(), false).expect("test settings");
        let app = Application::build(settings).await.expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        actix_web::rt::spawn(app.run());
        let test_app = Self {
            address,
            issuer,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            database_url,
            _dir: dir,
        };
        if matches!(options.mode, JwksMode::Up) {
            test_app.wait_ready().await;
        }
        test_app
    }

    /// Polls `/readyz` until it answers 200 (at most 10 s).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the app did not become ready");
    }

    /// An absolute URL on the app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A valid token for `sub` with `permissions`.
    pub fn token(&self, sub: &str, permissions: &[&str]) -> String {
        self.issuer.token(sub, permissions)
    }

    /// A token for `sub` whose claims are patched with `extra` (e.g. email, name, scope).
    pub fn token_with(&self, sub: &str, permissions: &[&str], extra: &Value) -> String {
        let mut claims = self.issuer.claims(sub, permissions);
        for (key, value) in extra.as_object().expect("object") {
            claims[key] = value.clone();
        }
        keys().primary.sign(&claims)
    }

    // ------------------------------------------------------------ requests

    /// `GET path` without credentials.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `GET /users/me`.
    pub async fn get_me(&self, token: &str) -> Response {
        self.get("/users/me", token).await
    }

    /// `method path` with a bearer token and a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `method path` with a bearer token and a raw body, sent with
    /// `content_type` (none when `None`).
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request")
    }

    /// `DELETE path` with a bearer token.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// POSTs `body` to `path` with `Transfer-Encoding: chunked` (no
    /// Content-Length) over a raw connection; returns the status line's code
    /// and the whole response.
    pub async fn post_chunked(&self, path: &str, token: &str, body: Vec<u8>) -> (u16, String) {
        let host = self.address.trim_start_matches("http://").to_owned();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        web::block(move || {
            let mut stream = TcpStream::connect(&host).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            // The server may answer before reading everything; what matters is the answer.
            let _ = (|| -> std::io::Result<()> {
                stream.write_all(head.as_bytes())?;
                for chunk in body.chunks(8192) {
                    write!(stream, "{:x}\r\n", chunk.len())?;
                    stream.write_all(chunk)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")
            })();
            let mut response = Vec::new();
            let _ = stream.read_to_end(&mut response);
            let response = String::from_utf8_lossy(&response).into_owned();
            let status = response
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no status line in {response:?}"));
            (status, response)
        })
        .await
        .expect("blocking task")
    }

    // ------------------------------------------------------------ users

    /// `POST /users` as an admin; returns the created user.
    pub async fn create_user(&self, admin: &str, body: Value) -> Value {
        let r = self.send_json(Method::POST, "/users", admin, &body).await;
        assert_eq!(r.status(), 201, "create {body}");
        r.json().await.expect("user json")
    }

    /// `GET /users/{id}`, which must answer 200.
    pub async fn get_user(&self, admin: &str, id: i64) -> Value {
        let context = format!("GET /users/{id}");
        expect_json(
            self.get(&format!("/users/{id}"), admin).await,
            200,
            &context,
        )
        .await
    }

    /// `GET /users{query}`, asserting the list shape.
    pub async fn list(&self, token: &str, query: &str) -> Value {
        let context = format!("GET /users{query}");
        let page = expect_json(
            self.get(&format!("/users{query}"), token).await,
            200,
            &context,
        )
        .await;
        let mut members: Vec<&str> = page
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        assert_eq!(
            members,
            ["count", "next", "previous", "results"],
            "{context}"
        );
        assert!(page["count"].is_i64(), "{context}: count");
        for user in page["results"].as_array().expect("results") {
            assert_user(user, &json!({}), &context);
        }
        page
    }

    /// How many users the table holds, as the list counts them.
    pub async fn count_users(&self, admin: &str) -> i64 {
        self.list(admin, "?limit=1").await["count"]
            .as_i64()
            .expect("count")
    }

    /// Follows `next` links from `url` to the last page; returns every page.
    pub async fn walk(&self, token: &str, url: String) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut url = Some(url);
        while let Some(next) = url {
            assert!(pages.len() < 100, "next links loop: {next}");
            let r = self
                .client
                .get(&next)
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            let page = expect_json(r, 200, &next).await;
            url = page["next"].as_str().map(str::to_owned);
            pages.push(page);
        }
        pages
    }
}

/// `?search=…`, encoded.
pub fn search(text: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("search", text)
        .finish();
    format!("?{query}")
}

/// The `id` of a User JSON.
pub fn id_of(user: &Value) -> i64 {
    user["id"].as_i64().expect("id")
}

/// The subs of a list page, in order.
pub fn subs(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|u| u["sub"].as_str().expect("sub").to_owned())
        .collect()
}

/// The ids of a list page, in order.
pub fn ids(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(id_of)
        .collect()
}
