//! The only code that speaks SQL about users.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use diesel::result::{DatabaseErrorKind, Error};

use super::{
    invalidation::announce,
    model::{NewUser, Tombstone, User, UserChanges, now},
    query::{ListQuery, OrderField, Ordering},
};
use crate::db::{
    DbConnection, MultiBackend,
    schema::{user_tombstones, users},
    single_write, write_transaction,
};

/// How often `last_seen_at` may be written for one user.
pub const LAST_SEEN_INTERVAL: TimeDelta = TimeDelta::minutes(5);

/// The columns of [`User`] in its fields' order, for `RETURNING` (where
/// `as_select()` does not compile on the multi-backend connection).
fn returned() -> <User as Selectable<MultiBackend>>::SelectExpression {
    <User as Selectable<MultiBackend>>::construct_selection()
}

/// One user by id.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// One user by subject.
pub fn find_by_sub(conn: &mut DbConnection, sub: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::sub.eq(sub))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// The columns of a [`User`], for the statements written as SQL text.
macro_rules! user_columns {
    () => {
        "id, sub, email, name, is_active, created_at, updated_at, last_seen_at"
    };
}

/// The rows of `subs` that exist, in one statement on PostgreSQL (one a
/// subject elsewhere). The statement is planned for each batch: a plan
/// cached while the table was small would scan it whole once it is not.
pub fn find_by_subs(conn: &mut DbConnection, subs: &[&str]) -> QueryResult<Vec<User>> {
    let DbConnection::Pg(pg) = conn else {
        let mut found = Vec::new();
        for sub in subs {
            found.extend(find_by_sub(conn, sub)?);
        }
        return Ok(found);
    };
    diesel::sql_query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE sub = ANY($1)"
    ))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(subs)
    .load(pg)
}

/// Inserts a row; a unique violation when the `sub` is taken.
pub fn create(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table)
        .values(new)
        .returning(returned())
        .get_result(conn)
}

/// The row for `new.sub`, inserted if absent (then `true`); `NotFound` when the `sub` is
/// tombstoned (no row, and none may be made). Race-safe on both backends and
/// across processes: the unique index decides, and the loser reads the
/// winner's row. The steady state is one SELECT.
pub fn get_or_create(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<(User, bool)> {
    if let Some(user) = find_by_sub(conn, new.sub)? {
        return Ok((user, false));
    }
    match create_unless_tombstoned(conn, new) {
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            // Every delete leaves a tombstone: a winner's row that is gone
            // already means the subject was deleted.
            let user = find_by_sub(conn, new.sub)?.ok_or(Error::NotFound)?;
            Ok((user, false))
        }
        created => Ok((created?, true)),
    }
}

/// What the database says when an insert meets a tombstone (the migration
/// `refuse_tombstoned_inserts` on each backend).
const TOMBSTONED: &str = "usergate: this subject is tombstoned";

/// Inserts `new` unless its `sub` is tombstoned (`NotFound`, nothing
/// written): one statement, which the database refuses (a trigger, on both
/// backends) when a tombstone exists, even one a concurrent delete commits
/// while the insert waits on the unique index. No other replica is told: a
/// new row changes no cached row, and their counts and pages age out within
/// [`LIST_TTL`](super::cache::LIST_TTL).
fn create_unless_tombstoned(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
    match single_write(conn, |conn| create(conn, new)) {
        Err(Error::DatabaseError(_, info)) if info.message() == TOMBSTONED => Err(Error::NotFound),
        created => created,
    }
}

