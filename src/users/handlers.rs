//! The `/users` endpoints; thin: parse, check permission, call the repo.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    UserCache,
    fields::{Email, Name, Subject, non_null, nullable},
    model::{NewUser, User, UserChanges, now},
    repo::{self, CreateError, ListQuery, OrderField},
    service::{self, with_conn},
};
use crate::{
    auth::{Caller, CreateUsers, DeleteUsers, Permission, ReadUsers, Require, UpdateUsers},
    db::DbPool,
    error::{ApiError, Problem},
    extract::{JsonBody, parse_id},
    request_context::public_base_url,
};

/// Routes of the `/users` scope (the bearer middleware wraps them in `app`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").get(list).post(create))
        .service(web::resource("/me").get(get_me).patch(patch_me))
        .service(
            web::resource("/{id}")
                .get(retrieve)
                .put(replace)
                .patch(update)
                .delete(destroy),
        );
}

/// `PATCH /users/me` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeChanges {
    /// New email, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Option<Email>>,
    /// New name, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<Name>>,
}

/// `POST /users` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The Auth0 subject; must not exist yet.
    #[schema(value_type = String)]
    pub sub: Subject,
    /// Email address.
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Email>,
    /// Display name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Defaults to true.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = bool)]
    pub is_active: Option<bool>,
}

/// `PUT /users/{id}` body: email and name default to null; is_active is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceUser {
    /// Email address (null or absent clears it).
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Email>,
    /// Display name (null or absent clears it).
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Active flag.
    pub is_active: bool,
}

/// `PATCH /users/{id}` body: any of the fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// New email, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Option<Email>>,
    /// New name, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<Name>>,
    /// New active flag.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = bool)]
    pub is_active: Option<bool>,
}

/// Query of `GET /users`, as sent (validated into a [`ListQuery`]).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page: 1 to 100 (larger values are capped), default 50.
    pub limit: Option<String>,
    /// Rows to skip, default 0.
    pub offset: Option<String>,
    /// Case-insensitive text to find in sub, email or name.
    pub search: Option<String>,
    /// `id`, `created_at` or `email`; prefix `-` for descending.
    pub ordering: Option<String>,
}

/// The largest page.
pub const MAX_LIMIT: i64 = 100;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 50;

impl ListParams {
    /// Validates every parameter, naming the one at fault.
    pub fn parse(&self) -> Result<ListQuery, ApiError> {
        let number = |field: &str, raw: &Option<String>| -> Result<Option<u64>, ApiError> {
            raw.as_deref()
                .map(|v| {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ApiError::invalid(
                            field,
                            "must be a non-negative whole number",
                        ));
                    }
                    // Only digits: a failure is an overflow, i.e. a very large number.
                    Ok(v.parse::<u64>().unwrap_or(u64::MAX))
                })
                .transpose()
        };
        let limit = match number("limit", &self.limit)? {
            None => DEFAULT_LIMIT,
            Some(0) => return Err(ApiError::invalid("limit", "must be at least 1")),
            // Any larger page is capped, however large the number.
            Some(n) => i64::try_from(n).map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT)),
        };
        // Bounded so that `offset + limit` cannot overflow.
        let offset = match number("offset", &self.offset)?.map(u32::try_from) {
            None => 0,
            Some(Ok(n)) => i64::from(n),
            Some(Err(_)) => {
                return Err(ApiError::invalid(
                    "offset",
                    format!("must be at most {}", u32::MAX),
                ));
            }
        };
        let search = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > 255) {
            return Err(ApiError::invalid(
                "search",
                "must be at most 255 characters",
            ));
        }
        // No row holds one (the fields refuse them), and PostgreSQL rejects NUL
        // in text while SQLite cuts the pattern at it, matching every row.
        if search.is_some_and(|s| s.chars().any(char::is_control)) {
            return Err(ApiError::invalid(
                "search",
                "must not contain control characters",
            ));
        }
        let (descending, field) = match self.ordering.as_deref().map(str::trim) {
            None | Some("") => (false, "id"),
            Some(o) => o.strip_prefix('-').map_or((false, o), |f| (true, f)),
        };
        let order = match field {
            "id" => OrderField::Id,
            "created_at" => OrderField::CreatedAt,
            "email" => OrderField::Email,
            _ => {
                return Err(ApiError::invalid(
                    "ordering",
                    "must be one of id, created_at, email, optionally prefixed with - for descending",
                ));
            }
        };
        Ok(ListQuery {
            limit,
            offset,
            search: search.map(str::to_owned),
            order,
            descending,
        })
    }
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
    pub results: Vec<User>,
}

fn page_url(req: &HttpRequest, q: &ListQuery, params: &ListParams, offset: i64) -> String {
    let mut url = format!("{}{}?limit={}", public_base_url(req), req.path(), q.limit);
    if offset > 0 {
        url.push_str(&format!("&offset={offset}"));
    }
    let mut extra = url::form_urlencoded::Serializer::new(String::new());
    if let Some(search) = &q.search {
        extra.append_pair("search", search);
    }
    if let Some(ordering) = params.ordering.as_deref().filter(|o| !o.trim().is_empty()) {
        extra.append_pair("ordering", ordering.trim());
    }
    let extra = extra.finish();
    if !extra.is_empty() {
        url.push('&');
        url.push_str(&extra);
    }
    url
}

