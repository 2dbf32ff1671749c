//! One integration-test binary: a module per area.

mod auth;
mod browser;
mod helpers;
mod jwks;
mod platform;
mod users;
