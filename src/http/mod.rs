//! HTTP plumbing every resource shares: problem+json answers, request ids, the
//! public base URL, JSON bodies and method routing. It knows nothing of auth, users or SQL.

pub mod access_log;
pub mod headers;
pub mod json;
pub mod problem;
pub mod public_url;
pub mod request_id;
pub mod routes;

pub use problem::{Problem, RequestError};
pub use public_url::{PublicUrl, TrustedProxies, public_base_url};
