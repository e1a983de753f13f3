//! The operator commands beside `migrate`, `rebuild-aggregates` and `verify`: `stats` and
//! `seed`, and the progress they (and `rebuild-aggregates`) show.

pub mod progress;
pub mod seed;
pub mod splits;
pub mod stats;
