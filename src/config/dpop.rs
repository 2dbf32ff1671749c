//! The `dpop` section: sender-constrained tokens (RFC 9449).

use std::time::Duration;

use super::{ConfigError, Env};
use crate::auth::DpopMode;

/// How DPoP proofs are accepted.
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// `DPOP_MODE`: allowed (default), required or disabled.
    pub mode: DpopMode,
    /// `DPOP_PROOF_MAX_AGE_SECS`: how old a proof's `iat` may be; its `jti`
    /// is remembered that long.
    pub proof_max_age: Duration,
}

impl DpopSettings {
    /// Reads the section.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mode = match env.get("DPOP_MODE") {
            None => DpopMode::Allowed,
            Some(value) => value
                .parse()
                .map_err(|e: crate::auth::dpop::UnknownDpopMode| {
                    ConfigError::new("DPOP_MODE", e.to_string())
                })?,
        };
        Ok(Self {
            mode,
            proof_max_age: env.secs_in("DPOP_PROOF_MAX_AGE_SECS", 300, 1..=3_600)?,
        })
    }
}
