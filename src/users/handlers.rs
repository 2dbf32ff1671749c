//! The `/users` endpoints; thin: extract, check the permission, call the service.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{
    UserCache,
    current_user::CurrentUser,
    dto::{CreateUser, MeChanges, ReplaceUser, UpdateUser},
    model::{User, UserChanges},
    permissions::{CreateUsers, DeleteUsers, ReadUsers, UpdateUsers},
    query::{ListParams, UserId},
    service,
};
use crate::{
    auth::{Authenticated, Permission, Require, Verifier},
    db::DbPool,
    error::ApiError,
    http::{json::JsonBody, public_base_url, routes::get_or_head},
    openapi::responses::{Conflict, NotFound, Protected, WithBody},
};

/// Routes of the `/users` scope (`app` wraps them in the auth and users middleware).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").route(get_or_head().to(list)).post(create))
        .service(
            web::resource("/me")
                .route(get_or_head().to(get_me))
                .patch(patch_me),
        )
        .service(
            web::resource("/{id}")
                .route(get_or_head().to(retrieve))
                .put(change::<ReplaceUser>)
                .patch(change::<UpdateUser>)
                .delete(destroy),
        );
}

/// A page of users, in Django REST Framework's limit/offset shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Users matching the search, across all pages.
    pub count: i64,
    /// The next page's absolute URL, if any.
    pub next: Option<String>,
    /// The previous page's absolute URL, if any.
    pub previous: Option<String>,
    /// This page.
    #[schema(value_type = Vec<User>)]
    pub results: Arc<RawValue>,
}

/// The caller's own user, created on first sight.
#[utoipa::path(get, path = "/users/me", operation_id = "get_me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The caller's user", body = User), Protected))]
pub async fn get_me(caller: CurrentUser) -> web::Json<Arc<User>> {
    web::Json(caller.0)
}

/// Change the caller's own `name` and `email`.
#[utoipa::path(patch, path = "/users/me", operation_id = "update_me", tag = "users", security(("bearer" = [])), request_body = MeChanges,
    responses((status = 200, description = "The changed user", body = User), Protected, WithBody))]
pub async fn patch_me(
    caller: CurrentUser,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    body: JsonBody<MeChanges>,
) -> Result<web::Json<Arc<User>>, ApiError> {
    let user = service::update(&pool, &cache, caller.0.id, body.0.into()).await?;
    Ok(web::Json(user))
}

/// List users, with pagination, search and ordering.
#[utoipa::path(get, path = "/users", operation_id = "list_users", tag = "users", security(("bearer" = ["read:users"])), params(ListParams),
    responses((status = 200, description = "One page of users", body = UserPage), Protected))]
pub async fn list(
    _: Require<ReadUsers>,
    req: HttpRequest,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    params: web::Query<ListParams>,
) -> Result<web::Json<UserPage>, ApiError> {
    let query = params.parse()?;
    let page = service::list(&pool, &cache, query.clone()).await?;
    let (next, previous) = query.page_links(&req, page.count);
    Ok(web::Json(UserPage {
        count: page.count,
        next,
        previous,
        results: page.results,
    }))
}

/// Create a user; 409 if the sub exists.
#[utoipa::path(post, path = "/users", operation_id = "create_user", tag = "users", security(("bearer" = ["create:users"])), request_body = CreateUser,
    responses((status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "The new user's URL"))),
        Protected, WithBody, Conflict))]
pub async fn create(
    _: Require<CreateUsers>,
    req: HttpRequest,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    body: JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let user = service::create(&pool, &cache, body.0).await?;
    let location = format!("{}/users/{}", public_base_url(&req), user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(user))
}

/// One user: needs `read:users`, unless it is the caller's own id.
#[utoipa::path(get, path = "/users/{id}", operation_id = "get_user", tag = "users", security(("bearer" = ["read:users"])),
    params(("id" = inline(UserId), Path, description = "User id")),
    responses((status = 200, description = "The user", body = User), Protected, NotFound))]
pub async fn retrieve(
    req: HttpRequest,
    caller: Authenticated,
    user: Option<CurrentUser>,
    pool: web::Data<DbPool>,
    id: web::Path<String>,
) -> Result<web::Json<Arc<User>>, ApiError> {
    let id = UserId::parse(&id)?.get();
    // A machine client has no row of its own: it needs the permission.
    if let Some(user) = user.filter(|user| user.0.id == id) {
        return Ok(web::Json(user.0));
    }
    caller.require(&req, ReadUsers::NAME)?;
    Ok(web::Json(Arc::new(service::find(&pool, id).await?)))
}

/// `PUT` (a [`ReplaceUser`] body) and `PATCH` (an [`UpdateUser`] body) of
/// `/users/{id}`: the body says what changes.
pub async fn change<B>(
    _: Require<UpdateUsers>,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    id: web::Path<String>,
    body: JsonBody<B>,
) -> Result<web::Json<Arc<User>>, ApiError>
where
    B: DeserializeOwned + Into<UserChanges> + 'static,
{
    let id = UserId::parse(&id)?.get();
    let user = service::update(&pool, &cache, id, body.0.into()).await?;
    Ok(web::Json(user))
}

/// Delete a user.
#[utoipa::path(delete, path = "/users/{id}", operation_id = "delete_user", tag = "users", security(("bearer" = ["delete:users"])),
    params(("id" = inline(UserId), Path, description = "User id")),
    responses((status = 204, description = "Deleted"), Protected, NotFound))]
pub async fn destroy(
    _: Require<DeleteUsers>,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    verifier: web::Data<Verifier>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::delete(&pool, &cache, &verifier, UserId::parse(&id)?.get()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The OpenAPI operations that [`change`] serves, one per method and body.
pub mod change_docs {
    use super::*;

    /// Replace `email`, `name` and `is_active`.
    #[utoipa::path(put, path = "/users/{id}", operation_id = "replace_user", tag = "users", security(("bearer" = ["update:users"])), request_body = ReplaceUser,
        params(("id" = inline(UserId), Path, description = "User id")),
        responses((status = 200, description = "The user, changed", body = User), Protected, NotFound, WithBody))]
    #[allow(dead_code)]
    pub fn replace() {}

    /// Change any of `email`, `name`, `is_active`.
    #[utoipa::path(patch, path = "/users/{id}", operation_id = "update_user", tag = "users", security(("bearer" = ["update:users"])), request_body = UpdateUser,
        params(("id" = inline(UserId), Path, description = "User id")),
        responses((status = 200, description = "The user, changed", body = User), Protected, NotFound, WithBody))]
    #[allow(dead_code)]
    pub fn update() {}
}
