//! Bearer and DPoP authentication with Auth0 access tokens. It knows nothing of users
//! or SQL: it verifies, and hands the handlers a [`Principal`].

pub mod cache;
pub mod challenge;
pub mod claims;
pub mod credentials;
pub mod dpop;
pub mod error;
pub mod explain;
pub mod issuers;
pub mod jwks;
pub mod key_set;
pub mod middleware;
pub mod replay;
pub mod token;
pub mod verifier;

pub use cache::TokenCache;
pub use claims::Principal;
pub use credentials::Credentials;
pub use dpop::{Dpop, DpopMode};
pub use error::{AuthError, Rejection, TokenError};
pub use issuers::Issuers;
pub use middleware::{Authenticated, Permission, Require, bearer_auth};
pub use verifier::Verifier;
