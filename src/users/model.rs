//! The `users` row and the shapes written to it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{
    MaybeStamp, Stamp,
    schema::{user_tombstones, users},
};

/// A user row, as the API shows it.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Serialize, ToSchema,
)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct User {
    /// Local id, a 64-bit integer.
    pub id: i64,
    /// The Auth0 subject (`sub` claim), unique.
    #[schema(example = "auth0|64a1f0c2e4b0d1a2b3c4d5e6")]
    pub sub: String,
    /// Email address, if known.
    pub email: Option<String>,
    /// Display name, if known.
    pub name: Option<String>,
    /// `false` bans the user locally on every `/users` endpoint.
    pub is_active: bool,
    /// When the row was created (RFC 3339, UTC).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    #[diesel(deserialize_as = Stamp)]
    pub created_at: NaiveDateTime,
    /// When the row last changed (RFC 3339, UTC).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    #[diesel(deserialize_as = Stamp)]
    pub updated_at: NaiveDateTime,
    /// Last authenticated request, refreshed at most every 5 minutes.
    #[serde(with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    #[diesel(deserialize_as = MaybeStamp)]
    pub last_seen_at: Option<NaiveDateTime>,
}

/// A row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// The subject.
    pub sub: &'a str,
    /// Email, if any.
    pub email: Option<&'a str>,
    /// Name, if any.
    pub name: Option<&'a str>,
    /// Active unless said otherwise.
    pub is_active: bool,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
    /// Set when created from a token: that request is a sighting.
    pub last_seen_at: Option<NaiveDateTime>,
}

impl<'a> NewUser<'a> {
    /// The row of a subject seen for the first time in a token: active, and
    /// that request is its first sighting.
    pub fn first_sight(sub: &'a str, email: Option<&'a str>, name: Option<&'a str>) -> Self {
        let at = now();
        Self {
            sub,
            email,
            name,
            is_active: true,
            created_at: at,
            updated_at: at,
            last_seen_at: Some(at),
        }
    }

    /// A row an admin creates; its user has not been seen yet.
    pub fn by_admin(
        sub: &'a str,
        email: Option<&'a str>,
        name: Option<&'a str>,
        is_active: bool,
    ) -> Self {
        Self {
            last_seen_at: None,
            is_active,
            ..Self::first_sight(sub, email, name)
        }
    }
}

/// The mark a deleted subject leaves: its tokens create no row again.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = user_tombstones)]
pub struct Tombstone<'a> {
    /// The deleted subject.
    pub sub: &'a str,
    /// When it was deleted.
    pub deleted_at: NaiveDateTime,
}

/// Changes to a row; `None` leaves a column as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    /// New email.
    pub email: Option<Option<String>>,
    /// New name.
    pub name: Option<Option<String>>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// Always set by the repository.
    pub updated_at: Option<NaiveDateTime>,
}

/// The current time as stored: UTC, microsecond precision on both backends.
pub fn now() -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    now.with_nanosecond_truncated()
}

trait TruncateMicros {
    fn with_nanosecond_truncated(self) -> Self;
}

impl TruncateMicros for NaiveDateTime {
    fn with_nanosecond_truncated(self) -> Self {
        use chrono::Timelike;
        let micros = self.nanosecond() / 1_000 * 1_000;
        self.with_nanosecond(micros).unwrap_or(self)
    }
}

mod rfc3339 {
    use chrono::{Datelike, NaiveDateTime, SecondsFormat, Timelike};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 27];
        match write_micros(t, &mut text) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }

    /// `t` in UTC as `to_rfc3339_opts(Micros, true)` writes it, without
    /// chrono's format machinery (a list page writes 150 of these); `None`
    /// outside the years 0 to 9999 and in a leap second.
    pub(super) fn write_micros<'a>(t: &NaiveDateTime, text: &'a mut [u8; 27]) -> Option<&'a str> {
        let (year, nanos) = (u32::try_from(t.year()).ok()?, t.nanosecond());
        if year > 9999 || nanos >= 1_000_000_000 {
            return None;
        }
        *text = *b"0000-00-00T00:00:00.000000Z";
        let fields = [
            (year, 0, 4),
            (t.month(), 5, 2),
            (t.day(), 8, 2),
            (t.hour(), 11, 2),
            (t.minute(), 14, 2),
            (t.second(), 17, 2),
            (nanos / 1_000, 20, 6),
        ];
        for (mut value, at, width) in fields {
            for digit in text[at..at + width].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        std::str::from_utf8(text).ok()
    }
}

mod rfc3339_opt {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat};

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let samples = [
            "2026-12-02T01:02:03.000004Z",
            "1999-01-31T23:59:59.999999Z",
            "0001-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.123456Z",
            "2024-02-29T12:00:00.100000Z",
        ];
        for sample in samples {
            let t: NaiveDateTime = DateTime::parse_from_rfc3339(sample)
                .expect("sample")
                .naive_utc();
            let mut text = [0u8; 27];
            let expected = t.and_utc().to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(
                super::rfc3339::write_micros(&t, &mut text),
                Some(expected.as_str())
            );
        }
        let far = NaiveDateTime::MAX;
        assert_eq!(
            super::rfc3339::write_micros(&far, &mut [0u8; 27]),
            None,
            "past 9999"
        );
    }
}
