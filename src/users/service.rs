//! What the `/users` endpoints do, each through one trip to the database
//! off the actix workers; the cache is kept in step here.

use std::sync::Arc;

use super::{
    UserCache,
    dto::CreateUser,
    model::{NewUser, User, UserChanges, now},
    query::ListQuery,
    repo::{self, LAST_SEEN_INTERVAL},
};
use crate::{
    auth::Principal,
    db::{self, DbPool},
    error::ApiError,
    fields::{Email, Name},
};

/// The caller's row, created from the token on first sight (copying its
/// `email` and `name`), with `last_seen_at` refreshed when stale. A row seen
/// moments ago comes from the cache, without a trip to the database.
pub async fn sighting(
    pool: &DbPool,
    cache: &UserCache,
    principal: &Principal,
) -> Result<Arc<User>, ApiError> {
    if let Some(user) = cache.get(principal.sub.as_str())
        && user
            .last_seen_at
            .is_some_and(|seen| now() - seen < LAST_SEEN_INTERVAL)
    {
        return Ok(user);
    }
    let sub = principal.sub.to_string();
    let email = principal.email.as_ref().map(Email::to_string);
    let name = principal.name.as_ref().map(Name::to_string);
    let user = db::run(pool, move |conn| {
        let new = NewUser::first_sight(&sub, email.as_deref(), name.as_deref());
        let mut user = repo::get_or_create(conn, &new)?;
        if let Some(seen) = repo::touch_last_seen(conn, &user)? {
            user.last_seen_at = Some(seen);
        }
        Ok(user)
    })
    .await?;
    let user = Arc::new(user);
    cache.put(user.clone());
    Ok(user)
}

/// One page of users and the count of all that match.
pub async fn list(pool: &DbPool, query: ListQuery) -> Result<(i64, Vec<User>), ApiError> {
    Ok(db::run(pool, move |conn| Ok(repo::list(conn, &query)?)).await?)
}

/// Creates the user an admin asked for; 409 when the `sub` exists.
pub async fn create(pool: &DbPool, body: CreateUser) -> Result<User, ApiError> {
    let created = db::run(pool, move |conn| {
        let new = NewUser::by_admin(
            body.sub.as_str(),
            body.email.as_ref().map(Email::as_str),
            body.name.as_ref().map(Name::as_str),
            body.is_active.unwrap_or(true),
        );
        Ok(repo::create(conn, &new)?)
    })
    .await;
    match created {
        Err(e) if e.is_unique_violation() => {
            Err(ApiError::Conflict("a user with this sub already exists"))
        }
        created => Ok(created?),
    }
}

/// One user by id.
pub async fn find(pool: &DbPool, id: i64) -> Result<User, ApiError> {
    db::run(pool, move |conn| Ok(repo::find(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Applies `changes` to row `id` and keeps the cache in step.
pub async fn update(
    pool: &DbPool,
    cache: &UserCache,
    id: i64,
    changes: UserChanges,
) -> Result<Arc<User>, ApiError> {
    let user = db::run(pool, move |conn| Ok(repo::update(conn, id, changes)?))
        .await?
        .map(Arc::new)
        .ok_or(ApiError::NotFound)?;
    cache.put(user.clone());
    Ok(user)
}

/// Deletes row `id` and forgets it.
pub async fn delete(pool: &DbPool, cache: &UserCache, id: i64) -> Result<(), ApiError> {
    let sub = db::run(pool, move |conn| Ok(repo::delete(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound)?;
    cache.forget(&sub);
    Ok(())
}
