//! What the area tests share: the app as production wires it, a test issuer
//! and its keys, the real binary as a process, databases, and assertions.

pub mod app;
pub mod assert;
pub mod db;
pub mod dev;
pub mod dpop;
pub mod issuer;
pub mod keys;
pub mod process;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpServer, web};

/// The audience every test token is for.
pub const AUDIENCE: &str = "https://api.usergate.test/";

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Starts an HTTP server of the test's own (an issuer, an attacker, a page)
/// on 127.0.0.1, on a port the system picks, and returns that port. One
/// worker, no signal handling: it lives as long as the test's runtime.
pub fn spawn_server(routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static) -> u16 {
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind a test server on 127.0.0.1:0");
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());
    port
}
