//! One integration-test binary: a module per area.

// A test whose setup fails must stop loudly, helpers included.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod auth;
mod browser;
mod cli;
mod database;
mod hardening;
// Shared by every area; an area may use only part of it.
#[allow(dead_code)]
mod helpers;
mod jwks;
mod platform;
mod process;
mod users;
