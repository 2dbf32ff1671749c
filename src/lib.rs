//! usergate: an actix-web API that protects its endpoints with Auth0 access
//! tokens and keeps a local `users` table in step with the identity provider.

pub mod app;
pub mod auth;
pub mod config;
pub mod db;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod request_context;
pub mod users;

pub use app::Application;
pub use config::Settings;
