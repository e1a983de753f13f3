//! The integration tests, one binary (`cargo test --test it`): every module starts the real
//! server, in this process or as `tax-budget` processes, against a database of its own.
//!
//! - `api`: the behaviour suite, each test on SQLite and on PostgreSQL + Redis;
//! - `http`: GraphQL over HTTP, GraphiQL, health, the published schema;
//! - `caching`: Automatic Persisted Queries and HTTP caching of snapshot reads;
//! - `distributions`: quantiles, ranks, histograms and trends against SQL over the raw rows;
//! - `limits`: query cost and depth, the read budget, load shedding, introspection, the
//!   statement timeout;
//! - `metrics`: `/metrics` after a known workload, parsed as Prometheus reads it, and the
//!   metrics the Grafana dashboard and alerts in `deploy/` use;
//! - `processes`: real `tax-budget` processes;
//! - `operator`: the operator commands (`verify`, `cache reset`, `stats`) and the repair of a
//!   stale summary at start, as processes;
//! - `seed`: demo data by `tax-budget seed`, exact and varied, and its plain progress lines;
//! - `web`: serving the web app;
//! - `writes`: group commit of submissions (a burst shares transactions, answers stay one per
//!   caller);
//! - `schema_drift`: `src/store/schema.rs` against the migrations of both backends;
//! - `edge`: hostile and careless clients at the WebSocket and HTTP edge;
//! - `push`: subscriptions shared by every socket that asks the same operation;
//! - `architecture`: the module structure of `src/`, read from the source;
//! - `harness`: starting servers, databases and Redis key prefixes of a test's own, GraphQL and
//!   WebSocket clients that read responses into types.
//!
//! PostgreSQL + Redis tests need `TEST_DATABASE_URL` and `TEST_REDIS_URL`. Without them (and
//! without `CI=true`, where they fail instead) each one prints `SKIPPED: <test> (<reason>)`
//! past libtest's output capture, and `scripts/test` counts those lines.

mod api;
mod architecture;
mod caching;
mod distributions;
mod edge;
mod faults;
mod harness;
mod http;
mod limits;
mod metrics;
mod operator;
mod processes;
mod push;
mod schema_drift;
mod seed;
mod web;
mod writes;
