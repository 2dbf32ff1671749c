//! The users resource: rows, their SQL, and the `/users` endpoints.

pub mod cache;
pub mod current_user;
pub mod dto;
pub mod handlers;
pub mod invalidation;
pub mod model;
pub mod permissions;
pub mod query;
pub mod repo;
pub mod service;
pub mod sightings;

pub use cache::UserCache;
pub use current_user::CurrentUser;
pub use model::User;
pub use sightings::Sightings;
