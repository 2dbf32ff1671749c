//! The auth middleware, which verifies (a bearer token, or a DPoP-bound
//! token and its proof) and puts the caller's [`Principal`] in the request,
//! and the extractors handlers read it with.

use std::{future::Future, marker::PhantomData, pin::Pin, sync::Arc};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, dev::ServiceRequest};
use actix_web_httpauth::middleware::HttpAuthentication;

use super::{
    AuthError, Credentials, Dpop, DpopMode, Principal, Rejection, TokenError, Verifier,
    dpop::{DpopError, ProofTarget},
};
use crate::http::public_base_url;

/// What the validator of [`HttpAuthentication`] returns.
type Verdict =
    Pin<Box<dyn Future<Output = Result<ServiceRequest, (actix_web::Error, ServiceRequest)>>>>;

/// The middleware of a protected scope: verifies the token with `verifier`
/// (and its proof with `dpop` when it is bound) and inserts `Arc<Principal>`
/// into the request's extensions.
pub fn bearer_auth(
    verifier: Verifier,
    dpop: Dpop,
) -> HttpAuthentication<Credentials, impl Fn(ServiceRequest, Credentials) -> Verdict> {
    HttpAuthentication::with_fn(move |req, credentials| {
        let (verifier, dpop) = (verifier.clone(), dpop.clone());
        Box::pin(async move {
            match authenticate(&verifier, &dpop, req.request(), credentials).await {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                    Ok(req)
                }
                Err(e) => Err((e.reject(req.request()).into(), req)),
            }
        }) as Verdict
    })
}

/// The principal of a request's credentials. The token cache may answer for
/// the token, never for the proof: a bound token's proof is checked on
/// every request.
async fn authenticate(
    verifier: &Verifier,
    dpop: &Dpop,
    req: &HttpRequest,
    credentials: Credentials,
) -> Result<Arc<Principal>, AuthError> {
    match (credentials, dpop.mode()) {
        (Credentials::Bearer(_), DpopMode::Required) => Err(TokenError::DpopRequired.into()),
        (Credentials::Bearer(token), _) => {
            let principal = verifier.verify(&token).await?;
            if principal.jkt.is_some() {
                return Err(TokenError::BoundAsBearer.into());
            }
            Ok(principal)
        }
        // Disabled: the scheme is as unknown as any other.
        (Credentials::Dpop { .. }, DpopMode::Disabled) => Err(AuthError::Missing),
        (Credentials::Dpop { token, proof }, _) => {
            let proof = proof.map_err(DpopError::Malformed)?;
            let principal = verifier.verify(&token).await?;
            let jkt = principal.jkt.as_deref().ok_or(TokenError::NotBound)?;
            let url = format!("{}{}", public_base_url(req), req.path());
            let target = ProofTarget {
                method: req.method().as_str(),
                url: &url,
                token: &token,
                jkt,
            };
            dpop.check(&proof, &target).await?;
            Ok(principal)
        }
        (Credentials::Missing, _) => Err(AuthError::Missing),
        (Credentials::Malformed(why), _) => Err(AuthError::Malformed(why)),
    }
}

/// The verified caller, as the bearer middleware left it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

impl Authenticated {
    /// The principal of `req`; 401 when the scope has no bearer middleware.
    pub fn of(req: &HttpRequest) -> Result<Self, Rejection> {
        req.extensions()
            .get::<Arc<Principal>>()
            .cloned()
            .map(Self)
            .ok_or_else(|| AuthError::Missing.reject(req))
    }

    /// 403 `insufficient_scope` for `req` unless the token grants `permission`.
    pub fn require(&self, req: &HttpRequest, permission: &'static str) -> Result<(), Rejection> {
        if self.0.has(permission) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(permission).reject(req))
        }
    }
}

impl FromRequest for Authenticated {
    type Error = Rejection;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::of(req))
    }
}

/// A permission an operation needs; the resource that checks it names it.
pub trait Permission {
    /// Its name, as in the token's `scope`/`permissions`.
    const NAME: &'static str;
}

/// Extractor that answers 403 `insufficient_scope` unless the caller holds `P`.
pub struct Require<P: Permission> {
    /// The caller, who holds `P`.
    pub principal: Arc<Principal>,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequest for Require<P> {
    type Error = Rejection;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Authenticated::of(req).and_then(|caller| {
            caller.require(req, P::NAME)?;
            Ok(Self {
                principal: caller.0,
                _permission: PhantomData,
            })
        }))
    }
}
