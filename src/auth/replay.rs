//! Where the `jti`s of accepted DPoP proofs are remembered, so that each
//! proof is accepted once (RFC 9449 §11.1): in process on one replica, or in
//! a store every replica shares (the database's, wired in by the app).

use std::{collections::HashMap, future::Future, pin::Pin, sync::Mutex};

use super::claims::unix_now;

/// Proofs remembered in process at most. When that many are unexpired, a
/// new proof is refused (503) rather than an old one forgotten: a forgotten
/// proof could be replayed.
const IN_PROCESS_CAPACITY: usize = 250_000;

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

/// One process's memory: each proof kept until its `expires_at` has passed
/// (compared in whole seconds, as `iat` is), never evicted early.
#[derive(Default)]
pub struct InProcessReplayStore {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// The first half of each key, and when it expires: 20 bytes a proof.
    /// Half a SHA-256 cannot be made to collide (2^64 work), and a
    /// collision would only refuse a proof.
    until: HashMap<[u8; 16], u32>,
    /// When expired entries were last dropped: at most once a second.
    swept_at: u32,
}

impl InProcessReplayStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self, key: [u8; 32], expires_at: i64, now: i64) -> Result<bool, ReplayStoreDown> {
        let (key, expires_at, now) = (half(&key), seconds(expires_at), seconds(now));
        let mut seen = self.seen.lock().map_err(|_| ReplayStoreDown)?;
        if seen.until.get(&key).is_some_and(|&until| until >= now) {
            return Ok(false);
        }
        if seen.until.len() >= IN_PROCESS_CAPACITY && seen.swept_at < now {
            seen.until.retain(|_, until| *until >= now);
            seen.swept_at = now;
        }
        if seen.until.len() >= IN_PROCESS_CAPACITY {
            return Err(ReplayStoreDown);
        }
        seen.until.insert(key, expires_at);
        Ok(true)
    }
}

/// The first 16 bytes of a 32-byte key.
fn half(key: &[u8; 32]) -> [u8; 16] {
    let mut half = [0u8; 16];
    half.copy_from_slice(&key[..16]);
    half
}

/// Seconds since the epoch as stored: clamped to `u32` (good until 2106).
fn seconds(at: i64) -> u32 {
    u32::try_from(at.max(0)).unwrap_or(u32::MAX)
}

impl ReplayStore for InProcessReplayStore {
    fn first_use(&self, key: [u8; 32], expires_at: i64) -> FirstUse {
        let fresh = self.record(key, expires_at, unix_now());
        Box::pin(std::future::ready(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_fresh_once_until_it_expires() {
        let store = InProcessReplayStore::new();
        assert_eq!(store.record([1; 32], 100, 50), Ok(true));
        assert_eq!(
            store.record([1; 32], 100, 100),
            Ok(false),
            "still alive at expires_at"
        );
        assert_eq!(store.record([2; 32], 100, 50), Ok(true));
        assert_eq!(
            store.record([1; 32], 200, 101),
            Ok(true),
            "expired: a new proof"
        );
    }

    #[test]
    fn when_full_no_proof_is_forgotten_and_new_ones_are_refused_until_some_expire() {
        let store = InProcessReplayStore::new();
        let key = |i: usize| {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            key
        };
        for i in 0..IN_PROCESS_CAPACITY {
            assert_eq!(store.record(key(i), 100 + (i % 2) as i64, 10), Ok(true));
        }
        assert_eq!(
            store.record(key(IN_PROCESS_CAPACITY), 200, 10),
            Err(ReplayStoreDown)
        );
        for i in [0, 1, IN_PROCESS_CAPACITY - 1] {
            assert_eq!(
                store.record(key(i), 200, 10),
                Ok(false),
                "proof {i} remembered"
            );
        }
        // At 101 the half that expired at 100 is dropped, making room.
        assert_eq!(store.record(key(IN_PROCESS_CAPACITY), 200, 101), Ok(true));
        assert_eq!(
            store.record(key(1), 200, 101),
            Ok(false),
            "unexpired, remembered"
        );
    }
}
