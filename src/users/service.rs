//! Database work run off the actix workers.

use std::sync::Arc;

use actix_web::web;

use super::{
    UserCache,
    model::{NewUser, User, UserChanges, now},
    repo::{self, LAST_SEEN_INTERVAL},
};
use crate::{
    auth::Principal,
    db::{DbConnection, DbError, DbPool},
    error::ApiError,
};

/// Runs `f` with a pooled connection on the blocking pool.
pub async fn with_conn<T, F>(pool: &DbPool, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        f(&mut conn)
    })
    .await?
}

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
    let sub = principal.sub.as_str().to_owned();
    let email = principal.email.as_ref().map(|e| e.as_str().to_owned());
    let name = principal.name.as_ref().map(|n| n.as_str().to_owned());
    let user = with_conn(pool, move |conn| {
        let created_at = now();
        let new = NewUser {
            sub: &sub,
            email: email.as_deref(),
            name: name.as_deref(),
            is_active: true,
            created_at,
            updated_at: created_at,
            last_seen_at: Some(created_at),
        };
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

/// Applies `changes` to row `id` and keeps the cache in step; `None` when absent.
pub async fn update(
    pool: &DbPool,
    cache: &UserCache,
    id: i64,
    changes: UserChanges,
) -> Result<Option<Arc<User>>, ApiError> {
    let user = with_conn(pool, move |conn| Ok(repo::update(conn, id, changes)?))
        .await?
        .map(Arc::new);
    if let Some(user) = &user {
        cache.put(user.clone());
    }
    Ok(user)
}

/// Deletes row `id` and forgets it; `false` when absent.
pub async fn delete(pool: &DbPool, cache: &UserCache, id: i64) -> Result<bool, ApiError> {
    let sub = with_conn(pool, move |conn| Ok(repo::delete(conn, id)?)).await?;
    if let Some(sub) = &sub {
        cache.forget(sub);
    }
    Ok(sub.is_some())
}
