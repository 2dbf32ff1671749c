//! usergate: an actix-web API that protects its endpoints with Auth0 access
//! tokens and keeps a local `users` table in step with the identity provider.
//!
//! Dependencies run one way: `users` uses `auth` and `db`; `auth` uses
//! neither; `http` is used by both and uses neither.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod dev_issuer;
pub mod discovery;
pub mod dpop_key;
pub mod error;
pub mod fields;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod report;
pub mod users;

pub use app::Application;
pub use config::Settings;
