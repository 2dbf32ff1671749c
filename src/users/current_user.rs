//! The second middleware of the `/users` scope: the verified principal
//! becomes the caller's row (created on first sight); deleted and inactive
//! users stop here. Machine clients have no row: they pass with none, and
//! only handlers that need the caller's own row refuse them.

use std::sync::Arc;

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};

use super::{Sightings, User, UserCache, service};
use crate::{
    auth::{Authenticated, Principal},
    db::DbPool,
    error::ApiError,
};

/// The caller's own `users` row.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<User>);

/// Middleware: runs after the bearer middleware and inserts [`CurrentUser`]
/// (unless the caller is a machine client). A refusal is answered here, as
/// a response, so the middleware around it (request id, metrics) sees it.
pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    if let Err(refused) = admit(&req).await {
        return Ok(req.error_response(refused).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn admit(req: &ServiceRequest) -> Result<(), ApiError> {
    let principal = Authenticated::of(req.request())?.0;
    // Read from the verified token: costs no query.
    if !principal.is_machine {
        let user = current_user(req, &principal).await?;
        req.extensions_mut().insert(CurrentUser(user));
    }
    Ok(())
}

async fn current_user(req: &ServiceRequest, principal: &Principal) -> Result<Arc<User>, ApiError> {
    let (Some(pool), Some(cache), Some(sightings)) = (
        req.app_data::<web::Data<DbPool>>(),
        req.app_data::<web::Data<UserCache>>(),
        req.app_data::<web::Data<Sightings>>(),
    ) else {
        return Err(ApiError::Internal(
            "the users scope is wired without a pool, user cache or sightings queue".into(),
        ));
    };
    let user = service::sighting(pool, cache, sightings, principal).await?;
    if !user.is_active {
        return Err(ApiError::Inactive);
    }
    Ok(user)
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<Self>().cloned();
        std::future::ready(found.ok_or_else(|| match Authenticated::of(req) {
            Ok(caller) if caller.0.is_machine => ApiError::MachineClient,
            _ => ApiError::Internal("the users scope is wired without its users middleware".into()),
        }))
    }
}
