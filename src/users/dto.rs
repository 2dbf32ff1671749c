//! Request bodies of the `/users` endpoints, and what each changes.

use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::model::UserChanges;
use crate::fields::{Email, Name, Subject};

/// `PATCH /users/me` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeChanges {
    /// New email, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Email>)]
    pub email: Option<Option<Email>>,
    /// New name, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<Option<Name>>,
}

/// `POST /users` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The Auth0 subject; must not exist yet.
    pub sub: Subject,
    /// Email address.
    pub email: Option<Email>,
    /// Display name.
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
    pub email: Option<Email>,
    /// Display name (null or absent clears it).
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
    #[schema(value_type = Option<Email>)]
    pub email: Option<Option<Email>>,
    /// New name, or null to clear it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<Option<Name>>,
    /// New active flag.
    #[serde(default, deserialize_with = "non_null")]
    #[schema(value_type = bool)]
    pub is_active: Option<bool>,
}

/// Deserializes a field that may be absent (`None`), null (`Some(None)`) or set.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Deserializes a field that may be absent (`None`) but, when sent, not null:
/// a plain `Option` would take null for absent and silently ignore it.
pub fn non_null<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl From<MeChanges> for UserChanges {
    fn from(body: MeChanges) -> Self {
        Self {
            email: body.email.map(|e| e.map(String::from)),
            name: body.name.map(|n| n.map(String::from)),
            ..Self::default()
        }
    }
}

impl From<ReplaceUser> for UserChanges {
    fn from(body: ReplaceUser) -> Self {
        Self {
            email: Some(body.email.map(String::from)),
            name: Some(body.name.map(String::from)),
            is_active: Some(body.is_active),
            updated_at: None,
        }
    }
}

impl From<UpdateUser> for UserChanges {
    fn from(body: UpdateUser) -> Self {
        Self {
            email: body.email.map(|e| e.map(String::from)),
            name: body.name.map(|n| n.map(String::from)),
            is_active: body.is_active,
            updated_at: None,
        }
    }
}
