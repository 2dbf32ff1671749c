//! One integration-test binary: a module per area.

mod auth;
mod helpers;
mod jwks;
mod platform;
mod users;
