//! What the service counts, for Prometheus: one [`Metrics`] per process (per `App`, so that
//! tests running several apps in one process read their own), exposed at `/metrics` in the
//! OpenMetrics text format, which Prometheus scrapes natively.
//!
//! Every label has a bounded set of values: operation names only from the web app's known
//! operations (anything else is `other`), outcomes only from the error codes the API uses,
//! tiers, reasons and dependencies from fixed lists. A client cannot create series.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error_code::ErrorCode;

/// The operation names the web app and GraphiQL send; any other name is counted as `other`.
const KNOWN_OPERATIONS: [&str; 9] = [
    "Categories",
    "Submit",
    "Result",
    "Distribution",
    "History",
    "Live",
    "Dashboard",
    "Trend",
    "IntrospectionQuery",
];

/// Request and fold latencies: from a prepared answer (tens of microseconds) to a live SQL
/// read over millions of rows (seconds).
const SECONDS_BUCKETS: [f64; 13] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Rows per fold and submissions per write batch: 1 to the largest batch sizes allowed.
fn size_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 14)
}

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

/// The label value for an operation name: known names as they are, the rest bounded.
pub fn operation_label(name: Option<&str>) -> &'static str {
    match name {
        None => "anonymous",
        Some(name) => KNOWN_OPERATIONS
            .iter()
            .find(|known| **known == name)
            .copied()
            .unwrap_or("other"),
    }
}

/// The label value for an outcome: `ok`, a known error code, or `other`.
pub fn outcome_label(code: Option<&str>) -> &'static str {
    match code {
        None => "ok",
        Some(code) => ErrorCode::parse(code).map_or("other", ErrorCode::as_str),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// What became of a `submitAllocation` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionResult {
    Accepted,
    /// An idempotent retry answered with the first submission.
    Replayed,
    Invalid,
    IdempotencyKeyReused,
    Unauthenticated,
    RateLimited,
    Unavailable,
    Failed,
}

impl SubmissionResult {
    const ALL: [SubmissionResult; 8] = [
        SubmissionResult::Accepted,
        SubmissionResult::Replayed,
        SubmissionResult::Invalid,
        SubmissionResult::IdempotencyKeyReused,
        SubmissionResult::Unauthenticated,
        SubmissionResult::RateLimited,
        SubmissionResult::Unavailable,
        SubmissionResult::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            SubmissionResult::Accepted => "accepted",
            SubmissionResult::Replayed => "replayed",
            SubmissionResult::Invalid => "invalid",
            SubmissionResult::IdempotencyKeyReused => "idempotency_key_reused",
            SubmissionResult::Unauthenticated => "unauthenticated",
            SubmissionResult::RateLimited => "rate_limited",
            SubmissionResult::Unavailable => "unavailable",
            SubmissionResult::Failed => "failed",
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `submitAllocation` calls per minute per address.
    Submissions,
    /// Query cost per minute per address.
    Reads,
    /// Costly queries at once (load shedding).
    CostlyQueries,
}

/// The sizes of the database pool, as deadpool reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    pub in_use: usize,
    pub idle: usize,
    pub max: usize,
}

