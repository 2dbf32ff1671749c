//! What the `/users` endpoints do, each through one trip to the database
//! at most, off the actix workers; the cache is kept in step here, and
//! answers a sighting or a page it holds without a trip. On SQLite a
//! sighting reads apart from the writes, and so does an early page of the
//! list, both on the worker when a connection is idle ([`db::read`]);
//! first logins are committed together ([`db::write_together`]). On
//! PostgreSQL the sightings waiting are read together, and their first
//! logins inserted together ([`Sightings`]).

use std::{sync::Arc, time::Instant};

use super::{
    UserCache,
    cache::{Cached, Page},
    dto::CreateUser,
    model::{NewUser, User, UserChanges, now},
    query::ListQuery,
    repo,
    sightings::{FirstSight, Sightings},
};
use crate::{
    auth::{Principal, Verifier},
    db::{self, DbConnection, DbError, DbPool},
    error::ApiError,
    fields::{Email, Name},
};

/// The caller's row, created from the token on first sight (copying its
/// `email` and `name`), with `last_seen_at` refreshed when stale. A row seen
/// moments ago comes from the cache, without a trip to the database; so does
/// the refusal of a deleted subject.
pub async fn sighting(
    pool: &DbPool,
    cache: &UserCache,
    sightings: &Sightings,
    principal: &Principal,
) -> Result<Arc<User>, ApiError> {
    let sub = principal.sub.as_str();
    if let Some(known) = cache.get(sub).and_then(recent) {
        return known;
    }
    let ticket = cache.ticket(sub);
    let read = read_or_create(pool, sightings, principal).await;
    let entry = match read {
        Ok((user, created)) => {
            if created {
                cache.forget_lists();
            }
            Cached::User(Arc::new(user))
        }
        Err(e) if e.is_not_found() => Cached::Deleted(sub.into()),
        // With no database to ask, what was seen moments ago is the best answer.
        Err(e) if e.is_unavailable() => {
            return cache
                .get_untrusted(sub)
                .and_then(recent)
                .unwrap_or(Err(e.into()));
        }
        Err(e) => return Err(e.into()),
    };
    cache.put(ticket, entry.clone());
    match entry {
        Cached::User(user) => Ok(user),
        Cached::Deleted(_) => Err(ApiError::Deleted),
    }
}

/// The answer a cache entry gives, if it is recent enough to skip the database.
fn recent(entry: Cached) -> Option<Result<Arc<User>, ApiError>> {
    match entry {
        Cached::Deleted(_) => Some(Err(ApiError::Deleted)),
        Cached::User(user) => repo::seen_recently(&user, now()).then_some(Ok(user)),
    }
}

/// The caller's row from the database, created if absent (then `true`);
/// `NotFound` when the subject is tombstoned.
async fn read_or_create(
    pool: &DbPool,
    sightings: &Sightings,
    principal: &Principal,
) -> Result<(User, bool), DbError> {
    // On PostgreSQL, `None` when neither the read nor the insert of the
    // batch answered: another request or replica inserted the row
    // meanwhile, or the subject is tombstoned.
    let found = if pool.is_postgres() {
        sightings.find_or_insert(first_sight(principal)).await?
    } else {
        find_recent_on_sqlite(pool, principal.sub.as_str()).await?
    };
    if let Some(found) = found {
        return Ok(found);
    }
    let sight = first_sight(principal);
    // On SQLite, committed together with the first logins arriving meanwhile.
    db::write_together(pool, move |conn| {
        let (user, created) = repo::get_or_create(conn, &sight.row())?;
        Ok((touched(conn, user)?, created))
    })
    .await
}

/// The row `principal`'s first sighting creates, its `email` and `name`
/// copied from the token.
fn first_sight(principal: &Principal) -> FirstSight {
    FirstSight {
        sub: principal.sub.to_string(),
        email: principal.email.as_ref().map(Email::to_string),
        name: principal.name.as_ref().map(Name::to_string),
    }
}

/// On SQLite, most sightings find a row seen within the interval: that read
/// is all they need, made apart from the writes (on the worker when it can
/// be). `None` when there is more to do.
async fn find_recent_on_sqlite(pool: &DbPool, sub: &str) -> Result<Option<(User, bool)>, DbError> {
    let sub = sub.to_owned();
    let user = db::read(pool, move |conn| Ok(repo::find_by_sub(conn, &sub)?)).await?;
    Ok(user
        .filter(|user| repo::seen_recently(user, now()))
        .map(|user| (user, false)))
}

