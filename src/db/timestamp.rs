//! `Timestamp` columns read without chrono's format strings.
//!
//! On SQLite a timestamp is text, which diesel parses by trying chrono
//! format strings in turn (12 % of a 50-user list page's CPU). The one form
//! diesel writes, `YYYY-MM-DD HH:MM:SS[.fraction]`, is read here by hand;
//! any other form goes to diesel's parser. PostgreSQL's binary timestamps
//! go to diesel as they are.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::{
    backend::Backend,
    deserialize::{self, FromSql, FromSqlRow},
    pg::Pg,
    sql_types::{Nullable, Timestamp},
    sqlite::Sqlite,
};

use super::{MultiBackend, MultiRawValue};

/// A `Timestamp` column, for `#[diesel(deserialize_as = Stamp)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct Stamp(pub NaiveDateTime);

/// A `Nullable<Timestamp>` column, for `#[diesel(deserialize_as = MaybeStamp)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub struct MaybeStamp(pub Option<NaiveDateTime>);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl From<MaybeStamp> for Option<NaiveDateTime> {
    fn from(stamp: MaybeStamp) -> Self {
        stamp.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        if let Some(parsed) = parse_text(value.read_text()) {
            return Ok(Self(parsed));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(value: MultiRawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

impl<DB: Backend> FromSql<Nullable<Timestamp>, DB> for MaybeStamp
where
    Stamp: FromSql<Timestamp, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Stamp::from_sql(value).map(|stamp| Self(Some(stamp.0)))
    }

    fn from_nullable_sql(value: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        value.map_or(Ok(Self(None)), Self::from_sql)
    }
}

/// `YYYY-MM-DD HH:MM:SS`, with an optional fraction of 1 to 9 digits, as a
/// valid date and time; `None` for anything else.
fn parse_text(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')];
    if bytes.len() < 19 || separators.iter().any(|&(at, sep)| bytes[at] != sep) {
        return None;
    }
    let digits = |from: usize, to: usize| {
        bytes[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let nanos = match &bytes[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            // At most 9 digits: the power and the product stay below 10^9.
            digits(20, bytes.len())? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(0, 4)?).ok()?,
        digits(5, 7)?,
        digits(8, 10)?,
    )?;
    let time =
        NaiveTime::from_hms_nano_opt(digits(11, 13)?, digits(14, 16)?, digits(17, 19)?, nanos)?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_diesel_writes_reads_as_chrono_reads_it() {
        for text in [
            "2026-12-02 05:31:07",
            "2026-12-02 05:31:07.5",
            "2026-12-02 05:31:07.123",
            "2026-12-02 05:31:07.123456",
            "2026-12-02 05:31:07.123456789",
            "1970-01-01 00:00:00.000001",
            "2024-02-29 23:59:59.999999",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%F %T%.f").expect(text);
            assert_eq!(parse_text(text), Some(chrono), "{text}");
        }
    }

    #[test]
    fn any_other_form_is_left_to_diesel() {
        for text in [
            "",
            "2026-12-02",
            "2026-12-02T05:31:07",
            "2026-12-02 05:31:07Z",
            "2026-12-02 05:31:07+00:00",
            "2026-12-02 05:31:07.",
            "2026-12-02 05:31:07.1234567890",
            "2026-02-30 05:31:07",
            "2026-12-02 24:00:00",
            "2026-12-02 23:59:60",
            "2026-1x-02 05:31:07",
            "2460646.5",
        ] {
            assert_eq!(parse_text(text), None, "{text}");
        }
    }
}
