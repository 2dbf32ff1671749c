//! The trusted key set and the one task that fetches it.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use super::cache::TokenCache;
use crate::config::AuthSettings;

/// A key set larger than this is garbage, not keys.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// RSA keys shorter than this are refused (bytes of modulus).
const MIN_RSA_MODULUS_BYTES: usize = 2048 / 8;

/// A verification key and the algorithms it may be used with.
pub struct TrustedKey {
    /// The public key.
    pub key: DecodingKey,
    /// The JWK's own `alg`, or every allowed algorithm of its type.
    pub algorithms: Vec<Algorithm>,
}

/// The keys usergate currently trusts, by `kid`.
pub struct KeySet {
    keys: HashMap<String, TrustedKey>,
    /// When this set was fetched.
    pub loaded_at: Instant,
}

impl KeySet {
    /// Keeps the signing keys of `jwks` that fit the allow-list; skips the rest.
    pub fn from_jwks_json(body: &[u8], allowed: &[Algorithm]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet =
            serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys: HashMap<_, _> = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| trusted_key(&jwk, allowed))
            .collect();
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key for the allowed algorithms".into());
        }
        Ok(Self {
            keys,
            loaded_at: Instant::now(),
        })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never true for a published set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn lost_keys_of(&self, old: &KeySet) -> bool {
        old.keys.keys().any(|kid| !self.keys.contains_key(kid))
    }
}

fn trusted_key(jwk: &Jwk, allowed: &[Algorithm]) -> Option<(String, TrustedKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let modulus_len = base64_len(&rsa.n);
            if modulus_len < MIN_RSA_MODULUS_BYTES {
                return None;
            }
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ]
        }
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        // Symmetric and other keys never verify tokens here.
        _ => return None,
    };
    let mut algorithms: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if let Some(declared) = jwk.common.key_algorithm {
        let declared = Algorithm::try_from(declared).ok()?;
        algorithms.retain(|a| *a == declared);
    }
    if algorithms.is_empty() {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, TrustedKey { key, algorithms }))
}

/// Decoded length of unpadded base64url text.
fn base64_len(b64: &str) -> usize {
    b64.trim_end_matches('=').len() * 3 / 4
}

/// A ask for a fetch, answered when the actor is done with it.
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
                    && new.lost_keys_of(&old)
                {
                    // Tokens signed by a removed key must not live on in the cache.
                    self.cache.clear();
                }
                "success"
            }
            Err(e) => {
                log::warn!(
                    "JWKS fetch from {} failed, keeping the last good key set: {e}",
                    self.url
                );
                "error"
            }
        };
        metrics::counter!("usergate_jwks_fetches_total", "outcome" => outcome).increment(1);
        outcome == "success"
    }
}

/// The JWKS client every fetch uses: its time limit, no redirects.
pub fn http_client(settings: &AuthSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(settings.jwks_timeout)
        .connect_timeout(settings.jwks_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("usergate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One GET of the JWKS document, refusing bodies over [`MAX_JWKS_BYTES`].
pub async fn download(client: &reqwest::Client, url: &Url) -> Result<Vec<u8>, String> {
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("body over {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