/// The caller's own user, created on first sight.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn get_me(caller: Caller) -> web::Json<Arc<User>> {
    web::Json(caller.user)
}

/// Change the caller's own `name` and `email`.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = MeChanges,
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn patch_me(
    caller: Caller,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    body: JsonBody<MeChanges>,
) -> Result<web::Json<Arc<User>>, ApiError> {
    let changes = UserChanges {
        email: body.0.email.map(|e| e.map(String::from)),
        name: body.0.name.map(|n| n.map(String::from)),
        ..UserChanges::default()
    };
    let id = caller.user.id;
    let user = service::update(&pool, &cache, id, changes).await?;
    user.map(web::Json).ok_or(ApiError::NotFound)
}

/// List users, with pagination, search and ordering.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = ["read:users"])), params(ListParams),
    responses((status = 200, body = UserPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list(
    _: Require<ReadUsers>,
    req: HttpRequest,
    pool: web::Data<DbPool>,
    params: web::Query<ListParams>,
) -> Result<web::Json<UserPage>, ApiError> {
    let q = params.parse()?;
    let query = q.clone();
    let (count, results) = with_conn(&pool, move |conn| Ok(repo::list(conn, &query)?)).await?;
    let next =
        (q.offset + q.limit < count).then(|| page_url(&req, &q, &params, q.offset + q.limit));
    let previous = (q.offset > 0).then(|| page_url(&req, &q, &params, (q.offset - q.limit).max(0)));
    Ok(web::Json(UserPage {
        count,
        next,
        previous,
        results,
    }))
}

/// Create a user; 409 if the sub exists.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = ["create:users"])), request_body = CreateUser,
    responses((status = 201, body = User, headers(("Location" = String))), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    _: Require<CreateUsers>,
    req: HttpRequest,
    pool: web::Data<DbPool>,
    body: JsonBody<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let user = with_conn(&pool, move |conn| {
        let created_at = now();
        let new = NewUser {
            sub: body.sub.as_str(),
            email: body.email.as_ref().map(Email::as_str),
            name: body.name.as_ref().map(Name::as_str),
            is_active: body.is_active.unwrap_or(true),
            created_at,
            updated_at: created_at,
            last_seen_at: None,
        };
        repo::create(conn, &new).map_err(|e| match e {
            CreateError::Conflict => {
                ApiError::Conflict("a user with this sub already exists".into())
            }
            CreateError::Db(e) => e.into(),
        })
    })
    .await?;
    let location = format!("{}/users/{}", public_base_url(&req), user.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(user))
}

/// One user: needs `read:users`, unless it is the caller's own id.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = ["read:users"])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn retrieve(
    caller: Caller,
    pool: web::Data<DbPool>,
    id: web::Path<String>,
) -> Result<web::Json<User>, ApiError> {
    let id = parse_id(&id)?;
    if id == caller.user.id {
        return Ok(web::Json(User::clone(&caller.user)));
    }
    caller.require(ReadUsers::NAME)?;
    let user = with_conn(&pool, move |conn| Ok(repo::find(conn, id)?)).await?;
    user.map(web::Json).ok_or(ApiError::NotFound)
}

/// Replace `email`, `name` and `is_active`.
#[utoipa::path(put, path = "/users/{id}", tag = "users", security(("bearer" = ["update:users"])), request_body = ReplaceUser,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn replace(
    _: Require<UpdateUsers>,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    id: web::Path<String>,
    body: JsonBody<ReplaceUser>,
) -> Result<web::Json<Arc<User>>, ApiError> {
    let id = parse_id(&id)?;
    let body = body.0;
    let changes = UserChanges {
        email: Some(body.email.map(String::from)),
        name: Some(body.name.map(String::from)),
        is_active: Some(body.is_active),
        updated_at: None,
    };
    let user = service::update(&pool, &cache, id, changes).await?;
    user.map(web::Json).ok_or(ApiError::NotFound)
}

/// Change any of `email`, `name`, `is_active`.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = ["update:users"])), request_body = UpdateUser,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn update(
    _: Require<UpdateUsers>,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    id: web::Path<String>,
    body: JsonBody<UpdateUser>,
) -> Result<web::Json<Arc<User>>, ApiError> {
    let id = parse_id(&id)?;
    let body = body.0;
    let changes = UserChanges {
        email: body.email.map(|e| e.map(String::from)),
        name: body.name.map(|n| n.map(String::from)),
        is_active: body.is_active,
        updated_at: None,
    };
    let user = service::update(&pool, &cache, id, changes).await?;
    user.map(web::Json).ok_or(ApiError::NotFound)
}

/// Delete a user.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = ["delete:users"])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn destroy(
    _: Require<DeleteUsers>,
    pool: web::Data<DbPool>,
    cache: web::Data<UserCache>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let deleted = service::delete(&pool, &cache, id).await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
