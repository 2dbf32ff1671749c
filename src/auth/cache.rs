//! Successful verifications, so that a repeated token skips the signature check.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use quick_cache::sync::Cache;

use super::claims::{Principal, unix_now};

/// Entries kept at most; when full, the entries least used go first.
const CAPACITY: usize = 10_000;

/// The longest an entry lives, whatever its token's `exp` says: a token
/// minted for years is checked again (signature, key) at least this often.
pub const MAX_ENTRY_LIFE: Duration = Duration::from_secs(3600);

/// A bounded cache keyed by the SHA-256 of the token; each entry lives no
/// longer than its token's `exp`, and at most [`MAX_ENTRY_LIFE`].
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<Arc<Cache<[u8; 32], Entry>>>,
}

/// A verified token's principal, and until when it may be served.
#[derive(Clone)]
struct Entry {
    principal: Arc<Principal>,
    until: Instant,
}

/// How long a principal expiring at `expires_at` may stay cached at `now`.
fn entry_life(expires_at: i64, now: i64) -> Duration {
    let remaining = expires_at.saturating_sub(now).max(0).unsigned_abs();
    Duration::from_secs(remaining).min(MAX_ENTRY_LIFE)
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl TokenCache {
    /// A cache of at most `capacity` verified tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Some(Arc::new(Cache::new(capacity))),
        }
    }

    /// A cache that remembers nothing: every token is verified in full.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// The hash a token is cached under.
    pub fn key(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    /// A cached, still unexpired principal.
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Principal>> {
        let cache = self.inner.as_ref()?;
        let found = cache.get(key).and_then(|entry| {
            let live = entry.until > Instant::now() && entry.principal.expires_at > unix_now();
            if !live {
                cache.remove(key);
            }
            live.then_some(entry.principal)
        });
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("usergate_token_cache_total", "result" => result).increment(1);
        found
    }

    /// Remembers a verified token.
    pub fn insert(&self, key: [u8; 32], principal: Arc<Principal>) {
        if let Some(cache) = &self.inner {
            let until = Instant::now() + entry_life(principal.expires_at, unix_now());
            cache.insert(key, Entry { principal, until });
        }
    }

    /// Forgets every token of `sub` (its user was deleted).
    pub fn forget_subject(&self, sub: &str) {
        if let Some(cache) = &self.inner {
            cache.retain(|_, entry| entry.principal.sub.as_str() != sub);
        }
    }

    /// Forgets everything (a key left the key set).
    pub fn clear(&self) {
        if let Some(cache) = &self.inner {
            cache.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::AccessClaims;

    fn principal(sub: &str) -> Arc<Principal> {
        let claims: AccessClaims =
            serde_json::from_value(serde_json::json!({"sub": sub, "iss": "https://issuer.example/", "exp": unix_now() + 60}))
                .expect("claims");
        Arc::new(
            Principal::from_claims(claims, crate::config::PermissionsFrom::Both)
                .expect("principal"),
        )
    }

    #[test]
    fn forgetting_a_subject_forgets_its_tokens_only() {
        let cache = TokenCache::default();
        let (gone, kept) = (TokenCache::key("a.b.c"), TokenCache::key("d.e.f"));
        cache.insert(gone, principal("auth0|gone"));
        cache.insert(kept, principal("auth0|kept"));
        cache.forget_subject("auth0|gone");
        assert!(cache.get(&gone).is_none(), "its token is forgotten at once");
        assert!(cache.get(&kept).is_some(), "another subject's token stays");
    }

    #[test]
    fn an_entry_lives_until_exp_and_never_longer_than_an_hour() {
        let now = 1_700_000_000;
        assert_eq!(entry_life(now + 60, now), Duration::from_secs(60));
        assert_eq!(entry_life(now - 60, now), Duration::ZERO);
        assert_eq!(entry_life(now + 10 * 365 * 86_400, now), MAX_ENTRY_LIFE);
        assert_eq!(entry_life(i64::MAX, i64::MIN), MAX_ENTRY_LIFE);
        assert_eq!(entry_life(i64::MIN, i64::MAX), Duration::ZERO);
    }
}
