//! `/metrics` after a known workload: the exposition parsed by a Prometheus text parser, exact
//! counters, histograms that moved, gauges read at scrape time.

use std::collections::HashMap;

use serde_json::json;
use tax_budget::config::MetricsEndpoint;

use crate::harness::gql::{
    AggregateSource, AggregatesData, GqlResponse, SubmitData, AGGREGATES, AGGREGATES_UPDATED,
    SUBMIT,
};
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{
    allocation, eventually, on_both_backends, spawn_app_with, Backend, Options, TestApp, EVEN,
};
use crate::processes::Process;

on_both_backends!(
    a_known_workload_is_counted_exactly,
    a_separate_worker_serves_its_folds_on_its_own_address
);

/// A `worker` process has no API port; with `--metrics-bind` it serves what it folded.
async fn a_separate_worker_serves_its_folds_on_its_own_address(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    let mut env = app.backend.env();
    env.push(("METRICS_BIND", "127.0.0.1:0".into()));
    let worker = Process::spawn(&["worker"], &env);
    let line = worker.wait_for_line("metrics listening").await;
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("an address in {line:?}"))
        .to_owned();
    for _ in 0..7 {
        app.submit(EVEN, None).await;
    }
    app.assert_folded_exactly(7).await;
    let scrape = Scrape::at(&format!("http://{addr}/metrics")).await;
    // Every submission folded by the worker, in at least one fold; nothing failed.
    assert_eq!(scrape.count("tax_budget_fold_batch_size_sum", &[]), 7.0);
    let folds = scrape.count("tax_budget_folds_total", &[]);
    assert!((1.0..=7.0).contains(&folds), "{folds} folds");
    assert_eq!(scrape.count("tax_budget_fold_batch_size_count", &[]), folds);
    assert_eq!(scrape.count("tax_budget_fold_errors_total", &[]), 0.0);
    // The API process folded nothing.
    let api = Scrape::of(&app).await;
    assert_eq!(api.count("tax_budget_folds_total", &[]), 0.0);
    // Only `/metrics` is served there.
    let graphql = reqwest::get(format!("http://{addr}/graphql"))
        .await
        .expect("get");
    assert_eq!(graphql.status(), 404);
}

/// One scrape, parsed.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    async fn of(app: &TestApp) -> Scrape {
        Scrape::at(&app.url("/metrics")).await
    }

    async fn at(url: &str) -> Scrape {
        let response = reqwest::get(url).await.expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("content type")
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.expect("body");
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("a Prometheus exposition"))
    }

    /// The value of the sample `name` with exactly these labels; `None` when there is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0
            .samples
            .iter()
            .find(|sample| sample.metric == name && *sample.labels == wanted)
            .map(|sample| match &sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name} is not a single value: {other:?}"),
            })
    }

    /// Like [`Self::get`], 0 when the series does not exist (a counter not yet incremented).
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

async fn dashboard(app: &TestApp) -> AggregateSource {
    // The harness's aggregates query, named as the web app's dashboard would be.
    let dashboard = AGGREGATES.replacen('{', "query Dashboard {", 1);
    let response: GqlResponse<AggregatesData> = app.request(&dashboard, json!({}), None).await;
    response.expect_data().aggregates.source
}

