// @generated automatically by Diesel CLI.

diesel::table! {
    user_tombstones (sub) {
        #[max_length = 255]
        sub -> Varchar,
        deleted_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        #[max_length = 255]
        sub -> Varchar,
        #[max_length = 254]
        email -> Nullable<Varchar>,
        #[max_length = 200]
        name -> Nullable<Varchar>,
        is_active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_seen_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(user_tombstones, users,);
