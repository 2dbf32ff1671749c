//! The JWKS actor: the one task that fetches the key set, and the store
//! every worker reads it from without a lock.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use super::{
    cache::TokenCache,
    key_set::{KeySet, download, http_client},
};
use crate::{config::AuthSettings, report::Chain};

/// An ask for a fetch, answered when the actor is done with it.
type Demand = oneshot::Sender<()>;

/// Read access to the current key set and a way to ask for a refresh.
#[derive(Clone)]
pub struct KeyStore {
    current: Arc<ArcSwapOption<KeySet>>,
    demands: Option<mpsc::Sender<Demand>>,
}

impl KeyStore {
    /// A store that never changes (dev mode, benchmarks).
    pub fn fixed(keys: KeySet) -> Self {
        Self {
            current: Arc::new(ArcSwapOption::from_pointee(keys)),
            demands: None,
        }
    }

    /// The current key set, if one has been loaded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Asks the actor for a fetch and waits for it (at most `wait`). The actor
    /// coalesces concurrent asks and applies the cooldown.
    pub async fn refresh(&self, wait: Duration) {
        let Some(demands) = &self.demands else { return };
        let (tx, rx) = oneshot::channel();
        // A full queue means a fetch is already being asked for: wait for none.
        if demands.try_send(tx).is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }
}

/// Starts the JWKS actor on the current runtime and returns its store.
pub fn spawn(settings: &AuthSettings, cache: TokenCache) -> Result<KeyStore, reqwest::Error> {
    let current = Arc::new(ArcSwapOption::empty());
    let (tx, rx) = mpsc::channel(64);
    let actor = JwksActor {
        client: http_client(settings)?,
        url: settings.jwks_url.clone(),
        allowed: settings.algorithms.clone(),
        refresh: settings.jwks_refresh,
        cooldown: settings.jwks_cooldown,
        current: current.clone(),
        cache,
    };
    tokio::spawn(actor.run(rx));
    Ok(KeyStore {
        current,
        demands: Some(tx),
    })
}

struct JwksActor {
    client: reqwest::Client,
    url: Url,
    allowed: Vec<Algorithm>,
    refresh: Duration,
    cooldown: Duration,
    current: Arc<ArcSwapOption<KeySet>>,
    cache: TokenCache,
}

impl JwksActor {
    async fn run(self, mut demands: mpsc::Receiver<Demand>) {
        let mut retry = Duration::from_secs(1);
        let mut last_demanded_fetch: Option<Instant> = None;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    next = tokio::time::Instant::now() + if self.fetch().await {
                        retry = Duration::from_secs(1);
                        self.refresh
                    } else if self.current.load().is_none() {
                        // Nothing loaded yet: retry with backoff up to the refresh interval.
                        retry = (retry * 2).min(self.refresh);
                        retry
                    } else {
                        self.refresh
                    };
                }
                demand = demands.recv() => {
                    let Some(first) = demand else { break };
                    let mut waiters = vec![first];
                    while let Ok(more) = demands.try_recv() {
                        waiters.push(more);
                    }
                    if last_demanded_fetch.is_none_or(|at| at.elapsed() >= self.cooldown) {
                        last_demanded_fetch = Some(Instant::now());
                        self.fetch().await;
                        // Asks that queued during the fetch are answered by it.
                        while let Ok(more) = demands.try_recv() {
                            waiters.push(more);
                        }
                    } else {
                        metrics::counter!("usergate_jwks_fetches_total", "outcome" => "cooldown").increment(1);
                    }
                    for waiter in waiters {
                        let _ = waiter.send(());
                    }
                }
            }
        }
    }

    /// One fetch; publishes the set on success and keeps the old one otherwise.
    async fn fetch(&self) -> bool {
        let outcome = match download(&self.client, &self.url)
            .await
            .and_then(|body| KeySet::from_jwks_json(&body, &self.allowed))
        {
            Ok(keys) => {
                log::info!("loaded {} signing key(s) from {}", keys.len(), self.url);
                let previous = self.current.swap(Some(Arc::new(keys)));
                if let (Some(old), Some(new)) = (previous, self.current.load_full())
                    && new.replaces_keys_of(&old)
                {
                    // Tokens verified with a removed or replaced key (same
                    // kid, other material) must not live on in the cache.
                    self.cache.clear();
                }
                "success"
            }
            Err(e) => {
                log::warn!(
                    "JWKS fetch from {} failed, keeping the last good key set: {}",
                    self.url,
                    Chain(&e)
                );
                "error"
            }
        };
        metrics::counter!("usergate_jwks_fetches_total", "outcome" => outcome).increment(1);
        outcome == "success"
    }
}
