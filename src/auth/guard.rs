//! The bearer middleware of the `/users` scope and the extractors handlers use.

use std::{future::Future, marker::PhantomData, pin::Pin, sync::Arc};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, dev::Payload, dev::ServiceRequest, http::header, web,
};
use actix_web_httpauth::middleware::HttpAuthentication;

use super::{AuthError, Principal, Verifier};
use crate::{
    db::DbPool,
    error::ApiError,
    users::{User, UserCache, service},
};

/// What the `Authorization` header holds, parsed per RFC 6750 §2.1.
#[derive(Debug)]
pub enum Credentials {
    /// A well-formed bearer token.
    Bearer(String),
    /// No bearer credentials at all.
    Missing,
    /// A header that is not a usable `Bearer <token>`.
    Malformed(&'static str),
}

impl Credentials {
    /// Reads the request's `Authorization` headers (never the query or body).
    pub fn from_request_head(req: &HttpRequest) -> Self {
        let mut headers = req.headers().get_all(header::AUTHORIZATION);
        let Some(value) = headers.next() else {
            return Self::Missing;
        };
        if headers.next().is_some() {
            return Self::Malformed("several Authorization headers");
        }
        let Ok(value) = value.to_str() else {
            return Self::Malformed("the Authorization header has characters outside ASCII");
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            // Another scheme carries no bearer credentials: a plain 401 challenge.
            return Self::Missing;
        }
        let token = rest.trim_matches(' ');
        if token.is_empty() {
            return Self::Malformed("Bearer without a token");
        }
        if token.contains(' ') {
            return Self::Malformed("more than one token");
        }
        if !is_b64token(token) {
            return Self::Malformed("the token has characters a bearer token cannot have");
        }
        Self::Bearer(token.to_owned())
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

impl FromRequest for Credentials {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self::from_request_head(req)))
    }
}

/// The authenticated caller: the token's principal and the caller's own row.
#[derive(Debug, Clone)]
pub struct Caller {
    /// What the token says.
    pub principal: Arc<Principal>,
    /// The caller's `users` row (created on first sight).
    pub user: Arc<User>,
}

impl Caller {
    /// Whether the token grants `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.principal.has(permission)
    }

    /// 403 `insufficient_scope` unless the token grants `permission`.
    pub fn require(&self, permission: &'static str) -> Result<(), ApiError> {
        if self.has(permission) {
            return Ok(());
        }
        metrics::counter!("usergate_auth_failures_total", "reason" => "insufficient_scope")
            .increment(1);
        Err(ApiError::InsufficientScope(permission))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only reachable behind the bearer middleware; without it, refuse.
        std::future::ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or(AuthError::Missing.into()),
        )
    }
}

/// A permission an operation needs.
pub trait Permission {
    /// Its name, as in the token's `scope`/`permissions`.
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        #[doc = concat!("The `", $name, "` permission.")]
        pub struct $ty;
        impl Permission for $ty {
            const NAME: &'static str = $name;
        }
    )*
    /// Every permission of the users API.
    pub const ALL_PERMISSIONS: &[&str] = &[$($name),*];
    };
}

permissions! {
    ReadUsers = "read:users",
    CreateUsers = "create:users",
    UpdateUsers = "update:users",
    DeleteUsers = "delete:users",
}

/// Extractor that answers 403 `insufficient_scope` unless the caller holds `P`.
pub struct Require<P: Permission> {
    /// The caller, who holds `P`.
    pub caller: Caller,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequest for Require<P> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let result = Caller::from_request(req, payload)
            .into_inner()
            .and_then(|caller| {
                caller.require(P::NAME)?;
                Ok(Self {
                    caller,
                    _permission: PhantomData,
                })
            });
        std::future::ready(result)
    }
}

type Validation =
    Pin<Box<dyn Future<Output = Result<ServiceRequest, (actix_web::Error, ServiceRequest)>>>>;

/// The middleware for the `/users` scope.
pub fn bearer_auth()
-> HttpAuthentication<Credentials, fn(ServiceRequest, Credentials) -> Validation> {
    HttpAuthentication::with_fn(|req, credentials| Box::pin(validate(req, credentials)))
}

/// Verifies the token, finds or creates the caller's row, refuses inactive users.
async fn validate(
    req: ServiceRequest,
    credentials: Credentials,
) -> Result<ServiceRequest, (actix_web::Error, ServiceRequest)> {
    match authenticate(&req, credentials).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            Ok(req)
        }
        Err(e) => {
            if let ApiError::Auth(auth) = &e {
                metrics::counter!("usergate_auth_failures_total", "reason" => auth.reason())
                    .increment(1);
            }
            Err((e.into(), req))
        }
    }
}

async fn authenticate(req: &ServiceRequest, credentials: Credentials) -> Result<Caller, ApiError> {
    let token = match credentials {
        Credentials::Bearer(token) => token,
        Credentials::Missing => return Err(AuthError::Missing.into()),
        Credentials::Malformed(why) => return Err(AuthError::Malformed(why).into()),
    };
    let (Some(verifier), Some(pool), Some(cache)) = (
        req.app_data::<web::Data<Verifier>>(),
        req.app_data::<web::Data<DbPool>>(),
        req.app_data::<web::Data<UserCache>>(),
    ) else {
        return Err(ApiError::Internal(
            "the app is wired without a verifier, pool or user cache".into(),
        ));
    };
    let principal = verifier.verify(&token).await?;
    let user = service::sighting(pool, cache, &principal).await?;
    if !user.is_active {
        return Err(ApiError::Inactive);
    }
    Ok(Caller { principal, user })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn parse(values: &[&str]) -> Credentials {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((header::AUTHORIZATION, *v));
        }
        Credentials::from_request_head(&req.to_http_request())
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        assert!(matches!(parse(&[]), Credentials::Missing));
        assert!(matches!(
            parse(&["Basic dXNlcjpwYXNz"]),
            Credentials::Missing
        ));
        assert!(
            matches!(parse(&["bearer abc.def.ghi"]), Credentials::Bearer(t) if t == "abc.def.ghi")
        );
        assert!(matches!(parse(&["BEARER abc=="]), Credentials::Bearer(t) if t == "abc=="));
        for (case, values) in [
            ("no token", &["Bearer"][..]),
            ("blank token", &["Bearer   "][..]),
            ("two tokens", &["Bearer a b"][..]),
            ("bad characters", &["Bearer a,b"][..]),
            ("padding only", &["Bearer =="][..]),
            ("two headers", &["Bearer a", "Bearer b"][..]),
        ] {
            assert!(matches!(parse(values), Credentials::Malformed(_)), "{case}");
        }
    }
}
