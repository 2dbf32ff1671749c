//! An OAuth issuer of the test's own: a JWKS on 127.0.0.1:0 that counts its
//! fetches and can be made to fail, with or without an OpenID discovery
//! document.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::{
    AUDIENCE,
    keys::{TestKey, keys},
    now, spawn_server,
};

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

/// The test issuer's OpenID discovery document.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// None (404): the keys are read at `{issuer}.well-known/jwks.json`.
    Absent,
    /// One naming the issuer itself.
    Own,
    /// One naming another issuer: an impostor's.
    Naming(String),
}

/// What the JWKS endpoint serves, and how often it was asked.
struct Jwks {
    state: Mutex<IssuerState>,
    fetches: AtomicUsize,
}

#[derive(Clone)]
struct IssuerState {
    keys: Vec<Value>,
    mode: JwksMode,
    /// The discovery document; `None` answers 404 (as Auth0 does not, but
    /// a bare JWKS host does).
    discovery: Option<Value>,
}

/// Where Auth0 serves its keys (and where an issuer without a discovery
/// document is read).
pub const AUTH0_JWKS_PATH: &str = "/.well-known/jwks.json";

/// An OAuth issuer on 127.0.0.1:0 that serves a JWKS and counts its fetches.
#[derive(Clone)]
pub struct TestIssuer {
    /// `http://127.0.0.1:PORT/`, as tokens' `iss`.
    pub issuer: String,
    jwks_path: &'static str,
    jwks: web::Data<Jwks>,
}

async fn serve_discovery(jwks: web::Data<Jwks>) -> HttpResponse {
    match jwks.state.lock().expect("issuer state").discovery.clone() {
        Some(document) => HttpResponse::Ok().json(document),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn serve_jwks(jwks: web::Data<Jwks>) -> HttpResponse {
    jwks.fetches.fetch_add(1, Ordering::SeqCst);
    let IssuerState { keys, mode, .. } = jwks.state.lock().expect("issuer state").clone();
    let body = json!({ "keys": keys });
    match mode {
        JwksMode::Down => HttpResponse::ServiceUnavailable().finish(),
        JwksMode::Garbage => HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"keys\": 42"),
        JwksMode::Slow(d) => {
            tokio::time::sleep(d).await;
            HttpResponse::Ok().json(body)
        }
        JwksMode::Up => HttpResponse::Ok().json(body),
    }
}

impl TestIssuer {
    /// Starts an issuer serving `keys` at Auth0's path, without a discovery
    /// document.
    pub fn start(keys: &[&TestKey]) -> Self {
        Self::start_at(keys, AUTH0_JWKS_PATH)
    }

    /// Starts an issuer serving `keys` at `jwks_path`, without a discovery
    /// document yet.
    pub fn start_at(keys: &[&TestKey], jwks_path: &'static str) -> Self {
        let jwks = web::Data::new(Jwks {
            state: Mutex::new(IssuerState {
                keys: keys.iter().map(|k| k.jwk.clone()).collect(),
                mode: JwksMode::Up,
                discovery: None,
            }),
            fetches: AtomicUsize::new(0),
        });
        let data = jwks.clone();
        let port = spawn_server(move |routes| {
            routes
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(serve_discovery),
                )
                .route(jwks_path, web::get().to(serve_jwks));
        });
        Self {
            issuer: format!("http://127.0.0.1:{port}/"),
            jwks_path,
            jwks,
        }
    }

    /// Serves an OpenID discovery document that names `issuer` (this one's
    /// own, or another to play an impostor) and points at this one's keys.
    pub fn serve_discovery(&self, issuer: &str) {
        let jwks_uri = format!("{}{}", self.issuer, &self.jwks_path[1..]);
        self.jwks.state.lock().expect("issuer state").discovery = Some(json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "authorization_endpoint": format!("{}oauth2/v1/authorize", self.issuer),
        }));
    }

    /// Serves the discovery document `discovery` says.
    pub fn discover(&self, discovery: &Discovery) {
        match discovery {
            Discovery::Absent => {}
            Discovery::Own => self.serve_discovery(&self.issuer),
            Discovery::Naming(other) => self.serve_discovery(other),
        }
    }

    /// Replaces the served keys.
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.jwks.state.lock().expect("issuer state").keys =
            keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Changes how the JWKS endpoint answers.
    pub fn set_mode(&self, mode: JwksMode) {
        self.jwks.state.lock().expect("issuer state").mode = mode;
    }

    /// JWKS requests received so far.
    pub fn fetches(&self) -> usize {
        self.jwks.fetches.load(Ordering::SeqCst)
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
