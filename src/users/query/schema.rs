//! The OpenAPI schemas of the path and query values, from the constants
//! and choices that their parsers use.

use serde_json::json;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{KnownFormat, ObjectBuilder, RefOr, Schema, SchemaFormat, Type},
};

use super::{Limit, Offset, Ordering, Search, UserId};

/// An integer schema from `minimum` to `maximum`, if any.
fn integer_schema(minimum: i64, maximum: Option<i64>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(maximum)
}

impl PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        integer_schema(1, None)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .into()
    }
}

impl PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        // No maximum: larger values are capped to `MAX`, not refused.
        integer_schema(1, None)
            .default(Some(json!(Self::DEFAULT)))
            .description(Some(format!(
                "Rows per page; values over {} are capped to {}.",
                Self::MAX,
                Self::MAX
            )))
            .into()
    }
}

impl PartialSchema for Offset {
    fn schema() -> RefOr<Schema> {
        integer_schema(0, Some(Offset::MAX))
            .default(Some(json!(0)))
            .into()
    }
}

impl PartialSchema for Search {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(Search::MAX_LEN))
            .pattern(Some(crate::fields::NO_CONTROL_PATTERN))
            .into()
    }
}

impl PartialSchema for Ordering {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::choices().map(|o| o.to_string())))
            .default(Some(json!(Self::DEFAULT.to_string())))
            .into()
    }
}

impl ToSchema for UserId {}
impl ToSchema for Limit {}
impl ToSchema for Offset {}
impl ToSchema for Search {}
impl ToSchema for Ordering {}