/// Inserts, in one statement (one transaction, one commit), the rows of
/// `new` whose `sub` has neither a row nor a tombstone, and returns those it
/// inserted; the others, and a second row of one `sub`, are left out.
/// `NotFound`, with nothing written, when a tombstone of one of them is
/// committed after the statement looked for it: the trigger refuses the
/// whole statement then. The rows go in in `sub` order, so that two
/// batches wait on each other's index entries in one order and never
/// deadlock. Like [`find_by_subs`], planned for each batch. PostgreSQL only
/// (a SQLite batch is a transaction of single inserts,
/// [`write_together`](crate::db::write_together)).
pub fn create_absent(conn: &mut DbConnection, new: &[NewUser<'_>]) -> QueryResult<Vec<User>> {
    use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamp};
    let DbConnection::Pg(pg) = conn else {
        return Err(Error::QueryBuilderError(
            "create_absent is for PostgreSQL".into(),
        ));
    };
    let mut rows = new.to_vec();
    rows.sort_unstable_by_key(|row| row.sub);
    rows.dedup_by_key(|row| row.sub);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let subs: Vec<&str> = rows.iter().map(|row| row.sub).collect();
    let emails: Vec<Option<&str>> = rows.iter().map(|row| row.email).collect();
    let names: Vec<Option<&str>> = rows.iter().map(|row| row.name).collect();
    let active: Vec<bool> = rows.iter().map(|row| row.is_active).collect();
    let created: Vec<NaiveDateTime> = rows.iter().map(|row| row.created_at).collect();
    let updated: Vec<NaiveDateTime> = rows.iter().map(|row| row.updated_at).collect();
    let seen: Vec<Option<NaiveDateTime>> = rows.iter().map(|row| row.last_seen_at).collect();
    let inserted = diesel::sql_query(concat!(
        "INSERT INTO users (sub, email, name, is_active, created_at, updated_at, last_seen_at) \
         SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7) \
             AS arriving (sub, email, name, is_active, created_at, updated_at, last_seen_at) \
         WHERE NOT EXISTS (SELECT 1 FROM user_tombstones WHERE user_tombstones.sub = arriving.sub) \
         ORDER BY sub \
         ON CONFLICT (sub) DO NOTHING \
         RETURNING ",
        user_columns!()
    ))
    .bind::<Array<Text>, _>(subs)
    .bind::<Array<Nullable<Text>>, _>(emails)
    .bind::<Array<Nullable<Text>>, _>(names)
    .bind::<Array<Bool>, _>(active)
    .bind::<Array<Timestamp>, _>(created)
    .bind::<Array<Timestamp>, _>(updated)
    .bind::<Array<Nullable<Timestamp>>, _>(seen)
    .load(pg);
    match inserted {
        Err(Error::DatabaseError(_, info)) if info.message() == TOMBSTONED => Err(Error::NotFound),
        inserted => inserted,
    }
}

/// Lifts the subject's tombstone if any, creates the row an admin asked
/// for and tells the other replicas, in one transaction; a unique
/// violation when the `sub` is taken.
pub fn create_by_admin(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
    write_transaction(conn, |conn| {
        diesel::delete(user_tombstones::table.find(new.sub)).execute(conn)?;
        let user = create(conn, new)?;
        announce(conn, new.sub)?;
        Ok(user)
    })
}

/// Records a sighting unless one was recorded less than
/// [`LAST_SEEN_INTERVAL`] ago (checked in the statement itself, so
/// concurrent requests write at most once).
pub fn touch_last_seen(conn: &mut DbConnection, user: &User) -> QueryResult<Option<NaiveDateTime>> {
    let now = now();
    if seen_recently(user, now) {
        return Ok(None);
    }
    let stale = users::last_seen_at
        .is_null()
        .or(users::last_seen_at.lt(now - LAST_SEEN_INTERVAL));
    let updated = single_write(conn, |conn| {
        diesel::update(users::table.find(user.id).filter(stale))
            .set(users::last_seen_at.eq(now))
            .execute(conn)
    })?;
    Ok((updated > 0).then_some(now))
}

/// [`touch_last_seen`] for each of `users`, in one statement: their
/// `last_seen_at` is now where it was written.
pub fn touch_all_last_seen(conn: &mut DbConnection, users: &mut [User]) -> QueryResult<()> {
    let now = now();
    let stale: Vec<i64> = users
        .iter()
        .filter(|user| !seen_recently(user, now))
        .map(|user| user.id)
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let DbConnection::Pg(pg) = conn else {
        for user in users.iter_mut() {
            if let Some(seen) = touch_last_seen(conn, user)? {
                user.last_seen_at = Some(seen);
            }
        }
        return Ok(());
    };
    #[derive(QueryableByName)]
    struct Written {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    // Planned each time, as `find_by_subs` is.
    let written: Vec<Written> = diesel::sql_query(
        "UPDATE users SET last_seen_at = $1 WHERE id = ANY($2) \
         AND (last_seen_at IS NULL OR last_seen_at < $3) RETURNING id",
    )
    .bind::<diesel::sql_types::Timestamp, _>(now)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&stale)
    .bind::<diesel::sql_types::Timestamp, _>(now - LAST_SEEN_INTERVAL)
    .load(pg)?;
    let written: std::collections::HashSet<i64> = written.into_iter().map(|w| w.id).collect();
    for user in users.iter_mut().filter(|user| written.contains(&user.id)) {
        user.last_seen_at = Some(now);
    }
    Ok(())
}

