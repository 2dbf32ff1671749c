//! The trusted issuers, each with its own key store, and how an issuer's key
//! set is found: `AUTH0_JWKS_URL`, or its OpenID discovery document.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use url::Url;

use super::{
    cache::TokenCache,
    jwks::{self, KeyStore},
    key_set::{JwksError, KeySet, download, http_client},
};
use crate::config::{AuthSettings, is_loopback};

/// One key store per trusted issuer, looked up by the exact `iss` string.
/// The list is the configured allow-list: nothing a request sends adds to it.
#[derive(Clone)]
pub struct Issuers {
    /// Few entries (one or two in practice): a scan beats hashing.
    entries: Arc<[(String, KeyStore)]>,
}

impl Issuers {
    /// One issuer whose keys never change (dev mode, benchmarks, explain-token).
    pub fn fixed(issuer: &str, keys: KeySet) -> Self {
        Self {
            entries: Arc::from([(issuer.to_owned(), KeyStore::fixed(keys))]),
        }
    }

    /// Starts one JWKS actor per configured issuer on the current runtime.
    pub fn spawn(settings: &AuthSettings, cache: &TokenCache) -> Result<Self, reqwest::Error> {
        let client = http_client(settings)?;
        let entries: Vec<(String, KeyStore)> = settings
            .issuers
            .iter()
            .map(|issuer| {
                let store = jwks::spawn(settings, issuer, client.clone(), cache.clone());
                (issuer.clone(), store)
            })
            .collect();
        Ok(Self {
            entries: Arc::from(entries),
        })
    }

    /// The key store of `iss`, if it is a trusted issuer (exact match).
    pub fn get(&self, iss: &str) -> Option<&KeyStore> {
        self.entries
            .iter()
            .find(|(issuer, _)| issuer.as_str() == iss)
            .map(|(_, store)| store)
    }

    /// Every issuer and its store, the primary first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &KeyStore)> {
        self.entries
            .iter()
            .map(|(issuer, store)| (issuer.as_str(), store))
    }
}

/// The discovery document's members usergate reads.
#[derive(serde::Deserialize)]
struct Discovery {
    issuer: Option<String>,
    jwks_uri: Option<String>,
}

/// Where `issuer`'s key set is: `configured` (`AUTH0_JWKS_URL`) when set,
/// else the `jwks_uri` of its discovery document, else (no document: 404)
/// the conventional `{issuer}.well-known/jwks.json`.
pub async fn locate(
    client: &reqwest::Client,
    issuer: &str,
    configured: Option<&Url>,
) -> Result<Url, JwksError> {
    if let Some(url) = configured {
        return Ok(url.clone());
    }
    let joined = |path: &str| {
        Url::parse(&format!("{issuer}{path}")).map_err(|_| JwksError::Discovery("bad issuer URL"))
    };
    let document_url = joined(".well-known/openid-configuration")?;
    let body = match download(client, &document_url).await {
        Ok(body) => body,
        Err(JwksError::Status(reqwest::StatusCode::NOT_FOUND)) => {
            return joined(".well-known/jwks.json");
        }
        Err(e) => return Err(e),
    };
    let document: Discovery = serde_json::from_slice(&body)
        .map_err(|_| JwksError::Discovery("not an OpenID discovery document"))?;
    // OpenID Connect Discovery §4.3: the document must name this very issuer.
    let found = document.issuer.unwrap_or_default();
    if found != issuer {
        return Err(JwksError::IssuerMismatch(truncated(&found)));
    }
    let jwks_uri = document.jwks_uri.ok_or(JwksError::Discovery(
        "the discovery document has no jwks_uri",
    ))?;
    let url = Url::parse(&jwks_uri).map_err(|_| JwksError::Discovery("jwks_uri is not a URL"))?;
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
        return Err(JwksError::InsecureJwksUri(truncated(url.as_str())));
    }
    Ok(url)
}

/// Finds and downloads `issuer`'s key set once; says where it came from.
pub async fn fetch(
    client: &reqwest::Client,
    issuer: &str,
    configured: Option<&Url>,
    allowed: &[Algorithm],
) -> Result<(KeySet, Url), JwksError> {
    let url = locate(client, issuer, configured).await?;
    let body = download(client, &url).await?;
    Ok((KeySet::from_jwks_json(&body, allowed)?, url))
}

/// A value from the IdP, short enough for a log line or `/readyz`.
fn truncated(value: &str) -> String {
    value.chars().take(200).collect()
}
