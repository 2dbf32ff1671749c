//! What `GET /users` and `/users/{id}` accept in the path and the query,
//! parsed into values that can only be valid, and the page links.

use std::fmt;

use actix_web::HttpRequest;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::{RequestError, public_base_url};

mod schema;

/// A user's id in a path: a positive 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId(i64);

impl UserId {
    /// Parses a path id, answering 400 for anything but a positive 64-bit integer.
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Self)
            .ok_or_else(|| RequestError::invalid("id", "must be a positive integer"))
    }

    /// The id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Query of `GET /users`, as sent (parsed into a [`ListQuery`]); each
/// parameter is documented by the type that parses it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows per page, default 50; values over 100 are capped to 100.
    #[param(value_type = Option<Limit>, inline)]
    pub limit: Option<String>,
    /// Rows to skip, default 0.
    #[param(value_type = Option<Offset>, inline)]
    pub offset: Option<String>,
    /// Case-insensitive text to find in sub, email or name (surrounding
    /// whitespace is ignored; blank means no search).
    #[param(value_type = Option<Search>, inline)]
    pub search: Option<String>,
    /// Sort order: a column, prefixed with `-` for descending; default `id`.
    #[param(value_type = Option<Ordering>, inline)]
    pub ordering: Option<String>,
}

/// Rows per page, 1 to [`Limit::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(i64);

impl Limit {
    /// The largest page; any larger ask is capped.
    pub const MAX: i64 = 100;
    /// The page size when none is asked for.
    pub const DEFAULT: i64 = 50;

    fn parse(raw: Option<&str>) -> Result<Self, RequestError> {
        match whole_number("limit", raw)? {
            None => Ok(Self(Self::DEFAULT)),
            Some(0) => Err(RequestError::invalid("limit", "must be at least 1")),
            Some(n) => Ok(Self(
                i64::try_from(n).map_or(Self::MAX, |n| n.min(Self::MAX)),
            )),
        }
    }

    /// The number of rows.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Rows skipped, at most `u32::MAX` so that `offset + limit` cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offset(i64);

impl Offset {
    /// The largest offset.
    pub const MAX: i64 = u32::MAX as i64;

    fn parse(raw: Option<&str>) -> Result<Self, RequestError> {
        match whole_number("offset", raw)?.map(u32::try_from) {
            None => Ok(Self(0)),
            Some(Ok(n)) => Ok(Self(i64::from(n))),
            Some(Err(_)) => Err(RequestError::invalid(
                "offset",
                format!("must be at most {}", Self::MAX),
            )),
        }
    }

    /// The number of rows skipped.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Digits only; an overflow is a very large number, not an error.
fn whole_number(field: &str, raw: Option<&str>) -> Result<Option<u64>, RequestError> {
    raw.map(|v| {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::invalid(
                field,
                "must be a non-negative whole number",
            ));
        }
        Ok(v.parse::<u64>().unwrap_or(u64::MAX))
    })
    .transpose()
}

/// Columns a list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderField {
    /// Row id (the default).
    Id,
    /// Creation time.
    CreatedAt,
    /// Email address (missing ones last when ascending).
    Email,
}

/// A sort order asked for with `?ordering=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ordering {
    /// Sort column.
    pub field: OrderField,
    /// Descending when true.
    pub descending: bool,
}

impl Ordering {
    /// The order when none is asked for.
    pub const DEFAULT: Self = Self {
        field: OrderField::Id,
        descending: false,
    };

    /// Every order a list can be asked for, each column ascending then descending.
    pub fn choices() -> impl Iterator<Item = Self> {
        [OrderField::Id, OrderField::CreatedAt, OrderField::Email]
            .into_iter()
            .flat_map(|field| [false, true].map(|descending| Self { field, descending }))
    }

    /// Exactly one of the [`choices`](Self::choices), as written by `Display`.
    fn parse(raw: Option<&str>) -> Result<Option<Self>, RequestError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        Self::choices()
            .find(|choice| choice.to_string() == raw)
            .map(Some)
            .ok_or_else(|| {
                RequestError::invalid(
                    "ordering",
                    "must be one of id, created_at, email, optionally prefixed with - for descending",
                )
            })
    }
}

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.field {
            OrderField::Id => "id",
            OrderField::CreatedAt => "created_at",
            OrderField::Email => "email",
        };
        write!(f, "{}{name}", if self.descending { "-" } else { "" })
    }
}

/// The `search` parameter: at most [`Search::MAX_LEN`] characters as sent,
/// no control characters; blank means no search.
pub struct Search;

impl Search {
    /// Longest accepted search, in characters.
    pub const MAX_LEN: usize = 255;
}

/// Case-insensitive text to find: [`Search`]'s rules, trimmed.
fn parse_search(raw: Option<&str>) -> Result<Option<String>, RequestError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.chars().count() > Search::MAX_LEN {
        return Err(RequestError::invalid(
            "search",
            format!("must be at most {} characters", Search::MAX_LEN),
        ));
    }
    // No row holds one (the fields refuse them), and PostgreSQL rejects NUL
    // in text while SQLite cuts the pattern at it, matching every row.
    if raw.chars().any(char::is_control) {
        return Err(RequestError::invalid(
            "search",
            "must not contain control characters",
        ));
    }
    let search = raw.trim();
    Ok((!search.is_empty()).then(|| search.to_owned()))
}

