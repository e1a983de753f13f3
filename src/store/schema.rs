// @generated automatically by Diesel CLI.

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_distribution (category_id, hundredths) {
        category_id -> Int4,
        hundredths -> Int4,
        submissions -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_outbox (id) {
        id -> Int8,
        submission_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_summary (id) {
        id -> Int2,
        version -> Int8,
        total_submissions -> Int8,
        updated_at -> Timestamptz,
        stale -> Bool,
        generation -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_totals (category_id) {
        category_id -> Int4,
        sum_hundredths -> Int8,
        allocations -> Int8,
        sum_squares -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_trend (resolution, bucket_start) {
        resolution -> Text,
        bucket_start -> Timestamptz,
        submissions -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    aggregate_trend_totals (resolution, bucket_start, category_id) {
        resolution -> Text,
        bucket_start -> Timestamptz,
        category_id -> Int4,
        sum_hundredths -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    allocations (submission_id, category_id) {
        submission_id -> Uuid,
        category_id -> Int4,
        hundredths -> Int4,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    categories (id) {
        id -> Int4,
        slug -> Text,
        name -> Text,
        description -> Text,
        color -> Text,
        display_order -> Int4,
        active -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    submissions (id) {
        id -> Uuid,
        voter_id -> Uuid,
        created_at -> Timestamptz,
        idempotency_key_hash -> Nullable<Text>,
        payload_hash -> Nullable<Text>,
        created_voter -> Bool,
        voter_token_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::sql_types::{Timestamptz, Uuid};

    voters (id) {
        id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(aggregate_distribution -> categories (category_id));
diesel::joinable!(aggregate_outbox -> submissions (submission_id));
diesel::joinable!(aggregate_totals -> categories (category_id));
diesel::joinable!(aggregate_trend_totals -> categories (category_id));
diesel::joinable!(submissions -> voters (voter_id));

diesel::allow_tables_to_appear_in_same_query!(
    aggregate_distribution,
    aggregate_outbox,
    aggregate_summary,
    aggregate_totals,
    aggregate_trend,
    aggregate_trend_totals,
    allocations,
    categories,
    submissions,
    voters,
);
