//! Joins that hold by construction rather than by a foreign key, so `diesel print-schema`
//! leaves them out of `schema.rs`: on PostgreSQL an allocation's references are not checked
//! row by row (migration `allocations_unchecked_per_row`; why in the README's Benchmarks), yet
//! every allocation belongs to one submission and names one category.

use super::schema::{allocations, categories, submissions};

diesel::joinable!(allocations -> categories (category_id));
diesel::joinable!(allocations -> submissions (submission_id));
