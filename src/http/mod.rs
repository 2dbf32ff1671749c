//! HTTP plumbing every resource shares: problem+json answers, request ids, the
//! public base URL and JSON bodies. It knows nothing of auth, users or SQL.

pub mod headers;
pub mod json;
pub mod problem;
pub mod public_url;
pub mod request_id;

pub use problem::{Problem, RequestError};
pub use public_url::{PublicUrl, TrustedProxies, public_base_url};
