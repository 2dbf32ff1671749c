//! The local dev signing key: `serve --dev` trusts it, `mint-token` signs with it.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    encoding::AsDer,
    rsa::{KeyPair, KeySize},
    signature::KeyPair as _,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::{
    auth::key_set::{JwksError, KeySet},
    users::permissions::ALL_PERMISSIONS,
};

/// Why the dev key could not be had or used.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    /// Reading or writing the key file (or its folder) failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an RSA PKCS#8 PEM key.
    #[error("the dev key is not an RSA PKCS#8 PEM key: {0}")]
    NotRsaPkcs8(String),
    /// The file is not a P-256 PKCS#8 PEM key (a DPoP key).
    #[error("the DPoP key is not a P-256 PKCS#8 PEM key: {0}")]
    NotP256Pkcs8(String),
    /// Key generation or encoding failed.
    #[error("RSA key {0} failed")]
    Crypto(&'static str),
    /// Signing a token failed.
    #[error("signing the token failed")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The claims do not make a JSON object.
    #[error("the claims are not a JSON object")]
    Claims(#[source] serde_json::Error),
}

pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevKeyError {
    let path = path.to_owned();
    move |source| DevKeyError::Io {
        action,
        path,
        source,
    }
}

/// An RSA key pair kept on disk as PKCS#8 PEM.
pub struct DevKey {
    kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

/// What a minted token says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MintRequest {
    /// `sub`.
    pub sub: String,
    /// `iss`.
    pub iss: String,
    /// `aud`.
    pub aud: String,
    /// Space-separated `scope`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `permissions`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// RFC 9449 confirmation, `{"jkt": THUMBPRINT}`: binds the token to a DPoP key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<serde_json::Value>,
    /// Lifetime.
    #[serde(skip)]
    pub ttl: Duration,
    /// More claims (`org_id`, `gty`…); they win over the ones above.
    #[serde(skip)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The header's `typ` (e.g. `at+jwt`); `JWT` when `None`.
    #[serde(skip)]
    pub typ: Option<String>,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    #[serde(flatten)]
    request: &'a MintRequest,
    iat: u64,
    exp: u64,
}

impl DevKey {
    /// Loads the key at `path`, creating it (and a private folder) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, DevKeyError> {
        if !path.exists() {
            Self::create(path)?;
        }
        Self::load(path)
    }

    /// Loads the key at `path`; never creates one.
    pub fn load(path: &Path) -> Result<Self, DevKeyError> {
        let pem = fs::read(path).map_err(io("reading the dev key", path))?;
        Self::from_pem(&pem)
    }

    fn create(path: &Path) -> Result<(), DevKeyError> {
        let pair =
            KeyPair::generate(KeySize::Rsa2048).map_err(|_| DevKeyError::Crypto("generation"))?;
        let der = pair.as_der().map_err(|_| DevKeyError::Crypto("encoding"))?;
        if create_key_file(path, der.as_ref(), "creating the dev key")? {
            log::info!("created a new dev signing key at {}", path.display());
        }
        Ok(())
    }

    /// Parses a PKCS#8 PEM RSA private key.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, DevKeyError> {
        let not_rsa = |e: &dyn std::fmt::Display| DevKeyError::NotRsaPkcs8(e.to_string());
        let parsed = pem::parse(pem_bytes).map_err(|e| not_rsa(&e))?;
        let pair = KeyPair::from_pkcs8(parsed.contents()).map_err(|e| not_rsa(&e))?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let thumb = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, n.as_bytes());
        let kid = format!("dev-{}", &URL_SAFE_NO_PAD.encode(thumb.as_ref())[..16]);
        let encoding = EncodingKey::from_rsa_pem(pem_bytes).map_err(|e| not_rsa(&e))?;
        Ok(Self {
            kid,
            encoding,
            n,
            e,
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWKS document served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n, "e": self.e,
        }]})
    }

    /// The key set the verifier trusts in dev mode.
    pub fn key_set(&self) -> Result<KeySet, JwksError> {
        KeySet::from_jwks_json(self.jwks().to_string().as_bytes(), &[Algorithm::RS256])
    }

    /// Signs a token (RS256).
    pub fn mint(&self, request: &MintRequest) -> Result<String, DevKeyError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let minted = MintedClaims {
            request,
            iat,
            exp: iat.saturating_add(request.ttl.as_secs()),
        };
        let mut claims = match serde_json::to_value(&minted).map_err(DevKeyError::Claims)? {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        claims.extend(request.claims.clone());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        if let Some(typ) = &request.typ {
            header.typ = Some(typ.clone());
        }
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }
}

/// Writes the PKCS#8 `der` as a private PEM file at `path` (and its folder),
/// unless another process created it first; `true` when this call did.
pub(crate) fn create_key_file(
    path: &Path,
    der: &[u8],
    action: &'static str,
) -> Result<bool, DevKeyError> {
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(io("creating", dir))?;
    }
    // Written aside, then linked into place: processes starting together
    // never read a half-written key, and the first link wins.
    let aside = path.with_extension(format!("tmp{}", std::process::id()));
    private_file(&aside)
        .and_then(|mut file| file.write_all(pem.as_bytes()))
        .map_err(io(action, &aside))?;
    let linked = fs::hard_link(&aside, path);
    let _ = fs::remove_file(&aside);
    match linked {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        linked => linked.map(|()| true).map_err(io(action, path)),
    }
}

/// A request holding every users permission, for the dev `curl` line.
pub fn all_permissions() -> Vec<String> {
    ALL_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect()
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}