async fn a_known_workload_is_counted_exactly(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::default()).await else {
        return;
    };
    // Two subscribers, then five submissions, one refused.
    let mut subscribers = Vec::new();
    for protocol in [Protocol::TransportWs, Protocol::LegacyGraphqlWs] {
        let mut subscriber = Subscription::start(app.addr(), protocol, AGGREGATES_UPDATED).await;
        subscriber.next_snapshot().await;
        subscribers.push(subscriber);
    }
    for _ in 0..5 {
        app.submit(EVEN, None).await;
    }
    let mut bad = EVEN;
    bad[0] = 9.99;
    let refused: GqlResponse<SubmitData> = app
        .request(
            SUBMIT,
            json!({ "input": { "allocations": allocation(bad) } }),
            None,
        )
        .await;
    assert_eq!(refused.first_error().extensions.code, "BAD_USER_INPUT");
    // Folded, seen without reading through the API (which would count reads).
    eventually("the five submissions are folded", || async {
        let outbox = app.app.store.outbox_len().await.expect("outbox");
        let fed = app.app.aggregates.feed().current().total_submissions;
        (outbox == 0 && fed == 5).then_some(())
    })
    .await;

    for subscriber in &mut subscribers {
        subscriber.wait_for(|s| s.total_submissions == 5).await;
    }

    let before = Scrape::of(&app).await;
    // Three reads from the cache, one from the summary, one from live SQL.
    for _ in 0..3 {
        assert_eq!(dashboard(&app).await, AggregateSource::Cache);
    }
    app.app.cache.invalidate().await.expect("invalidate");
    assert_eq!(dashboard(&app).await, AggregateSource::Summary);
    app.app.store.mark_summary_stale().await.expect("stale");
    app.app.cache.invalidate().await.expect("invalidate");
    assert_eq!(dashboard(&app).await, AggregateSource::Live);
    let after = Scrape::of(&app).await;

    let reads =
        |scrape: &Scrape, tier| scrape.count("tax_budget_aggregate_reads_total", &[("tier", tier)]);
    for (tier, expected) in [("CACHE", 3.0), ("SUMMARY", 1.0), ("LIVE", 1.0)] {
        assert_eq!(
            reads(&after, tier) - reads(&before, tier),
            expected,
            "{tier}"
        );
    }
    let dashboards = |scrape: &Scrape| {
        scrape.count(
            "tax_budget_graphql_requests_total",
            &[("operation", "Dashboard"), ("outcome", "ok")],
        )
    };
    assert_eq!(dashboards(&after) - dashboards(&before), 5.0);

    // Requests by operation and outcome; the clients' own names for the rest.
    let requests = |operation, outcome| {
        after.count(
            "tax_budget_graphql_requests_total",
            &[("operation", operation), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("Submit", "BAD_USER_INPUT"), 1.0);
    assert_eq!(requests("Submit", "ok"), 5.0);
    assert_eq!(
        after.count(
            "tax_budget_graphql_request_duration_seconds_count",
            &[("operation", "Dashboard")]
        ),
        5.0
    );
    assert!(
        after.count(
            "tax_budget_graphql_request_duration_seconds_sum",
            &[("operation", "Dashboard")]
        ) > 0.0
    );

    // Submissions, their batches and their folds.
    let submissions = |result| after.count("tax_budget_submissions_total", &[("result", result)]);
    assert_eq!(submissions("accepted"), 5.0);
    assert_eq!(submissions("invalid"), 1.0);
    assert_eq!(after.count("tax_budget_write_batch_size_sum", &[]), 5.0);
    assert_eq!(after.count("tax_budget_fold_batch_size_sum", &[]), 5.0);
    let folds = after.count("tax_budget_folds_total", &[]);
    assert!(folds >= 1.0);
    assert_eq!(after.count("tax_budget_fold_batch_size_count", &[]), folds);
    assert_eq!(
        after.count("tax_budget_fold_duration_seconds_count", &[]),
        folds
    );
    assert_eq!(after.count("tax_budget_fold_errors_total", &[]), 0.0);

    // WebSockets: two open, each running its subscription; each got the first snapshot and
    // at least the one with all five submissions.
    assert_eq!(
        after.get("tax_budget_websocket_connections", &[]),
        Some(2.0)
    );
    assert_eq!(after.get("tax_budget_subscriptions_active", &[]), Some(2.0));
    assert!(after.count("tax_budget_pushes_total", &[]) >= 4.0);

    // Read at scrape time.
    assert_eq!(after.get("tax_budget_outbox_depth", &[]), Some(0.0));
    assert_eq!(
        after.get("tax_budget_outbox_oldest_age_seconds", &[]),
        Some(0.0)
    );
    let feed = app.app.aggregates.feed().current().version as f64;
    assert_eq!(
        after.get("tax_budget_snapshot_version", &[("tier", "feed")]),
        Some(feed)
    );
    // The summary is marked stale: no summary version to show.
    assert_eq!(
        after.get("tax_budget_snapshot_version", &[("tier", "summary")]),
        None
    );
    assert_eq!(
        after.get("tax_budget_dependency_up", &[("dependency", "database")]),
        Some(1.0)
    );
    let redis = after.get("tax_budget_dependency_up", &[("dependency", "redis")]);
    match backend {
        Backend::Postgres => assert_eq!(redis, Some(1.0)),
        Backend::Sqlite => assert_eq!(redis, None, "no Redis configured"),
    }
    assert_eq!(
        after.get("tax_budget_database_pool_connections", &[("state", "max")]),
        Some(app.app.config.database_pool_size as f64)
    );
    app.app.rebuild_aggregates().await.expect("rebuild");

    // After a rebuild the summary has a version again.
    let with_summary = Scrape::of(&app).await;
    let summary_version = with_summary
        .get("tax_budget_snapshot_version", &[("tier", "summary")])
        .expect("a summary version after the rebuild");
    assert!(summary_version > 0.0);
}

/// Refusals by the submission limit are counted as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_submissions_are_counted() {
    let options = Options {
        submit_rate_per_minute: 1,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Sqlite, options).await else {
        return;
    };
    app.submit(EVEN, None).await;
    let refused = app.submit_raw(allocation(EVEN), None, None).await;
    assert_eq!(refused.first_error().extensions.code, "RATE_LIMITED");
    let scrape = Scrape::of(&app).await;
    assert_eq!(
        scrape.count("tax_budget_rate_limited_total", &[("limit", "submissions")]),
        1.0
    );
    assert_eq!(
        scrape.count(
            "tax_budget_submissions_total",
            &[("result", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        scrape.count("tax_budget_submissions_total", &[("result", "accepted")]),
        1.0
    );
}

/// `--metrics false` serves no `/metrics`; `--metrics-bind` serves it on its own address only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off_or_moved() {
    let off = Options {
        tweak: |c| c.metrics = MetricsEndpoint::Off,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Sqlite, off).await else {
        return;
    };
    let status = reqwest::get(app.url("/metrics"))
        .await
        .expect("get")
        .status();
    assert_eq!(status, 404);
    drop(app);

    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let moved_to = free.local_addr().expect("addr");
    drop(free);
    // The tweak is a plain function: the address reaches it through a static that only this
    // test sets.
    static MOVED_TO: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    MOVED_TO.set(moved_to).expect("set once");
    let separate = Options {
        tweak: |c| c.metrics = MetricsEndpoint::Separate(*MOVED_TO.get().expect("set")),
        ..Options::default()
    };
    let Some(app) = spawn_app_with(Backend::Sqlite, separate).await else {
        return;
    };
    let on_api = reqwest::get(app.url("/metrics"))
        .await
        .expect("get")
        .status();
    assert_eq!(on_api, 404);
    let text = reqwest::get(format!("http://{moved_to}/metrics"))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(text.contains("# TYPE tax_budget_folds counter"), "{text}");
}

/// Without a worker the outbox fills, and its depth and age show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfolded_outbox_shows_its_depth_and_age() {
    let Some(app) = spawn_app_with(Backend::Sqlite, Options::without_worker()).await else {
        return;
    };
    app.submit(EVEN, None).await;
    app.submit(EVEN, None).await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(scrape.get("tax_budget_outbox_depth", &[]), Some(2.0));
    let age = scrape
        .get("tax_budget_outbox_oldest_age_seconds", &[])
        .expect("an age");
    assert!(age > 0.0 && age < 60.0, "{age}");
    assert_eq!(scrape.count("tax_budget_folds_total", &[]), 0.0);
}

/// The Grafana dashboard and the alert rules in `deploy/` use only metrics a server exposes,
/// each with the suffix its type has (`_total` counters, `_bucket`/`_sum`/`_count`
/// histograms, none for gauges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_alerts_use_only_metrics_that_exist() {
    let Some(app) = spawn_app_with(Backend::Sqlite, Options::default()).await else {
        return;
    };
    // Request series appear with the first request.
    assert_eq!(dashboard(&app).await, AggregateSource::Cache);
    let exposition = reqwest::get(app.url("/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let types: HashMap<&str, &str> = exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana/tax-budget.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    exprs.push(std::fs::read_to_string(root.join("prometheus/alerts.yml")).expect("alerts"));

    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("tax_budget_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            used.insert(name);
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    for name in &used {
        let (base, wanted) = if let Some(base) = name.strip_suffix("_total") {
            (base, "counter")
        } else if let Some(base) = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
        {
            (base, "histogram")
        } else {
            (name.as_str(), "gauge")
        };
        assert_eq!(
            types.get(base).copied(),
            Some(wanted),
            "{name} in deploy/ is not a {wanted} the server exposes"
        );
    }
}
