//! An OAuth issuer of the test's own: a JWKS on 127.0.0.1:0 that counts its
//! fetches and can be made to fail.

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

/// What the JWKS endpoint serves, and how often it was asked.
struct Jwks {
    state: Mutex<IssuerState>,
    fetches: AtomicUsize,
}

#[derive(Clone)]
struct IssuerState {
    keys: Vec<Value>,
    mode: JwksMode,
}

/// An OAuth issuer on 127.0.0.1:0 that serves a JWKS and counts its fetches.
#[derive(Clone)]
pub struct TestIssuer {
    /// `http://127.0.0.1:PORT/`, as tokens' `iss`.
    pub issuer: String,
    jwks: web::Data<Jwks>,
}

async fn serve_jwks(jwks: web::Data<Jwks>) -> HttpResponse {
    jwks.fetches.fetch_add(1, Ordering::SeqCst);
    let IssuerState { keys, mode } = jwks.state.lock().expect("issuer state").clone();
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
    /// Starts an issuer serving `keys`.
    pub fn start(keys: &[&TestKey]) -> Self {
        let jwks = web::Data::new(Jwks {
            state: Mutex::new(IssuerState {
                keys: keys.iter().map(|k| k.jwk.clone()).collect(),
                mode: JwksMode::Up,
            }),
            fetches: AtomicUsize::new(0),
        });
        let data = jwks.clone();
        let port = spawn_server(move |routes| {
            routes
                .app_data(data.clone())
                .route("/.well-known/jwks.json", web::get().to(serve_jwks));
        });
        Self {
            issuer: format!("http://127.0.0.1:{port}/"),
            jwks,
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
