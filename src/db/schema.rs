// @generated automatically by Diesel CLI.

diesel::table! {
    dpop_proofs (proof_key) {
        #[max_length = 64]
        proof_key -> Varchar,
        expires_at -> Int8,
    }
}

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

diesel::allow_tables_to_appear_in_same_query!(dpop_proofs, user_tombstones, users,);
