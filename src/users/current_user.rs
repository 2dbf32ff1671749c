//! The second middleware of the `/users` scope: the verified principal
//! becomes the caller's row (created on first sight), inactive users stop here.

use std::sync::Arc;

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};

use super::{User, UserCache, service};
use crate::{auth::Authenticated, db::DbPool, error::ApiError};

/// The caller's own `users` row.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<User>);

/// Middleware: runs after the bearer middleware and inserts [`CurrentUser`].
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let user = match current_user(&req).await {
        Ok(user) => user,
        // Answered here, so that the outer middleware (request id, metrics,
        // security headers) see this answer like any other.
        Err(e) => return Ok(req.error_response(e).map_into_right_body()),
    };
    req.extensions_mut().insert(CurrentUser(user));
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn current_user(req: &ServiceRequest) -> Result<Arc<User>, ApiError> {
    let principal = Authenticated::of(req.request())?.0;
    let (Some(pool), Some(cache)) = (
        req.app_data::<web::Data<DbPool>>(),
        req.app_data::<web::Data<UserCache>>(),
    ) else {
        return Err(ApiError::Internal(
            "the users scope is wired without a pool or user cache".into(),
        ));
    };
    let user = service::sighting(pool, cache, &principal).await?;
    if !user.is_active {
        return Err(ApiError::Inactive);
    }
    Ok(user)
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Self>().cloned().ok_or_else(|| {
            ApiError::Internal("the users scope is wired without its users middleware".into())
        }))
    }
}
