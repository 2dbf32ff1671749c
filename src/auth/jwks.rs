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

use super::{cache::TokenCache, issuers, key_set::KeySet};
use crate::{config::AuthSettings, report::Chain};

/// An ask for a fetch, answered when the actor is done with it.
type Demand = oneshot::Sender<()>;

/// Read access to the current key set and a way to ask for a refresh.
#[derive(Clone)]
pub struct KeyStore {
    current: Arc<ArcSwapOption<KeySet>>,
    /// Why the last fetch failed, while it did (for readiness).
    problem: Arc<ArcSwapOption<String>>,
    demands: Option<mpsc::Sender<Demand>>,
}

impl KeyStore {
    /// A store that never changes (dev mode, benchmarks).
    pub fn fixed(keys: KeySet) -> Self {
        Self {
            current: Arc::new(ArcSwapOption::from_pointee(keys)),
            problem: Arc::new(ArcSwapOption::empty()),
            demands: None,
        }
    }

    /// Why the last fetch failed, if it did.
    pub fn problem(&self) -> Option<Arc<String>> {
        self.problem.load_full()
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

/// Starts the JWKS actor of `issuer` on the current runtime and returns its store.
pub fn spawn(
    settings: &AuthSettings,
    issuer: &str,
    client: reqwest::Client,
    cache: TokenCache,
) -> KeyStore {
    let current = Arc::new(ArcSwapOption::empty());
    let problem = Arc::new(ArcSwapOption::empty());
    let (tx, rx) = mpsc::channel(64);
    let actor = JwksActor {
        client,
        issuer: issuer.to_owned(),
        configured: settings.jwks_url.clone(),
        allowed: settings.algorithms.clone(),
        refresh: settings.jwks_refresh,
        cooldown: settings.jwks_cooldown,
        current: current.clone(),
        problem: problem.clone(),
        cache,
    };
    tokio::spawn(actor.run(rx));
    KeyStore {
        current,
        problem,
        demands: Some(tx),
    }
}

struct JwksActor {
    client: reqwest::Client,
    issuer: String,
    /// `AUTH0_JWKS_URL`; `None`: discovery, read again with every fetch.
    configured: Option<Url>,
    allowed: Vec<Algorithm>,
    refresh: Duration,
    cooldown: Duration,
    current: Arc<ArcSwapOption<KeySet>>,
    problem: Arc<ArcSwapOption<String>>,
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
        let outcome = match issuers::fetch(
            &self.client,
            &self.issuer,
            self.configured.as_ref(),
            &self.allowed,
        )
        .await
        {
            Ok((keys, url)) => {
                log::info!(
                    "loaded {} signing key(s) of {} from {url}",
                    keys.len(),
                    self.issuer
                );
                self.problem.store(None);
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
                let why = Chain(&e).to_string();
                log::warn!(
                    "key set fetch of {} failed, keeping the last good key set: {why}",
                    self.issuer
                );
                self.problem.store(Some(Arc::new(why)));
                "error"
            }
        };
        metrics::counter!("usergate_jwks_fetches_total", "outcome" => outcome).increment(1);
        outcome == "success"
    }
}