/// The process's metrics. Cheap to clone: every clone records into the same series.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<OperationLabels, Histogram, fn() -> Histogram>,
    reads: Family<TierLabels, Counter>,
    submissions: Family<ResultLabels, Counter>,
    write_batch_size: Histogram,
    rate_limited: Family<LimitLabels, Counter>,
    folds: Counter,
    fold_errors: Counter,
    fold_rows: Histogram,
    fold_seconds: Histogram,
    outbox_depth: Gauge,
    outbox_oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    snapshot_version: Family<TierLabels, Gauge>,
    websocket_connections: Gauge,
    subscriptions: Gauge,
    pushes: Counter,
    pushes_skipped: Counter,
    dependency_up: Family<DependencyLabels, Gauge>,
    pool_connections: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tax_budget");
        let requests = Family::default();
        registry.register(
            "graphql_requests",
            "GraphQL requests over HTTP and WebSocket, by operation name and outcome (ok or the error code)",
            requests.clone(),
        );
        let request_seconds =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        registry.register_with_unit(
            "graphql_request_duration",
            "Time to answer a GraphQL request over HTTP, by operation name",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let reads = Family::default();
        registry.register(
            "aggregate_reads",
            "Aggregate reads answered, by the tier that answered (CACHE, SUMMARY, LIVE)",
            reads.clone(),
        );
        let submissions = Family::default();
        registry.register(
            "submissions",
            "submitAllocation calls, by result (accepted, replayed, or why refused)",
            submissions.clone(),
        );
        let write_batch_size = Histogram::new(size_buckets());
        registry.register(
            "write_batch_size",
            "Submissions written per transaction (group commit)",
            write_batch_size.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused by a limit (submissions, reads, costly_queries)",
            rate_limited.clone(),
        );
        let folds = Counter::default();
        registry.register(
            "folds",
            "Outbox folds committed by this process's worker",
            folds.clone(),
        );
        let fold_errors = Counter::default();
        registry.register(
            "fold_errors",
            "Outbox folds that failed (retried)",
            fold_errors.clone(),
        );
        let fold_rows = Histogram::new(size_buckets());
        registry.register(
            "fold_batch_size",
            "Outbox rows per committed fold",
            fold_rows.clone(),
        );
        let fold_seconds = seconds_histogram();
        registry.register_with_unit(
            "fold_duration",
            "Time of one committed fold, publish included",
            Unit::Seconds,
            fold_seconds.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Submissions stored and not yet folded (read at scrape)",
            outbox_depth.clone(),
        );
        let outbox_oldest_age_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest submission not yet folded, 0 when none (read at scrape)",
            Unit::Seconds,
            outbox_oldest_age_seconds.clone(),
        );
        let snapshot_version = Family::default();
        registry.register(
            "snapshot_version",
            "Aggregate snapshot version per tier: cache, summary, and feed (this process's newest)",
            snapshot_version.clone(),
        );
        let websocket_connections = Gauge::default();
        registry.register(
            "websocket_connections",
            "Open WebSocket connections",
            websocket_connections.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions_active",
            "Subscriptions running on this process's WebSockets",
            subscriptions.clone(),
        );
        let pushes = Counter::default();
        registry.register(
            "pushes",
            "Snapshot updates written to subscribers",
            pushes.clone(),
        );
        let pushes_skipped = Counter::default();
        registry.register(
            "pushes_skipped",
            "Snapshot versions a slow subscriber skipped (it got a newer one instead)",
            pushes_skipped.clone(),
        );
        let dependency_up = Family::default();
        registry.register(
            "dependency_up",
            "Whether a dependency answers: database, redis (1 up, 0 down; read at scrape)",
            dependency_up.clone(),
        );
        let pool_connections = Family::default();
        registry.register(
            "database_pool_connections",
            "Database pool connections by state: in_use, idle, max",
            pool_connections.clone(),
        );
        // Series that exist from the start, at 0, so that rates and ratios over them are
        // defined before the first event (Prometheus' advice for known label values).
        for tier in ["CACHE", "SUMMARY", "LIVE"] {
            drop(reads.get_or_create(&TierLabels { tier }));
        }
        for result in SubmissionResult::ALL {
            drop(submissions.get_or_create(&ResultLabels {
                result: result.label(),
            }));
        }
        for limit in ["submissions", "reads", "costly_queries"] {
            drop(rate_limited.get_or_create(&LimitLabels { limit }));
        }
        Metrics(Arc::new(Inner {
            registry,
            requests,
            request_seconds,
            reads,
            submissions,
            write_batch_size,
            rate_limited,
            folds,
            fold_errors,
            fold_rows,
            fold_seconds,
            outbox_depth,
            outbox_oldest_age_seconds,
            snapshot_version,
            websocket_connections,
            subscriptions,
            pushes,
            pushes_skipped,
            dependency_up,
            pool_connections,
        }))
    }

    /// A GraphQL request answered: `code` is its first error's, `None` when it has none.
    pub fn graphql_request(&self, operation: Option<&str>, code: Option<&str>, took: Duration) {
        let operation = operation_label(operation);
        self.0
            .requests
            .get_or_create(&RequestLabels {
                operation,
                outcome: outcome_label(code),
            })
            .inc();
        self.0
            .request_seconds
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// An aggregate read answered from `tier` (`CACHE`, `SUMMARY` or `LIVE`).
    pub fn aggregate_read(&self, tier: &'static str) {
        self.0.reads.get_or_create(&TierLabels { tier }).inc();
    }

    pub fn submission(&self, result: SubmissionResult) {
        self.0
            .submissions
            .get_or_create(&ResultLabels {
                result: result.label(),
            })
            .inc();
    }

    pub fn write_batch(&self, size: usize) {
        self.0.write_batch_size.observe(size as f64);
    }

    pub fn rate_limited(&self, limit: Limit) {
        let limit = match limit {
            Limit::Submissions => "submissions",
            Limit::Reads => "reads",
            Limit::CostlyQueries => "costly_queries",
        };
        self.0
            .rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A fold of `rows` outbox rows committed and published in `took`.
    pub fn fold(&self, rows: i64, took: Duration) {
        self.0.folds.inc();
        self.0.fold_rows.observe(rows as f64);
        self.0.fold_seconds.observe(took.as_secs_f64());
    }

    pub fn fold_failed(&self) {
        self.0.fold_errors.inc();
    }

    pub fn websocket_opened(&self) {
        self.0.websocket_connections.inc();
    }

    pub fn websocket_closed(&self) {
        self.0.websocket_connections.dec();
    }

    pub fn subscription_started(&self) {
        self.0.subscriptions.inc();
    }

    pub fn subscription_ended(&self) {
        self.0.subscriptions.dec();
    }

    /// One update written to one subscriber, which had missed `skipped` versions before it.
    pub fn pushed(&self, skipped: u64) {
        self.0.pushes.inc();
        if skipped > 0 {
            self.0.pushes_skipped.inc_by(skipped);
        }
    }

    /// What is read at scrape time rather than counted as it happens.
    pub fn observe_outbox(&self, depth: i64, oldest_age: Option<Duration>) {
        self.0.outbox_depth.set(depth);
        self.0
            .outbox_oldest_age_seconds
            .set(oldest_age.map_or(0.0, |age| age.as_secs_f64()));
    }

    /// `tier` is `cache`, `summary` or `feed`; `None` removes the series (nothing there).
    pub fn observe_snapshot_version(&self, tier: &'static str, version: Option<i64>) {
        let labels = TierLabels { tier };
        match version {
            Some(version) => {
                self.0.snapshot_version.get_or_create(&labels).set(version);
            }
            None => {
                self.0.snapshot_version.remove(&labels);
            }
        }
    }

    pub fn observe_dependency(&self, dependency: &'static str, up: bool) {
        self.0
            .dependency_up
            .get_or_create(&DependencyLabels { dependency })
            .set(i64::from(up));
    }

    pub fn observe_pool(&self, usage: PoolUsage) {
        for (state, value) in [
            ("in_use", usage.in_use),
            ("idle", usage.idle),
            ("max", usage.max),
        ] {
            self.0
                .pool_connections
                .get_or_create(&PoolLabels { state })
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_within_known_sets() {
        assert_eq!(operation_label(Some("Categories")), "Categories");
        assert_eq!(operation_label(Some("MyOwnQuery")), "other");
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(outcome_label(None), "ok");
        assert_eq!(outcome_label(Some("BAD_USER_INPUT")), "BAD_USER_INPUT");
        assert_eq!(outcome_label(Some("SOMETHING_NEW")), "other");
    }

    #[test]
    fn encodes_counters_histograms_and_gauges() {
        let metrics = Metrics::new();
        metrics.graphql_request(Some("Submit"), None, Duration::from_millis(3));
        metrics.aggregate_read("CACHE");
        metrics.observe_snapshot_version("feed", Some(7));
        let text = metrics.encode();
        assert!(text
            .contains("tax_budget_graphql_requests_total{operation=\"Submit\",outcome=\"ok\"} 1"));
        assert!(text
            .contains("tax_budget_graphql_request_duration_seconds_count{operation=\"Submit\"} 1"));
        assert!(text.contains("tax_budget_aggregate_reads_total{tier=\"CACHE\"} 1"));
        assert!(text.contains("tax_budget_snapshot_version{tier=\"feed\"} 7"));
        assert!(text.ends_with("# EOF\n"));
    }
}
