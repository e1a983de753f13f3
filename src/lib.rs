//! tax-budget: citizens split their taxes across budget categories; everyone sees the live
//! average. See README.md for the architecture.

pub mod aggregates;
pub mod app;
pub mod bus;
pub mod cache;
pub mod config;
pub mod domain;
pub mod error_code;
pub mod feed;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod publisher;
pub mod rate_limit;
pub mod redis;
pub mod store;
pub mod submissions;
pub mod telemetry;
pub mod verify;
pub mod voter_token;
pub mod worker;