/// `user`, with its sighting recorded now if the last one is stale.
fn touched(conn: &mut DbConnection, mut user: User) -> Result<User, DbError> {
    if let Some(seen) = repo::touch_last_seen(conn, &user)? {
        user.last_seen_at = Some(seen);
    }
    Ok(user)
}

/// One page of users and the count of all that match: a page asked for
/// again within [`LIST_TTL`](super::cache::LIST_TTL) comes from the cache,
/// until a user is written; a count is read once for every page of a
/// search in that time.
pub async fn list(pool: &DbPool, cache: &UserCache, query: ListQuery) -> Result<Page, ApiError> {
    // Taken first: a write after it refuses what this request would keep,
    // the count it finds in the cache included.
    let ticket = cache.list_ticket();
    if let Some(page) = cache.page(&query) {
        return Ok(served_from_cache(page));
    }
    let mut known = cache.count(&query.search);
    let counting = if known.is_none() {
        let lock = cache.counting(&query.search);
        let turn = match lock.try_lock() {
            Ok(turn) => Some(turn),
            // Another request is counting: wait for it once, then use its
            // count, or its page when it read this one.
            Err(_) => {
                drop(lock.lock().await);
                if let Some(page) = cache.page(&query) {
                    return Ok(served_from_cache(page));
                }
                None
            }
        };
        known = cache.count(&query.search);
        turn
    } else {
        None
    };
    metrics::counter!("usergate_page_cache_total", "result" => "miss").increment(1);
    let read_at = Instant::now();
    let search = known.is_none().then(|| query.search.clone());
    // A counted early page in index order walks a thousand index entries
    // at most: on SQLite it is read on the worker when a connection is idle.
    let cheap = known.is_some() && query.walks_few_rows();
    let asked = query.clone();
    let counted = known.map(|(count, _)| count);
    let read = move |conn: &mut _| Ok(repo::list(conn, &asked, counted)?);
    let (count, users) = if cheap {
        db::read(pool, read).await?
    } else {
        db::run(pool, read).await?
    };
    let results =
        serde_json::value::to_raw_value(&users).map_err(|e| ApiError::Internal(e.into()))?;
    let page = Page {
        count,
        results: results.into(),
    };
    if let Some(search) = search {
        cache.put_count(ticket, search, count, read_at);
    }
    // The page is as old as its count.
    let counted_at = known.map_or(read_at, |(_, at)| at);
    cache.put_page(ticket, query, page.clone(), counted_at);
    drop(counting);
    Ok(page)
}

/// `page`, counted as served from the cache.
fn served_from_cache(page: Page) -> Page {
    metrics::counter!("usergate_page_cache_total", "result" => "hit").increment(1);
    page
}

/// Creates the user an admin asked for (lifting a tombstone); 409 when the
/// `sub` exists.
pub async fn create(pool: &DbPool, cache: &UserCache, body: CreateUser) -> Result<User, ApiError> {
    let sub = body.sub.to_string();
    let created = db::run(pool, move |conn| {
        let new = NewUser::by_admin(
            body.sub.as_str(),
            body.email.as_ref().map(Email::as_str),
            body.name.as_ref().map(Name::as_str),
            body.is_active.unwrap_or(true),
        );
        Ok(repo::create_by_admin(conn, &new)?)
    })
    .await;
    cache.evict(&sub);
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
    // Evicted, not replaced: two writes may commit in one order and return
    // in the other. The next sighting reads the row.
    cache.evict(&user.sub);
    Ok(user)
}

/// Deletes row `id`, leaving a tombstone, and forgets its subject here:
/// the user cache and the verified tokens.
pub async fn delete(
    pool: &DbPool,
    cache: &UserCache,
    verifier: &Verifier,
    id: i64,
) -> Result<(), ApiError> {
    let sub = db::run(pool, move |conn| Ok(repo::delete(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound)?;
    cache.evict(&sub);
    verifier.forget_subject(&sub);
    Ok(())
}
