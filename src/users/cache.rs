//! Recently seen users by subject: a steady stream of requests from one user
//! costs no database round trip.
//!
//! Three rules keep it from ever answering with an outdated row:
//! - every write evicts the subject, here and (through
//!   [`invalidation`](super::invalidation)) on every other replica;
//! - a read that began before a write cannot put its row back: it takes a
//!   [`Ticket`] before reading the database, and the row is kept only if no
//!   eviction of that subject happened since;
//! - while this replica may have missed an eviction (its listener is down),
//!   the cache is not trusted and reads go to the database.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use moka::sync::Cache;

use super::User;

/// Entries kept at most.
const CAPACITY: u64 = 10_000;

/// Eviction counters: subjects share them by hash, so memory stays fixed; a
/// shared counter only makes a concurrent read of another subject skip the
/// cache once.
const STRIPES: usize = 1024;

/// How long an entry is kept without reading it again. Evictions make it
/// exact; the limit bounds what a lost notification could cost.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);

/// What is known of a subject.
#[derive(Debug, Clone)]
pub enum Cached {
    /// Its row.
    User(Arc<User>),
    /// It has a tombstone: deleted by an admin.
    Deleted,
}

/// Taken before a database read; allows caching what that read returns.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    generation: u64,
}

/// A bounded, short-lived cache of what is known of each `sub`.
#[derive(Clone)]
pub struct UserCache {
    shared: Arc<Shared>,
}

/// A handle that does not keep the cache (and its app) alive.
pub struct WeakUserCache(Weak<Shared>);

struct Shared {
    entries: Cache<String, Cached>,
    generations: Box<[Mutex<u64>]>,
    hasher: RandomState,
    trusted: AtomicBool,
}

impl Default for UserCache {
    /// A trusted cache: nothing else writes the database behind its back.
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                entries: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(USER_CACHE_TTL)
                    .build(),
                generations: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
                hasher: RandomState::new(),
                trusted: AtomicBool::new(true),
            }),
        }
    }
}

impl UserCache {
    /// What is cached of `sub`, unless the cache is not trusted now.
    pub fn get(&self, sub: &str) -> Option<Cached> {
        if !self.is_trusted() {
            return None;
        }
        self.shared.entries.get(sub)
    }

    /// What is cached of `sub` even when the cache is not trusted: only for
    /// when the database cannot be asked at all.
    pub fn get_untrusted(&self, sub: &str) -> Option<Cached> {
        self.shared.entries.get(sub)
    }

    /// Taken before reading `sub` from the database.
    pub fn ticket(&self, sub: &str) -> Ticket {
        let stripe = self.stripe(sub);
        Ticket {
            stripe,
            generation: *self.lock(stripe),
        }
    }

    /// Keeps what a read that took `ticket` found, unless `sub` was evicted
    /// since the ticket was taken (the read may predate a write).
    pub fn put(&self, ticket: Ticket, sub: &str, entry: Cached) {
        let generation = self.lock(ticket.stripe);
        if *generation == ticket.generation {
            self.shared.entries.insert(sub.to_owned(), entry);
        }
    }

    /// Forgets `sub` (written here or elsewhere), and refuses what reads
    /// begun before now would put back.
    pub fn evict(&self, sub: &str) {
        let mut generation = self.lock(self.stripe(sub));
        *generation += 1;
        self.shared.entries.invalidate(sub);
    }

    /// Forgets everything, and refuses what reads begun before now would put back.
    pub fn flush(&self) {
        for stripe in 0..STRIPES {
            *self.lock(stripe) += 1;
        }
        self.shared.entries.invalidate_all();
    }

    /// Whether entries may be served (false while evictions may be missed).
    pub fn is_trusted(&self) -> bool {
        self.shared.trusted.load(Ordering::Acquire)
    }

    /// Stops or resumes serving entries.
    pub fn set_trusted(&self, trusted: bool) {
        self.shared.trusted.store(trusted, Ordering::Release);
    }

    /// A handle for a background task that must not outlive the app.
    pub fn downgrade(&self) -> WeakUserCache {
        WeakUserCache(Arc::downgrade(&self.shared))
    }

    fn stripe(&self, sub: &str) -> usize {
        (self.shared.hasher.hash_one(sub) % STRIPES as u64) as usize
    }

    fn lock(&self, stripe: usize) -> MutexGuard<'_, u64> {
        // A counter is valid whatever a panicking holder was doing.
        self.shared.generations[stripe % STRIPES]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl WeakUserCache {
    /// The cache, while its app is alive.
    pub fn upgrade(&self) -> Option<UserCache> {
        self.0.upgrade().map(|shared| UserCache { shared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str) -> Cached {
        let at = super::super::model::now();
        Cached::User(Arc::new(User {
            id: 1,
            sub: sub.into(),
            email: None,
            name: None,
            is_active: true,
            created_at: at,
            updated_at: at,
            last_seen_at: None,
        }))
    }

    #[test]
    fn a_read_that_began_before_an_eviction_is_not_kept() {
        let cache = UserCache::default();
        let ticket = cache.ticket("a");
        cache.evict("a");
        cache.put(ticket, "a", user("a"));
        assert!(cache.get("a").is_none(), "stale read kept");
        let ticket = cache.ticket("a");
        cache.put(ticket, "a", user("a"));
        assert!(cache.get("a").is_some(), "fresh read kept");
    }

    #[test]
    fn a_flush_refuses_reads_begun_before_it_and_untrusted_entries_are_not_served() {
        let cache = UserCache::default();
        let ticket = cache.ticket("b");
        cache.flush();
        cache.put(ticket, "b", user("b"));
        assert!(cache.get("b").is_none(), "read from before the flush kept");
        cache.put(cache.ticket("b"), "b", user("b"));
        cache.set_trusted(false);
        assert!(cache.get("b").is_none(), "served while untrusted");
        assert!(cache.get_untrusted("b").is_some(), "kept for outages");
    }
}
