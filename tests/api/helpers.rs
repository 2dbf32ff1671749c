//! The app as production wires it, on 127.0.0.1:0, against an in-process
//! test issuer and a real database (SQLite, or PostgreSQL via TEST_DATABASE_URL).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::{
    encoding::{AsDer, PublicKeyX509Der},
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use usergate::{Application, Settings};

/// The audience every test token is for.
pub const AUDIENCE: &str = "https://api.usergate.test/";

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file.
    Sqlite,
    /// A fresh database on the server of `TEST_DATABASE_URL`.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL when `TEST_DATABASE_URL` is set; in CI its absence is a failure.
    pub fn postgres() -> Option<Self> {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI is set but TEST_DATABASE_URL is not: PostgreSQL tests must run in CI")
            }
            _ => {
                eprintln!(
                    "skipped: TEST_DATABASE_URL is not set, so the PostgreSQL variant does not run"
                );
                None
            }
        }
    }

    /// A new, empty database; returns its URL and what keeps it alive.
    pub fn fresh_database(&self) -> (String, Option<tempfile::TempDir>) {
        match self {
            Self::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("usergate.db");
                (format!("sqlite://{}", path.display()), Some(dir))
            }
            Self::Postgres(base) => (create_pg_database(base), None),
        }
    }
}

/// Creates a uniquely named database next to `base` and returns its URL.
pub fn create_pg_database(base: &str) -> String {
    let name = format!("usergate_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(base).expect("TEST_DATABASE_URL must be reachable");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("create test database");
    let mut url = url::Url::parse(base).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Runs each listed `async fn name(Backend)` as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::postgres() {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}

// ---------------------------------------------------------------- keys

/// A signing key of the test issuer, with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    /// Key id.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: Algorithm,
    /// Private key for signing.
    pub encoding: EncodingKey,
    /// The public JWK (with `kid`, `use`, `alg`).
    pub jwk: Value,
    /// The public key as PEM (for the HS256-with-public-key attack).
    pub public_pem: String,
}

impl TestKey {
    /// A new RSA-2048 key.
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
        let der = pair.as_der().expect("pkcs8");
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let spki: PublicKeyX509Der<'static> = public.as_der().expect("spki");
        Self {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("rsa pem"),
            jwk: json!({"kty": "RSA", "use": "sig", "alg": alg_name(alg), "kid": kid, "n": n, "e": e}),
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
        }
    }

    /// A new P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("ec keygen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("ec pkcs8");
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = point[1..].split_at(32);
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
            public_pem: String::new(),
        }
    }

    /// This key with another kid.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut k = self.clone();
        k.kid = kid.into();
        k.jwk["kid"] = json!(kid);
        k
    }

    /// Signs `claims` with this key's algorithm and kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, claims)
    }

    /// Signs with another algorithm of the same family (e.g. RS384 with an RSA key).
    pub fn sign_as(&self, alg: Algorithm, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        _ => "RS256",
    }
}

/// Keys generated once per test process (RSA generation is the slow part).
pub struct Keys {
    /// The issuer's main RS256 key, kid "key-1".
    pub primary: TestKey,
    /// A second RS256 key, kid "key-2", for rotation.
    pub rotated: TestKey,
    /// An attacker's RS256 key (kid "key-1" too: same name, other key).
    pub attacker: TestKey,
    /// A P-256 key, kid "ec-1".
    pub ec: TestKey,
}

/// The process-wide test keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        primary: TestKey::rsa("key-1", Algorithm::RS256),
        rotated: TestKey::rsa("key-2", Algorithm::RS256),
        attacker: TestKey::rsa("key-1", Algorithm::RS256),
        ec: TestKey::ec("ec-1"),
    })
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

// ---------------------------------------------------------------- issuer

/// How the test issuer's JWKS endpoint behaves.
#[derive(Debug, Clone)]
pub enum JwksMode {
    /// Serves the current keys.
    Up,
    /// Answers 503.
    Down,
    /// Answers 200 with a body that is not a JWKS.
    Garbage,
    /// Waits this long, then serves the keys.
    Slow(Duration),
}

struct IssuerState {
    keys: Vec<Value>,
    mode: JwksMode,
}

/// An OAuth issuer on 127.0.0.1:0 that serves a JWKS and counts its fetches.
#[derive(Clone)]
pub struct TestIssuer {
    /// `http://127.0.0.1:PORT/`, as tokens' `iss`.
    pub issuer: String,
    state: Arc<Mutex<IssuerState>>,
    fetches: Arc<AtomicUsize>,
}

impl TestIssuer {
    /// Starts an issuer serving `keys`.
    pub fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(Mutex::new(IssuerState {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            mode: JwksMode::Up,
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (state.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (s, f) = (s.clone(), f.clone());
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    let (s, f) = (s.clone(), f.clone());
                    async move {
                        f.fetch_add(1, Ordering::SeqCst);
                        let (mode, keys) = {
                            let st = s.lock().expect("issuer state");
                            (st.mode.clone(), st.keys.clone())
                        };
                        match mode {
                            JwksMode::Down => HttpResponse::ServiceUnavailable().finish(),
                            JwksMode::Garbage => HttpResponse::Ok()
                                .content_type("application/json")
                                .body("{\"keys\": 42"),
                            JwksMode::Slow(d) => {
                                tokio::time::sleep(d).await;
                                HttpResponse::Ok().json(json!({ "keys": keys }))
                            }
                            JwksMode::Up => HttpResponse::Ok().json(json!({ "keys": keys })),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind issuer");
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Self {
            issuer: format!("http://127.0.0.1:{port}/"),
            state,
            fetches,
        }
    }

    /// Replaces the served keys.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.state.lock().expect("issuer state").keys =
            keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Changes how the JWKS endpoint answers.
    pub fn set_mode(&self, mode: JwksMode) {
        self.state.lock().expect("issuer state").mode = mode;
    }

    /// JWKS requests received so far.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Standard claims for `sub` with `permissions`, valid for an hour.
    pub fn claims(&self, sub: &str, permissions: &[&str]) -> Value {
        let now = now();
        json!({
            "iss": self.issuer, "sub": sub, "aud": [AUDIENCE, format!("{}userinfo", self.issuer)],
            "iat": now, "exp": now + 3600, "scope": "openid profile", "permissions": permissions,
        })
    }

    /// A valid RS256 access token.
    pub fn token(&self, sub: &str, permissions: &[&str]) -> String {
        keys().primary.sign(&self.claims(sub, permissions))
    }
}

// ---------------------------------------------------------------- app

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

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `GET /users/me`.
    pub async fn get_me(&self, token: &str) -> reqwest::Response {
        self.get("/users/me", token).await
    }

    /// `method path` with a bearer token and a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `POST /users` as an admin; returns the created user.
    pub async fn create_user(&self, admin: &str, body: Value) -> Value {
        let r = self
            .send_json(reqwest::Method::POST, "/users", admin, &body)
            .await;
        assert_eq!(r.status(), 201, "create {body}");
        r.json().await.expect("user json")
    }
}

/// Asserts a problem+json answer and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16, context: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "{context}: status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type, "application/problem+json",
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

/// The `WWW-Authenticate` header, or "".
pub fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The built binary, for tests that need a real process.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_usergate"))
}

// ---------------------------------------------------------------- more requests

#[allow(clippy::expect_used)] // a failed request fails the test
impl TestApp {
    /// `method path` with a bearer token and a raw body, sent with
    /// `content_type` (none when `None`).
    pub async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
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
    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
}
