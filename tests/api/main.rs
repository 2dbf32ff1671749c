//! One integration-test binary: a module per area, and the support they share.

// A test whose setup fails must stop loudly, helpers included.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod answers;
mod auth;
mod browser;
mod cli;
mod database;
mod dpop;
mod first_logins;
mod fleet;
mod hardening;
mod issuers;
mod jwks;
mod lifecycle;
mod methods;
mod openapi_document;
mod platform;
mod process;
mod replicas;
mod support;
mod token_claims;
mod users;
