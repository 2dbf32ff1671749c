//! The users resource: rows, their SQL, and the `/users` endpoints.

pub mod cache;
pub mod fields;
pub mod handlers;
pub mod model;
pub mod repo;
pub mod service;

pub use cache::UserCache;
pub use model::User;
