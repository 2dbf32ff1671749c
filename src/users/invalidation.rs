//! Cache invalidation across replicas. On PostgreSQL every user write sends
//! `NOTIFY` with the row's `sub` inside its transaction (so it is delivered on
//! commit only), and every replica keeps one dedicated `LISTEN` connection,
//! polled on its own thread, that evicts each `sub` it hears of. While that
//! connection is down, or hangs, the replica may miss evictions: the cache
//! is trusted for [`TRUST_LEASE`] past the last moment the server was known
//! to answer, and once that lapses, not until the listener hears from the
//! server again and has flushed it. SQLite serves one process per database
//! file: nothing to listen to.

use std::{thread, time::Duration};

use super::{UserCache, cache::WeakUserCache};
use crate::{
    db::{DatabaseUrl, DbConnection, Listener, PING_EVERY, notify},
    report::Chain,
};

/// The channel user writes are announced on.
pub const CHANNEL: &str = "usergate_users";

/// The listener's `application_name`, as `pg_stat_activity` shows it.
pub const APPLICATION_NAME: &str = "usergate-invalidation";

/// How often the listener reads what arrived: the bulk of the delay between
/// a write on one replica and the eviction on the others.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// How long past the server's last answer the cache stays trusted. The
/// server is asked every [`PING_EVERY`], so a lease is renewed three times
/// over in the normal course; when the connection hangs, a write is served
/// stale for this long at most (plus one [`POLL_EVERY`]), within the second
/// in which every replica must see it.
const TRUST_LEASE: Duration = Duration::from_millis(750);
const _: () = assert!(
    PING_EVERY.as_millis() * 2 < TRUST_LEASE.as_millis()
        && TRUST_LEASE.as_millis() + POLL_EVERY.as_millis() < 1000
);

/// The first and the longest wait between two connection attempts.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Tells every replica that the row of `sub` changed; call it inside the
/// write's transaction.
pub fn announce(conn: &mut DbConnection, sub: &str) -> diesel::QueryResult<()> {
    notify(conn, CHANNEL, sub)
}

/// How long start-up waits for the listener's first connection.
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// Keeps `cache` in step with writes made through other replicas. On
/// PostgreSQL the cache is distrusted until the listener is up, and start-up
/// waits (bounded) for its first connection so that the first requests are
/// served from a trusted cache; the listener thread ends when the app (its
/// cache) is gone.
pub async fn start(url: &DatabaseUrl, cache: &UserCache) -> std::io::Result<()> {
    let DatabaseUrl::Postgres(url) = url else {
        return Ok(());
    };
    cache.distrust();
    metrics::gauge!("usergate_user_cache_listening").set(0.0);
    let (url, weak) = (url.clone(), cache.downgrade());
    let (first, first_done) = tokio::sync::oneshot::channel();
    thread::Builder::new()
        .name("user-invalidation".into())
        .spawn(move || run(&url, &weak, first))?;
    // Either way the server starts: without a listener it reads every user
    // from the database until the listener is up.
    let _ = tokio::time::timeout(FIRST_CONNECTION_WAIT, first_done).await;
    Ok(())
}

/// Connects, listens, and after each loss reconnects with a growing pause;
/// `first` is told when the first attempt is over.
fn run(url: &str, cache: &WeakUserCache, first: tokio::sync::oneshot::Sender<()>) {
    let mut first = Some(first);
    let mut retry = RETRY_FIRST;
    let mut failures = 0u32;
    loop {
        match Listener::connect(url, CHANNEL, APPLICATION_NAME) {
            Ok(listener) => {
                // Listening first, flushing second (trust had lapsed): a
                // write committed in between is both flushed and announced,
                // never missed.
                let Some(live) = cache.upgrade() else { return };
                live.trust_until(listener.heard() + TRUST_LEASE);
                metrics::gauge!("usergate_user_cache_listening").set(1.0);
                drop(live);
                log::info!("user cache invalidation: listening on {CHANNEL}");
                tell(&mut first);
                (retry, failures) = (RETRY_FIRST, 0);
                if !listen(listener, cache) {
                    return;
                }
            }
            Err(e) => {
                tell(&mut first);
                failures += 1;
                // One warning per outage, not one per attempt.
                if failures == 1 {
                    log::warn!(
                        "user cache invalidation: cannot listen ({}); cached users are not served until it can",
                        Chain(&e)
                    );
                }
            }
        }
        thread::sleep(retry);
        if cache.upgrade().is_none() {
            return;
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Tells start-up, once, that the first connection attempt is over.
fn tell(first: &mut Option<tokio::sync::oneshot::Sender<()>>) {
    if let Some(first) = first.take() {
        // Start-up may have stopped waiting: nobody to tell then.
        let _ = first.send(());
    }
}

/// Evicts what the listener hears until its connection fails (then the
/// cache is distrusted and `true` is returned) or the app is gone (`false`).
fn listen(mut listener: Listener, cache: &WeakUserCache) -> bool {
    loop {
        let Some(live) = cache.upgrade() else {
            return false;
        };
        match listener.drain() {
            Ok(subs) => {
                if !subs.is_empty() {
                    metrics::counter!("usergate_user_cache_invalidations_total")
                        .increment(subs.len() as u64);
                    subs.iter().for_each(|sub| live.evict(sub));
                }
                if live.trust_until(listener.heard() + TRUST_LEASE) {
                    metrics::counter!("usergate_user_cache_trust_lapses_total").increment(1);
                    log::warn!(
                        "user cache invalidation: the server did not answer the listener \
                         for over {TRUST_LEASE:?}; the user cache was flushed"
                    );
                }
            }
            Err(e) => {
                live.distrust();
                metrics::gauge!("usergate_user_cache_listening").set(0.0);
                log::warn!(
                    "user cache invalidation: the listener connection failed ({}); \
                     cached users are not served until it is back",
                    Chain(&e)
                );
                return true;
            }
        }
        drop(live);
        thread::sleep(POLL_EVERY);
    }
}