/// Whether a sighting of `user` at `now` needs no recording: the last one
/// is less than [`LAST_SEEN_INTERVAL`] old.
pub fn seen_recently(user: &User, now: NaiveDateTime) -> bool {
    user.last_seen_at
        .is_some_and(|seen| now - seen < LAST_SEEN_INTERVAL)
}

/// Applies `changes`, bumps `updated_at` and tells the other replicas;
/// `None` when the id is unknown.
pub fn update(
    conn: &mut DbConnection,
    id: i64,
    mut changes: UserChanges,
) -> QueryResult<Option<User>> {
    changes.updated_at = Some(now());
    write_transaction(conn, |conn| {
        let user = diesel::update(users::table.find(id))
            .set(&changes)
            .returning(returned())
            .get_result::<User>(conn)
            .optional()?;
        if let Some(user) = &user {
            announce(conn, &user.sub)?;
        }
        Ok(user)
    })
}

/// Deletes a row, leaves a tombstone for its `sub` and tells the other
/// replicas, in one transaction; returns the `sub`, `None` when the id is
/// unknown.
pub fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<Option<String>> {
    write_transaction(conn, |conn| {
        let Some(sub) = diesel::delete(users::table.find(id))
            .returning(users::sub)
            .get_result::<String>(conn)
            .optional()?
        else {
            return Ok(None);
        };
        // A row and a tombstone never coexist (creation lifts it), so a
        // plain insert cannot conflict.
        diesel::insert_into(user_tombstones::table)
            .values(Tombstone {
                sub: &sub,
                deleted_at: now(),
            })
            .execute(conn)?;
        announce(conn, &sub)?;
        Ok(Some(sub))
    })
}

diesel::define_sql_function! {
    /// SQL `lower`, on both backends.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Escapes LIKE's wildcards so user text matches literally.
fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of users and the total count of the filtered set (counted
/// unless `known_count` is given).
pub fn list(
    conn: &mut DbConnection,
    q: &ListQuery,
    known_count: Option<i64>,
) -> QueryResult<(i64, Vec<User>)> {
    let filtered = || {
        let mut query = users::table.into_boxed();
        if let Some(search) = &q.search {
            let pattern = like_pattern(search);
            query = query.filter(
                lower(users::sub.nullable())
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(users::email).like(pattern.clone()).escape('\\'))
                    .or(lower(users::name).like(pattern).escape('\\')),
            );
        }
        query
    };
    let count = match known_count {
        Some(count) => count,
        None => filtered().count().get_result(conn)?,
    };
    let query = filtered();
    // Ties are broken by id, so pages never repeat or skip a row.
    let ordering = q.ordering.unwrap_or(Ordering::DEFAULT);
    let query = match (ordering.field, ordering.descending) {
        (OrderField::Id, false) => query.order(users::id.asc()),
        (OrderField::Id, true) => query.order(users::id.desc()),
        (OrderField::CreatedAt, false) => query.order((users::created_at.asc(), users::id.asc())),
        (OrderField::CreatedAt, true) => query.order((users::created_at.desc(), users::id.desc())),
        // Backends disagree on where NULLs sort; pin it: last ascending, first descending.
        (OrderField::Email, false) => query.order((
            users::email.is_null().asc(),
            users::email.asc(),
            users::id.asc(),
        )),
        (OrderField::Email, true) => query.order((
            users::email.is_null().desc(),
            users::email.desc(),
            users::id.desc(),
        )),
    };
    let rows = query
        .select(User::as_select())
        .limit(q.limit.get())
        .offset(q.offset.get())
        .load(conn)?;
    Ok((count, rows))
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(like_pattern("ÀB"), "%àb%");
    }
}
