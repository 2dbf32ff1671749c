//! Recently seen users by subject, so that a steady stream of requests from
//! one user costs no database round trip; and what `GET /users` read in
//! the last [`LIST_TTL`]: the counts by search, so that a page costs one
//! query, not two, and the pages, so that a page asked for again costs none.
//!
//! Three rules keep it from ever answering with an outdated row, count or page:
//! - every write evicts the subject and forgets every count and page, here
//!   and (through [`invalidation`](super::invalidation)) on every other
//!   replica; a first sighting forgets this replica's counts and pages, and
//!   the others' age out within [`LIST_TTL`] (announcing every first login
//!   would make their commits queue on PostgreSQL's notification lock), as
//!   do the `last_seen_at` of the users in a page;
//! - a read that began before a write cannot put its answer back: it takes
//!   a [`Ticket`] before reading the database, and the answer is kept only
//!   if no eviction that concerns it happened since;
//! - while this replica may have missed an eviction (its listener is down,
//!   or has not been heard from within its lease), the cache is not trusted
//!   and reads go to the database; trust comes back only after a flush.

use std::{
    hash::{BuildHasher, Hash, RandomState},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use quick_cache::{Weighter, sync::Cache};
use serde_json::value::RawValue;

use super::{User, query::ListQuery};

/// Users kept at most (about 360 bytes each): every user active within
/// [`USER_CACHE_TTL`] at well over a thousand new users a second.
const CAPACITY: usize = 50_000;

/// Counts kept at most, one per search text.
const COUNT_CAPACITY: usize = 1_000;

/// Pages kept at most, by the bytes of their JSON and query: a few dozen
/// pages of 50 users.
const PAGE_BYTES: u64 = 1 << 20;

/// What a page costs beside its own bytes: the cache's bookkeeping for it
/// and the header of its JSON's `Arc`, rounded up.
const ENTRY_OVERHEAD: usize = 64;

/// Locks taken to count, shared by search texts by hash.
const COUNT_STRIPES: usize = 64;

/// Eviction counters: subjects share them by hash, so memory stays fixed; a
/// shared counter only makes a concurrent read of another subject skip the
/// cache once.
const STRIPES: usize = 1024;

/// How long an entry is served after it was read from the database.
/// Evictions make it exact for every change an admin makes through usergate
/// (a replica that may have missed one does not trust its cache); the limit
/// bounds how long a row changed in the database by hand takes to show, and
/// how far behind another replica's `last_seen_at` may be (a sighting is
/// recorded at most every five minutes, and announced to no one).
pub const USER_CACHE_TTL: Duration = Duration::from_secs(30);

/// How old an entry may be and still answer when the database cannot be
/// asked at all, trusted or not.
const OUTAGE_TTL: Duration = Duration::from_secs(5);

/// What is known of a subject.
#[derive(Debug, Clone)]
pub enum Cached {
    /// Its row.
    User(Arc<User>),
    /// It has a tombstone: deleted by an admin.
    Deleted(Arc<str>),
}

impl Cached {
    /// The subject it is about.
    fn sub(&self) -> &str {
        match self {
            Self::User(user) => &user.sub,
            Self::Deleted(sub) => sub,
        }
    }
}

/// Taken before a database read; allows caching what that read returns.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    hash: u64,
    stripe: usize,
    generation: u64,
}

/// A cached value and when it was read from the database.
#[derive(Clone)]
struct Fresh<T> {
    value: T,
    read_at: Instant,
}

impl<T> Fresh<T> {
    fn now(value: T) -> Self {
        Self {
            value,
            read_at: Instant::now(),
        }
    }

    /// The value, unless it is `ttl` old.
    fn younger_than(self, ttl: Duration) -> Option<T> {
        (self.read_at.elapsed() < ttl).then_some(self.value)
    }
}

/// How long a count or a page is served: how long a first login through
/// another replica may take to show in this one's lists, and how far behind
/// a listed user's `last_seen_at` may be.
pub const LIST_TTL: Duration = Duration::from_secs(1);

/// Taken before reading a page or a count; allows caching what that read returns.
#[derive(Debug, Clone, Copy)]
pub struct ListTicket(u64);

/// A page of `GET /users` as read, and the count of all users its search matches.
#[derive(Debug, Clone)]
pub struct Page {
    /// Users matching the search, across all pages.
    pub count: i64,
    /// The page's users, as the JSON array the response carries: served
    /// again without being written again.
    pub results: Arc<RawValue>,
}

/// A page's weight: the bytes it holds, about.
#[derive(Clone)]
struct PageBytes;

