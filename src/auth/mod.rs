//! Bearer authentication with Auth0 access tokens.

pub mod cache;
pub mod claims;
pub mod dev_issuer;
pub mod error;
pub mod explain;
pub mod guard;
pub mod jwks;
pub mod verifier;

pub use cache::TokenCache;
pub use claims::Principal;
pub use error::{AuthError, TokenError, insufficient_scope_challenge};
pub use guard::{
    ALL_PERMISSIONS, Caller, CreateUsers, DeleteUsers, Permission, ReadUsers, Require, UpdateUsers,
    bearer_auth,
};
pub use verifier::Verifier;
