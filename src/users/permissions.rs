//! The permissions the users API checks, by name.

use crate::auth::Permission;

macro_rules! permissions {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        #[doc = concat!("The `", $name, "` permission.")]
        pub struct $ty;
        impl Permission for $ty {
            const NAME: &'static str = $name;
        }
    )*
    /// Every permission of the users API.
    pub const ALL_PERMISSIONS: &[&str] = &[$($name),*];
    };
}

permissions! {
    ReadUsers = "read:users",
    CreateUsers = "create:users",
    UpdateUsers = "update:users",
    DeleteUsers = "delete:users",
}