impl Weighter<ListQuery, Fresh<Page>> for PageBytes {
    fn weight(&self, query: &ListQuery, page: &Fresh<Page>) -> u64 {
        let search = query.search.as_ref().map_or(0, String::len);
        // The entry, and the cache's bookkeeping and the JSON's `Arc` beside it.
        let bytes = page.value.results.get().len()
            + search
            + size_of::<(ListQuery, Fresh<Page>)>()
            + ENTRY_OVERHEAD;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// A bounded, short-lived cache of what is known of each `sub`.
#[derive(Clone)]
pub struct UserCache {
    shared: Arc<Shared>,
}

/// A handle that does not keep the cache (and its app) alive.
pub struct WeakUserCache(Weak<Shared>);

struct Shared {
    /// By the hash of the subject, which each entry holds too: a key costs
    /// no copy of it.
    entries: Cache<u64, Fresh<Cached>>,
    generations: Box<[Mutex<u64>]>,
    counts: Cache<Option<String>, Fresh<i64>>,
    pages: Cache<ListQuery, Fresh<Page>, PageBytes>,
    /// Bumped whenever the counts and pages are forgotten.
    lists_generation: Mutex<u64>,
    counting: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
    /// Until when entries may be served, in milliseconds since `epoch`.
    trusted_until: AtomicU64,
    epoch: Instant,
}

impl Default for UserCache {
    /// A trusted cache: nothing else writes the database behind its back.
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                entries: Cache::new(CAPACITY),
                generations: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
                counts: Cache::new(COUNT_CAPACITY),
                // Few entries, so few shards: each holds the largest page.
                pages: Cache::with_weighter(64, PAGE_BYTES, PageBytes),
                lists_generation: Mutex::new(0),
                counting: (0..COUNT_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                hasher: RandomState::new(),
                trusted_until: AtomicU64::new(u64::MAX),
                epoch: Instant::now(),
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
        self.younger_than(sub, USER_CACHE_TTL)
    }

    /// What was cached of `sub` within [`OUTAGE_TTL`], even when the cache is
    /// not trusted: only for when the database cannot be asked at all.
    pub fn get_untrusted(&self, sub: &str) -> Option<Cached> {
        self.younger_than(sub, OUTAGE_TTL)
    }

    fn younger_than(&self, sub: &str, ttl: Duration) -> Option<Cached> {
        self.shared
            .entries
            .get(&self.hash(sub))
            // Another subject of the same hash is not this one.
            .filter(|entry| entry.value.sub() == sub)
            .and_then(|entry| entry.younger_than(ttl))
    }

    /// Taken before reading `sub` from the database.
    pub fn ticket(&self, sub: &str) -> Ticket {
        let hash = self.hash(sub);
        let stripe = stripe(hash);
        Ticket {
            hash,
            stripe,
            generation: *self.lock(stripe),
        }
    }

    /// Keeps what a read that took `ticket` found about its subject, unless
    /// that subject was evicted since the ticket was taken (the read may
    /// predate a write).
    pub fn put(&self, ticket: Ticket, entry: Cached) {
        let generation = self.lock(ticket.stripe);
        if *generation == ticket.generation {
            self.shared.entries.insert(ticket.hash, Fresh::now(entry));
        }
    }

    /// Forgets `sub` (written here or elsewhere) and every count and page, and
    /// refuses what reads begun before now would put back.
    pub fn evict(&self, sub: &str) {
        let hash = self.hash(sub);
        let mut generation = self.lock(stripe(hash));
        *generation += 1;
        self.shared.entries.remove(&hash);
        drop(generation);
        self.forget_lists();
    }

    /// Forgets everything, and refuses what reads begun before now would put back.
    pub fn flush(&self) {
        for stripe in 0..STRIPES {
            *self.lock(stripe) += 1;
        }
        self.shared.entries.clear();
        self.forget_lists();
    }

    /// The count of users matching `search` and when it was read, unless
    /// the cache is not trusted now.
    pub fn count(&self, search: &Option<String>) -> Option<(i64, Instant)> {
        if !self.is_trusted() {
            return None;
        }
        let count = self.shared.counts.get(search)?;
        let read_at = count.read_at;
        count.younger_than(LIST_TTL).map(|count| (count, read_at))
    }

    /// The page `query` asks for, unless the cache is not trusted now.
    pub fn page(&self, query: &ListQuery) -> Option<Page> {
        if !self.is_trusted() {
            return None;
        }
        self.shared
            .pages
            .get(query)
            .and_then(|page| page.younger_than(LIST_TTL))
    }

    /// The lock held while counting users matching `search`: a request that
    /// finds a count missing while another counts it waits for that count
    /// (once) instead of counting too, so an expired count costs one
    /// `COUNT(*)`, not one per request in flight.
    pub fn counting(&self, search: &Option<String>) -> &tokio::sync::Mutex<()> {
        let stripe = self.shared.hasher.hash_one(search) % COUNT_STRIPES as u64;
        &self.shared.counting[stripe as usize]
    }

    /// Taken before reading a page or counting users in the database.
    pub fn list_ticket(&self) -> ListTicket {
        ListTicket(*self.lock_lists())
    }

    /// Keeps a count that a read begun at `read_at`, which took `ticket`,
    /// found, unless a user was written since the ticket was taken.
    pub fn put_count(
        &self,
        ticket: ListTicket,
        search: Option<String>,
        count: i64,
        read_at: Instant,
    ) {
        self.keep_listed(ticket, &self.shared.counts, search, count, read_at);
    }

    /// Keeps a page that a read which took `ticket` found, unless a user
    /// was written since the ticket was taken; it ages from `read_at`: when
    /// its count was read (cached, maybe, before its rows were).
    pub fn put_page(&self, ticket: ListTicket, query: ListQuery, page: Page, read_at: Instant) {
        self.keep_listed(ticket, &self.shared.pages, query, page, read_at);
    }

    /// Inserts `value`, read at `read_at`, in `cache` (the counts or the
    /// pages) unless they were forgotten since `ticket` was taken.
    fn keep_listed<K, V, W>(
        &self,
        ticket: ListTicket,
        cache: &Cache<K, Fresh<V>, W>,
        key: K,
        value: V,
        read_at: Instant,
    ) where
        K: Eq + Hash,
        V: Clone,
        W: Weighter<K, Fresh<V>> + Clone,
    {
        let generation = self.lock_lists();
        if *generation == ticket.0 {
            cache.insert(key, Fresh { value, read_at });
        }
    }

    /// Forgets every count and page (a row was added, changed or removed),
    /// and refuses what reads begun before now would put back.
    pub fn forget_lists(&self) {
        let mut generation = self.lock_lists();
        *generation += 1;
        self.shared.counts.clear();
        self.shared.pages.clear();
    }

    /// Whether entries may be served (false while evictions may be missed).
    pub fn is_trusted(&self) -> bool {
        self.millis() < self.shared.trusted_until.load(Ordering::Acquire)
    }

    /// Stops serving entries (evictions may be missed from now on).
    pub fn distrust(&self) {
        self.shared.trusted_until.store(0, Ordering::Release);
    }

    /// Serves entries until `until`: the listener's word that it missed no
    /// eviction before then. When trust had lapsed meanwhile, evictions may
    /// have been missed, so everything is forgotten first; then `true`.
    pub fn trust_until(&self, until: Instant) -> bool {
        let lapsed = self.shared.trusted_until.load(Ordering::Acquire) <= self.millis();
        if lapsed {
            self.flush();
        }
        let until = until
            .saturating_duration_since(self.shared.epoch)
            .as_millis();
        self.shared
            .trusted_until
            .store(u64::try_from(until).unwrap_or(u64::MAX), Ordering::Release);
        lapsed
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.shared.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A handle for a background task that must not outlive the app.
    pub fn downgrade(&self) -> WeakUserCache {
        WeakUserCache(Arc::downgrade(&self.shared))
    }

    fn hash(&self, sub: &str) -> u64 {
        self.shared.hasher.hash_one(sub)
    }

    fn lock_lists(&self) -> MutexGuard<'_, u64> {
        lock_counter(&self.shared.lists_generation)
    }

    fn lock(&self, stripe: usize) -> MutexGuard<'_, u64> {
        lock_counter(&self.shared.generations[stripe % STRIPES])
    }
}

/// The eviction counter of the subject of hash `hash`.
fn stripe(hash: u64) -> usize {
    (hash % STRIPES as u64) as usize
}

/// A generation counter, locked: it is valid whatever a panicking holder
/// was doing.
fn lock_counter(counter: &Mutex<u64>) -> MutexGuard<'_, u64> {
    counter.lock().unwrap_or_else(PoisonError::into_inner)
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
    fn an_entry_answers_only_its_own_subject() {
        let cache = UserCache::default();
        // Kept under the hash of the ticket's subject, but not about it.
        cache.put(cache.ticket("d"), user("e"));
        assert!(cache.get("d").is_none(), "another subject's row served");
        assert!(cache.get("e").is_none(), "kept under another hash");
        cache.put(cache.ticket("d"), Cached::Deleted("d".into()));
        assert!(matches!(cache.get("d"), Some(Cached::Deleted(sub)) if &*sub == "d"));
    }

