//! One integration-test binary: a module per area.

// Test setup that fails should panic with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod auth;
mod browser;
mod db;
mod helpers;
mod jwks;
mod platform;
mod users;
