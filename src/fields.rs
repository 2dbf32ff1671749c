//! Value types that can only hold valid values (parse, don't validate),
//! shared by the token's claims and the users' rows.

use std::fmt;

use serde::Deserialize;
use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type},
};

/// An Auth0 subject: 1 to 255 characters, not blank, no control, bidi or
/// zero-width characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Subject(String);

/// An email address of at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

/// A display name of 1 to 200 characters, not blank, no control, bidi or
/// zero-width characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Name(String);

/// What `char::is_control` refuses (Unicode `Cc`), as a JSON Schema pattern.
pub const NO_CONTROL_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// What [`check_text`] accepts, as a JSON Schema pattern: no control, bidi
/// or zero-width character (`is_invisible_or_bidi`), and at least one
/// character that is none of those nor `char::is_whitespace` (which
/// `str::trim` strips).
const TEXT_PATTERN: &str = concat!(
    r"^[^\x00-\x1F\x7F-\x9F\u061C\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]*",
    r"[^\x00-\x20\x7F-\xA0\u061C\u1680\u2000-\u200F\u2028-\u202F\u205F\u2060\u2066-\u2069\u3000\uFEFF]",
    r"[^\x00-\x1F\x7F-\x9F\u061C\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]*$"
);

/// A string of at most `max` characters matching `pattern`.
fn text_schema(min: usize, max: usize, pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
}

impl PartialSchema for Subject {
    fn schema() -> RefOr<Schema> {
        text_schema(1, Self::MAX_LEN, TEXT_PATTERN)
            .examples([json!("auth0|64a1f0c2e4b0d1a2b3c4d5e6")])
            .into()
    }
}

impl PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(Self::MAX_LEN))
            .examples([json!("ada@example.com")])
            .into()
    }
}

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        text_schema(1, Self::MAX_LEN, TEXT_PATTERN).into()
    }
}

impl ToSchema for Subject {}
impl ToSchema for Email {}
impl ToSchema for Name {}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Characters that make text display other than it is stored: bidi
/// embeddings, overrides, isolates and marks (U+202E turns "txt.exe" into
/// "exe.txt" on screen), and zero-width characters that make two equal-looking
/// values differ.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// What every text field checks: 1 to `max` characters, not blank, no
/// control, bidi or zero-width characters.
fn check_text(s: &str, max: usize, if_empty: &'static str) -> Result<(), String> {
    let len = s.chars().count();
    if len == 0 {
        return Err(if_empty.into());
    }
    if len > max {
        return Err(format!("must be at most {max} characters"));
    }
    if has_control(s) {
        return Err("must not contain control characters".into());
    }
    if s.chars().any(is_invisible_or_bidi) {
        return Err("must not contain bidi control or zero-width characters".into());
    }
    if s.trim().is_empty() {
        return Err("must not be blank (whitespace only)".into());
    }
    Ok(())
}

impl Subject {
    /// Longest accepted subject, in characters.
    pub const MAX_LEN: usize = 255;

    /// Checks length and characters.
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        let if_empty = "must not be empty";
        if s.trim().is_empty() {
            return Err(if_empty.into());
        }
        check_text(&s, Self::MAX_LEN, if_empty)?;
        Ok(Self(s))
    }
}

impl Email {
    /// Longest accepted address, in characters (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;

    /// Checks length and address syntax.
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.chars().count() > Self::MAX_LEN {
            return Err(format!("must be at most {} characters", Self::MAX_LEN));
        }
        if has_control(&s)
            || s.contains(char::is_whitespace)
            || s.chars().any(is_invisible_or_bidi)
            || !email_address::EmailAddress::is_valid(&s)
        {
            return Err("is not a valid email address".into());
        }
        Ok(Self(s))
    }
}

impl Name {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 200;

    /// Checks length and characters.
    pub fn parse(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        check_text(
            &s,
            Self::MAX_LEN,
            "must not be empty (send null to clear it)",
        )?;
        Ok(Self(s))
    }
}

macro_rules! string_newtype {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
    )*};
}

string_newtype!(Subject, Email, Name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(Subject::parse("auth0|abc").is_ok());
        assert!(Subject::parse("x".repeat(255)).is_ok());
        for bad in ["", "   ", "a\u{0}b", &"x".repeat(256)] {
            assert!(Subject::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert!(Email::parse("ada@example.com").is_ok());
        let local = "a".repeat(64);
        let long = format!("{local}@{}.com", "b".repeat(250 - 64));
        assert!(long.len() > 254 && Email::parse(long).is_err());
        for bad in ["", "no-at-sign", "a@", "@b.com", "a b@c.com", "a@b.com\n"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_documented_pattern_accepts_what_the_parsers_accept() {
        let pattern = regex::Regex::new(TEXT_PATTERN).expect("the pattern compiles");
        let samples = [
            "Ada Lovelace",
            "auth0|abc",
            " padded ",
            "é",
            "",
            "   ",
            "\u{3000}\u{00A0}",
            "a\u{0}b",
            "tab\tinside",
            "txt\u{202E}exe",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "mark\u{200F}",
            "\u{2066}isolate\u{2069}",
            "next\u{0085}line",
        ];
        for sample in samples {
            assert_eq!(
                pattern.is_match(sample),
                Name::parse(sample).is_ok(),
                "name {sample:?}"
            );
            assert_eq!(
                pattern.is_match(sample),
                Subject::parse(sample).is_ok(),
                "subject {sample:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert!(Name::parse("Ada Lovelace").is_ok());
        assert!(
            Name::parse("é".repeat(200)).is_ok(),
            "the limit counts characters, not bytes"
        );
        assert!(Name::parse("é".repeat(201)).is_err());
        assert!(Name::parse("").is_err());
    }

    #[test]
    fn names_that_display_other_than_they_are_are_refused() {
        for bad in [
            " ",
            "\u{3000}\u{2003}",
            "Ada\u{202E}txt.exe",
            "A\u{202A}b",
            "A\u{2066}b",
            "A\u{2069}b",
            "A\u{200E}b",
            "A\u{200F}b",
            "A\u{061C}b",
            "A\u{200B}da",
            "A\u{200C}b",
            "A\u{200D}b",
            "A\u{2060}da",
            "\u{FEFF}Ada",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Name::parse(" Ada ").is_ok(),
            "spaces around a name are kept"
        );
    }
}