    #[test]
    fn a_read_that_began_before_an_eviction_is_not_kept() {
        let cache = UserCache::default();
        let ticket = cache.ticket("a");
        cache.evict("a");
        cache.put(ticket, user("a"));
        assert!(cache.get("a").is_none(), "stale read kept");
        let ticket = cache.ticket("a");
        cache.put(ticket, user("a"));
        assert!(cache.get("a").is_some(), "fresh read kept");
    }

    #[test]
    fn a_flush_refuses_reads_begun_before_it_and_untrusted_entries_are_not_served() {
        let cache = UserCache::default();
        let ticket = cache.ticket("b");
        cache.flush();
        cache.put(ticket, user("b"));
        assert!(cache.get("b").is_none(), "read from before the flush kept");
        cache.put(cache.ticket("b"), user("b"));
        cache.distrust();
        assert!(cache.get("b").is_none(), "served while untrusted");
        assert!(cache.get_untrusted("b").is_some(), "kept for outages");
    }

    #[test]
    fn trust_lapses_unless_renewed_and_comes_back_only_after_a_flush() {
        let cache = UserCache::default();
        cache.put(cache.ticket("c"), user("c"));
        assert!(!cache.trust_until(Instant::now()), "a first lease");
        assert!(cache.get("c").is_none(), "served after the lease lapsed");
        let during = cache.ticket("c");
        assert!(cache.trust_until(Instant::now() + Duration::from_secs(60)));
        assert!(cache.get("c").is_none(), "kept across a lapse");
        cache.put(during, user("c"));
        assert!(
            cache.get("c").is_none(),
            "a read begun during the lapse kept"
        );
        cache.put(cache.ticket("c"), user("c"));
        assert!(cache.get("c").is_some(), "not trusted again");
        assert!(!cache.trust_until(Instant::now() + Duration::from_secs(60)));
        assert!(cache.get("c").is_some(), "a renewal in time flushed");
    }

