//! Where the `jti`s of accepted DPoP proofs are remembered, so that each
//! proof is accepted once (RFC 9449 §11.1): in process on one replica, or in
//! a store every replica shares (the database's, wired in by the app).

use std::{future::Future, pin::Pin, time::Duration};

use moka::{policy::EvictionPolicy, sync::Cache};

/// Proofs remembered in process at most; beyond, the oldest are forgotten first.
const IN_PROCESS_CAPACITY: u64 = 250_000;

/// The shared store could not be asked: the proof must not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the DPoP replay store cannot be reached")]
pub struct ReplayStoreDown;

/// What [`ReplayStore::first_use`] answers.
pub type FirstUse = Pin<Box<dyn Future<Output = Result<bool, ReplayStoreDown>> + Send>>;

/// Remembers proof ids until they expire.
pub trait ReplayStore: Send + Sync {
    /// Records `key` (a hash of the proof's key and `jti`) until
    /// `expires_at` (seconds since the epoch); `true` the first time only,
    /// in one atomic step.
    fn first_use(&self, key: [u8; 32], expires_at: i64) -> FirstUse;
}

/// One process's memory: bounded, each entry kept for the proofs' lifetime.
pub struct InProcessReplayStore {
    seen: Cache<[u8; 32], ()>,
}

impl InProcessReplayStore {
    /// Entries live `lifetime` (the proofs' max age plus the leeway).
    pub fn new(lifetime: Duration) -> Self {
        Self {
            seen: Cache::builder()
                .max_capacity(IN_PROCESS_CAPACITY)
                // LRU, not TinyLFU: TinyLFU may refuse to admit a new entry
                // when full, and a proof not remembered could be replayed.
                // Entries are never read but by a replay, so LRU drops the oldest.
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(lifetime)
                .build(),
        }
    }
}

impl ReplayStore for InProcessReplayStore {
    fn first_use(&self, key: [u8; 32], _: i64) -> FirstUse {
        let fresh = self.seen.entry(key).or_insert(()).is_fresh();
        Box::pin(std::future::ready(Ok(fresh)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_key_is_fresh_once() {
        let store = InProcessReplayStore::new(Duration::from_secs(60));
        assert_eq!(store.first_use([1; 32], 0).await, Ok(true));
        assert_eq!(store.first_use([1; 32], 0).await, Ok(false));
        assert_eq!(store.first_use([2; 32], 0).await, Ok(true));
    }

    #[actix_web::test]
    async fn when_full_the_newest_proofs_are_still_remembered() {
        let store = InProcessReplayStore::new(Duration::from_secs(60));
        let n = IN_PROCESS_CAPACITY + 1_000;
        for i in 0..n {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            assert_eq!(store.first_use(key, 0).await, Ok(true));
        }
        store.seen.run_pending_tasks();
        for i in n - 1_000..n {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            assert_eq!(store.first_use(key, 0).await, Ok(false), "proof {i}");
        }
        assert!(store.seen.entry_count() <= IN_PROCESS_CAPACITY);
    }
}
