//! The operator commands beside `migrate`, `rebuild-aggregates` and `verify`.

pub mod stats;