    #[test]
    fn a_count_is_forgotten_on_any_write_and_never_put_back_by_an_older_read() {
        let cache = UserCache::default();
        let all = None;
        let count = |cache: &UserCache| cache.count(&all).map(|(count, _)| count);
        let now = Instant::now();
        cache.put_count(cache.list_ticket(), all.clone(), 3, now);
        assert_eq!(count(&cache), Some(3));
        let ticket = cache.list_ticket();
        cache.evict("someone");
        assert_eq!(count(&cache), None, "kept across a write");
        cache.put_count(ticket, all.clone(), 3, now);
        assert_eq!(count(&cache), None, "a count read before the write kept");
        cache.put_count(cache.list_ticket(), all.clone(), 4, now);
        cache.forget_lists();
        assert_eq!(count(&cache), None, "kept across a first sighting");
        cache.put_count(cache.list_ticket(), all.clone(), 4, now);
        cache.distrust();
        assert_eq!(count(&cache), None, "served while untrusted");
    }

    #[test]
    fn a_page_is_forgotten_on_any_write_and_never_put_back_by_an_older_read() {
        let cache = UserCache::default();
        let query = |raw: &str| {
            let params = super::super::query::ListParams {
                limit: Some(raw.to_owned()),
                ..Default::default()
            };
            params.parse().expect("valid query")
        };
        let page = |count| Page {
            count,
            results: RawValue::from_string("[]".into()).expect("JSON").into(),
        };
        let served = |cache: &UserCache, q: &str| cache.page(&query(q)).map(|p| p.count);
        cache.put_page(cache.list_ticket(), query("5"), page(1), Instant::now());
        assert_eq!(served(&cache, "5"), Some(1));
        assert_eq!(served(&cache, "6"), None, "another query");
        let ticket = cache.list_ticket();
        cache.evict("someone");
        assert_eq!(served(&cache, "5"), None, "kept across a write");
        cache.put_page(ticket, query("5"), page(1), Instant::now());
        assert_eq!(
            served(&cache, "5"),
            None,
            "a page read before the write kept"
        );
        cache.put_page(cache.list_ticket(), query("5"), page(2), Instant::now());
        cache.forget_lists();
        assert_eq!(served(&cache, "5"), None, "kept across a first sighting");
        cache.put_page(cache.list_ticket(), query("5"), page(2), Instant::now());
        assert_eq!(served(&cache, "5"), Some(2));
        // A page read with a count cached earlier ages from that count.
        let counted = Instant::now() - LIST_TTL;
        cache.put_page(cache.list_ticket(), query("7"), page(3), counted);
        assert_eq!(served(&cache, "7"), None, "kept past its count's age");
        cache.distrust();
        assert_eq!(served(&cache, "5"), None, "served while untrusted");
    }
}