/// A valid list request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListQuery {
    /// Rows per page.
    pub limit: Limit,
    /// Rows skipped.
    pub offset: Offset,
    /// Case-insensitive substring of sub, email or name.
    pub search: Option<String>,
    /// The order asked for; `None` is [`Ordering::DEFAULT`].
    pub ordering: Option<Ordering>,
}

impl ListParams {
    /// Parses every parameter, naming the one at fault.
    pub fn parse(&self) -> Result<ListQuery, RequestError> {
        Ok(ListQuery {
            limit: Limit::parse(self.limit.as_deref())?,
            offset: Offset::parse(self.offset.as_deref())?,
            search: parse_search(self.search.as_deref())?,
            ordering: Ordering::parse(self.ordering.as_deref())?,
        })
    }
}

impl ListQuery {
    /// The index entries a cheap page may walk, its offset and its rows
    /// together: SQLite steps over a thousand in tens of microseconds.
    const FEW_ROWS: i64 = 1000;

    /// Whether the page is read by walking an index from its start for at
    /// most [`FEW_ROWS`](Self::FEW_ROWS) entries: no search (which scans
    /// every row) and an order an index keeps (`id`, the rowid, and
    /// `created_at`, `users_created_at_idx`; `email` sorts missing ones
    /// last, which no index holds).
    pub fn walks_few_rows(&self) -> bool {
        let indexed = self
            .ordering
            .is_none_or(|o| matches!(o.field, OrderField::Id | OrderField::CreatedAt));
        self.search.is_none() && indexed && self.offset.get() + self.limit.get() <= Self::FEW_ROWS
    }

    /// The links to the next and previous pages of a list of `count` rows.
    pub fn page_links(&self, req: &HttpRequest, count: i64) -> (Option<String>, Option<String>) {
        let (offset, limit) = (self.offset.get(), self.limit.get());
        let next = (offset + limit < count).then(|| self.page_url(req, offset + limit));
        let previous = (offset > 0).then(|| self.page_url(req, (offset - limit).max(0)));
        (next, previous)
    }

    fn page_url(&self, req: &HttpRequest, offset: i64) -> String {
        let base = public_base_url(req);
        let mut url = format!("{base}{}?limit={}", req.path(), self.limit.get());
        if offset > 0 {
            url.push_str(&format!("&offset={offset}"));
        }
        let mut extra = url::form_urlencoded::Serializer::new(String::new());
        if let Some(search) = &self.search {
            extra.append_pair("search", search);
        }
        if let Some(ordering) = &self.ordering {
            extra.append_pair("ordering", &ordering.to_string());
        }
        let extra = extra.finish();
        if !extra.is_empty() {
            url.push('&');
            url.push_str(&extra);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(limit: &str, offset: &str, ordering: &str) -> ListParams {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        ListParams {
            limit: some(limit),
            offset: some(offset),
            search: None,
            ordering: some(ordering),
        }
    }

    #[test]
    fn limits_are_capped_and_offsets_bounded() {
        let q = params("1000000000000000000000", "7", "-email")
            .parse()
            .expect("valid query");
        assert_eq!((q.limit.get(), q.offset.get()), (Limit::MAX, 7));
        assert_eq!(q.ordering.map(|o| o.to_string()).as_deref(), Some("-email"));
        for (case, p, field) in [
            ("zero limit", params("0", "", ""), "limit"),
            ("signed limit", params("-1", "", ""), "limit"),
            ("huge offset", params("", "4294967296", ""), "offset"),
            ("unknown ordering", params("", "", "name"), "ordering"),
        ] {
            let err = p.parse().expect_err(case);
            assert!(
                matches!(&err, RequestError::Invalid { field: f, .. } if f == field),
                "{case}: {err}"
            );
        }
    }

    #[test]
    fn only_early_pages_in_an_indexed_order_without_search_walk_few_rows() {
        let parse = |p: ListParams| p.parse().expect("valid query");
        for (case, p) in [
            ("the first page", params("", "", "")),
            ("the last few rows", params("100", "900", "")),
            ("newest first", params("50", "200", "-created_at")),
            ("by id, descending", params("", "", "-id")),
        ] {
            assert!(parse(p).walks_few_rows(), "{case}");
        }
        let searched = ListParams {
            search: Some("ada".into()),
            ..ListParams::default()
        };
        for (case, p) in [
            ("past the first thousand", params("100", "901", "")),
            ("by email", params("", "", "email")),
            ("a search", searched),
        ] {
            assert!(!parse(p).walks_few_rows(), "{case}");
        }
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(UserId::parse("42").map(UserId::get).ok(), Some(42));
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999"] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn orderings_are_exactly_the_documented_choices() {
        let choices: Vec<String> = Ordering::choices().map(|o| o.to_string()).collect();
        assert_eq!(
            choices,
            ["id", "-id", "created_at", "-created_at", "email", "-email"]
        );
        for choice in &choices {
            assert!(params("", "", choice).parse().is_ok(), "{choice}");
        }
        for bad in ["", " id", "id ", "--id", "name"] {
            let sent = ListParams {
                ordering: Some(bad.to_owned()),
                ..ListParams::default()
            };
            assert!(sent.parse().is_err(), "{bad:?}");
        }
    }
}
