//! Recently seen users by subject: a steady stream of requests from one user
//! costs no database round trip.

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;

use super::User;

/// Rows kept at most.
const CAPACITY: u64 = 10_000;

/// How long a row is trusted without reading it again. Writes made through
/// this process update the cache at once; writes made through another
/// replica (a deactivation, say) are seen within this time.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);

/// A bounded, short-lived cache of `users` rows keyed by `sub`.
#[derive(Clone)]
pub struct UserCache {
    inner: Cache<String, Arc<User>>,
}

impl Default for UserCache {
    fn default() -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(USER_CACHE_TTL)
                .build(),
        }
    }
}

impl UserCache {
    /// The cached row of `sub`, if fresh.
    pub fn get(&self, sub: &str) -> Option<Arc<User>> {
        self.inner.get(sub)
    }

    /// Remembers (or replaces) a row.
    pub fn put(&self, user: Arc<User>) {
        self.inner.insert(user.sub.clone(), user);
    }

    /// Forgets the row of `sub` (deleted).
    pub fn forget(&self, sub: &str) {
        self.inner.invalidate(sub);
    }
}
