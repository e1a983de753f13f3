//! Distributions, percentile ranks and trends, through the API on both backends, against what
//! SQL computes over the raw rows (PostgreSQL's own `percentile_disc`, `percent_rank` and
//! `stddev_pop` there; the same definitions written out here for SQLite).

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use crate::harness::gql::{GraphqlError, SubmitData, SUBMIT};
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{on_both_backends, spawn_app, Backend, TestApp};

on_both_backends!(
    statistics_equal_sql_over_the_raw_rows,
    a_trend_carries_running_averages_per_bucket,
    bad_distribution_and_trend_arguments_are_refused,
    subscribers_get_distributions_of_the_version_pushed,
);

const DETAILS: &str = "{ aggregates { version totalSubmissions categories { category { id } \
    averagePercentage sumHundredths sumSquares median quartiles { q1 q3 } \
    q0: quantile(p: 0) q90: quantile(p: 0.9) q100: quantile(p: 1) standardDeviation zeroShare \
    histogram(buckets: 7) { from to count } } } }";

const RANKS: &str =
    "query($id: ID!) { submission(id: $id) { allocations { category { id } percentage percentileRank } } }";

/// A percentage in hundredths, from the API's float.
fn hundredths(value: &Value) -> i64 {
    (value.as_f64().expect("a number") * 100.0).round() as i64
}

/// Random valid splits: nine cut points of 0..=10000, often on whole or round percentages, so
/// that ties and zeros are frequent.
fn splits() -> impl Strategy<Value = Vec<[f64; 10]>> {
    let cut = proptest::prop_oneof![
        proptest::strategy::Just(0u32),
        proptest::strategy::Just(10_000u32),
        (0u32..=20).prop_map(|x| x * 500),
        0u32..=10_000,
    ];
    let split = proptest::collection::vec(cut, 9).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(10_000);
        let mut values = [0.0; 10];
        for (i, w) in bounds.windows(2).enumerate() {
            values[i] = f64::from(w[1] - w[0]) / 100.0;
        }
        values
    });
    proptest::collection::vec(split, 25..60)
}

/// Every stored allocation of category `id`, in hundredths, ascending.
async fn raw_values(app: &TestApp, id: i64) -> Vec<i64> {
    let mut values: Vec<i64> = app
        .query_texts(&format!(
            "SELECT CAST(hundredths AS TEXT) AS text FROM allocations WHERE category_id = {id}"
        ))
        .await
        .iter()
        .map(|v| v.parse().expect("an integer"))
        .collect();
    values.sort_unstable();
    values
}

/// `percentile_disc(p)` as PostgreSQL defines it, over sorted values.
fn percentile_disc(sorted: &[i64], p: f64) -> i64 {
    let position = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[position - 1]
}

/// `x / n` of a percent in hundredths, rounded half up.
fn share(x: i64, n: i64) -> i64 {
    (2 * x * 10_000 + n) / (2 * n)
}

async fn statistics_equal_sql_over_the_raw_rows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let is_postgres = matches!(backend, Backend::Postgres);
    let mut runner = TestRunner::deterministic();
    let mut submitted = 0i64;
    let mut ids = Vec::new();
    // Three rounds on the same database: the sets grow, and each is checked whole.
    for _round in 0..3 {
        let batch = splits().new_tree(&mut runner).expect("splits").current();
        for values in &batch {
            ids.push(app.submit(*values, None).await.submission.id);
        }
        submitted += batch.len() as i64;
        app.wait_folded(submitted).await;
        let data = app
            .request::<Value>(DETAILS, json!({}), None)
            .await
            .expect_data();
        let aggregates = &data["aggregates"];
        assert_eq!(aggregates["totalSubmissions"], submitted);
        for category in aggregates["categories"].as_array().expect("categories") {
            let id: i64 = category["category"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("an id");
            let sorted = raw_values(&app, id).await;
            let n = sorted.len() as i64;
            assert_eq!(
                n, submitted,
                "every submission gives every category a value"
            );
            let sum: i64 = sorted.iter().sum();
            let squares: i64 = sorted.iter().map(|v| v * v).sum();
            assert_eq!(category["sumHundredths"], sum, "category {id}");
            assert_eq!(category["sumSquares"], squares, "category {id}");
            let median = percentile_disc(&sorted, 0.5);
            assert_eq!(hundredths(&category["median"]), median, "category {id}");
            let quartiles = &category["quartiles"];
            assert_eq!(hundredths(&quartiles["q1"]), percentile_disc(&sorted, 0.25));
            assert_eq!(hundredths(&quartiles["q3"]), percentile_disc(&sorted, 0.75));
            assert_eq!(hundredths(&category["q0"]), sorted[0]);
            assert_eq!(hundredths(&category["q90"]), percentile_disc(&sorted, 0.9));
            assert_eq!(hundredths(&category["q100"]), sorted[sorted.len() - 1]);
            let zeros = sorted.iter().filter(|&&v| v == 0).count() as i64;
            assert_eq!(hundredths(&category["zeroShare"]), share(zeros, n));
            let histogram = category["histogram"].as_array().expect("histogram");
            assert_eq!(histogram.len(), 7);
            let counted: i64 = histogram.iter().map(|b| b["count"].as_i64().unwrap()).sum();
            assert_eq!(counted, n, "the histogram counts every submission");
            for (i, bucket) in histogram.iter().enumerate() {
                let (from, to) = (hundredths(&bucket["from"]), hundredths(&bucket["to"]));
                let inside = sorted
                    .iter()
                    .filter(|&&v| v >= from && (v < to || (i == 6 && v == 10_000)))
                    .count() as i64;
                assert_eq!(bucket["count"], inside, "bucket {from}..{to} of {id}");
            }
            let sigma = hundredths(&category["standardDeviation"]);
            if is_postgres {
                // PostgreSQL's own aggregates over the raw rows.
                let sql = app
                    .query_texts(&format!(
                        "SELECT concat_ws(' ',
                            percentile_disc(0.25) WITHIN GROUP (ORDER BY hundredths),
                            percentile_disc(0.5) WITHIN GROUP (ORDER BY hundredths),
                            percentile_disc(0.75) WITHIN GROUP (ORDER BY hundredths),
                            percentile_disc(0.9) WITHIN GROUP (ORDER BY hundredths),
                            round(stddev_pop(hundredths))) AS text
                         FROM allocations WHERE category_id = {id}"
                    ))
                    .await;
                let expected = format!(
                    "{} {} {} {} {}",
                    hundredths(&quartiles["q1"]),
                    median,
                    hundredths(&quartiles["q3"]),
                    hundredths(&category["q90"]),
                    sigma
                );
                assert_eq!(sql, vec![expected], "category {id} against PostgreSQL");
            } else {
                // σ over the raw rows in f64, wherever it is not a hair from a rounding tie.
                let mean = sum as f64 / n as f64;
                let variance = sorted
                    .iter()
                    .map(|&v| (v as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n as f64;
                let exact = variance.sqrt();
                if (exact - exact.floor() - 0.5).abs() > 1e-6 {
                    assert_eq!(sigma, exact.round() as i64, "σ of category {id}");
                }
            }
        }
        // Where some submissions stand: the share of citizens that gave less.
        for id in ids.iter().step_by(17) {
            let data = app
                .request::<Value>(RANKS, json!({ "id": id }), None)
                .await
                .expect_data();
            for allocation in data["submission"]["allocations"].as_array().expect("list") {
                let category = &allocation["category"]["id"];
                let category: i64 = category.as_str().unwrap().parse().unwrap();
                let value = hundredths(&allocation["percentage"]);
                let rank = hundredths(&allocation["percentileRank"]);
                if is_postgres {
                    let sql = app
                        .query_texts(&format!(
                            "SELECT CAST(CAST(round(CAST(percent_rank({value}) WITHIN GROUP
                                (ORDER BY hundredths) * 100 AS NUMERIC), 2) * 100 AS BIGINT)
                                AS TEXT) AS text
                             FROM allocations WHERE category_id = {category}"
                        ))
                        .await;
                    assert_eq!(sql, vec![rank.to_string()], "rank of {value} in {category}");
                }
                let sorted = raw_values(&app, category).await;
                let below = sorted.iter().filter(|&&v| v < value).count() as i64;
                assert_eq!(rank, share(below, sorted.len() as i64));
            }
        }
    }
}

/// Moves a submission to `at` (fixed-width RFC 3339, as both backends read it).
async fn move_to(app: &TestApp, id: &str, at: &str) {
    app.execute_sql(&format!(
        "UPDATE submissions SET created_at = '{at}' WHERE id = '{id}'"
    ))
    .await;
}

/// A split giving category 1 `first` percent and category 2 the rest.
fn two_way(first: f64) -> [f64; 10] {
    let mut values = [0.0; 10];
    values[0] = first;
    values[1] = 100.0 - first;
    values
}

/// (start, submissions, totalSubmissions, category 1's running average in hundredths) of each
/// point of a trend.
async fn trend(
    app: &TestApp,
    bucket: &str,
    from: Option<&str>,
    to: &str,
) -> Vec<(String, i64, i64, i64)> {
    let data = app
        .request::<Value>(
            "query($bucket: TrendBucket!, $from: DateTime, $to: DateTime) {
               aggregatesTrend(bucket: $bucket, from: $from, to: $to) {
                 version points { start submissions totalSubmissions
                   categories { category { id } averagePercentage } } } }",
            json!({ "bucket": bucket, "from": from, "to": to }),
            None,
        )
        .await
        .expect_data();
    data["aggregatesTrend"]["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            let start = chrono::DateTime::parse_from_rfc3339(p["start"].as_str().unwrap())
                .expect("a time")
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let categories = p["categories"].as_array().unwrap();
            let total: i64 = categories
                .iter()
                .map(|c| hundredths(&c["averagePercentage"]))
                .sum();
            assert_eq!(total, 10_000, "each point's averages add up to 100");
            (
                start,
                p["submissions"].as_i64().unwrap(),
                p["totalSubmissions"].as_i64().unwrap(),
                hundredths(&categories[0]["averagePercentage"]),
            )
        })
        .collect()
}

async fn a_trend_carries_running_averages_per_bucket(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Six submissions made at known times (moved there, then rebuilt into the buckets), giving
    // category 1 10, 20, … 60 %: its running average after k of them is 5·(k+1).
    let times = [
        "2026-01-01T23:59:30.000000Z",
        "2026-01-02T10:15:10.000000Z",
        "2026-01-02T10:15:50.000000Z",
        "2026-01-02T10:59:00.000000Z",
        "2026-01-02T11:00:00.000000Z",
        "2026-01-03T00:00:00.000000Z",
    ];
    for (k, at) in times.iter().enumerate() {
        let id = app
            .submit(two_way(10.0 * (k + 1) as f64), None)
            .await
            .submission
            .id;
        move_to(&app, &id, at).await;
    }
    app.wait_folded(6).await;
    app.app.rebuild_aggregates().await.expect("rebuild");
    let point = |start: &str, n: i64, total: i64| (start.to_owned(), n, total, 500 * (total + 1));

    // What came before a range's first bucket is read from days, the first day's hours and
    // the first hour's minutes: each minute range below starts where another mix is needed.
    let cases = [
        (
            "DAY",
            "2026-01-01T00:00:00Z",
            "2026-01-03T00:00:00Z",
            vec![
                point("2026-01-01T00:00:00Z", 1, 1),
                point("2026-01-02T00:00:00Z", 4, 5),
                point("2026-01-03T00:00:00Z", 1, 6),
            ],
        ),
        (
            "MINUTE",
            "2026-01-02T10:15:00Z",
            "2026-01-02T11:00:00Z",
            vec![
                point("2026-01-02T10:15:00Z", 2, 3),
                point("2026-01-02T10:59:00Z", 1, 4),
                point("2026-01-02T11:00:00Z", 1, 5),
            ],
        ),
        (
            "MINUTE",
            "2026-01-02T10:30:00Z",
            "2026-01-02T11:30:00Z",
            vec![
                point("2026-01-02T10:59:00Z", 1, 4),
                point("2026-01-02T11:00:00Z", 1, 5),
            ],
        ),
        (
            "MINUTE",
            "2026-01-02T11:00:00Z",
            "2026-01-02T12:00:00Z",
            vec![point("2026-01-02T11:00:00Z", 1, 5)],
        ),
        (
            "HOUR",
            "2026-01-02T11:00:00Z",
            "2026-01-03T05:00:00Z",
            vec![
                point("2026-01-02T11:00:00Z", 1, 5),
                point("2026-01-03T00:00:00Z", 1, 6),
            ],
        ),
    ];
    for (bucket, from, to, expected) in cases {
        assert_eq!(
            trend(&app, bucket, Some(from), to).await,
            expected,
            "{bucket} from {from} to {to}"
        );
    }
    // Without `from`: from the first bucket with submissions.
    assert_eq!(
        trend(&app, "DAY", None, "2026-01-05T00:00:00Z").await.len(),
        3
    );

    // A submission made now reaches the trend by the fold, in the minute it was made.
    app.submit(two_way(70.0), None).await;
    app.wait_folded(7).await;
    let now = chrono::Utc::now();
    let recent = trend(&app, "MINUTE", None, &now.to_rfc3339()).await;
    let last = recent.last().expect("a point for the new submission");
    assert_eq!((last.1, last.2, last.3), (1, 7, 4000));
    app.assert_folded_exactly(7).await;
}

fn refused(errors: &[GraphqlError], field: &str) {
    assert!(!errors.is_empty(), "expected an error for {field}");
    for error in errors {
        assert_eq!(error.extensions.code, "BAD_USER_INPUT", "{error:?}");
        assert_eq!(error.extensions.field.as_deref(), Some(field), "{error:?}");
    }
}

async fn bad_distribution_and_trend_arguments_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.submit(two_way(25.0), None).await;
    app.wait_folded(1).await;
    for buckets in [0, 101, -3] {
        let response = app
            .request::<Value>(
                &format!("{{ aggregates {{ categories {{ histogram(buckets: {buckets}) {{ count }} }} }} }}"),
                json!({}),
                None,
            )
            .await;
        refused(&response.errors, "buckets");
    }
    for p in ["-0.1", "1.5", "1e300"] {
        let response = app
            .request::<Value>(
                &format!("{{ aggregates {{ categories {{ quantile(p: {p}) }} }} }}"),
                json!({}),
                None,
            )
            .await;
        refused(&response.errors, "p");
    }
    let trend = "query($bucket: TrendBucket!, $from: DateTime, $to: DateTime) {
        aggregatesTrend(bucket: $bucket, from: $from, to: $to) { version } }";
    // `from` after `to`, and more buckets than one read covers.
    for (bucket, from, to) in [
        ("HOUR", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("MINUTE", "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
        ("HOUR", "2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ] {
        let response = app
            .request::<Value>(
                trend,
                json!({ "bucket": bucket, "from": from, "to": to }),
                None,
            )
            .await;
        refused(&response.errors, "from");
    }
    // Reads write nothing, refused or not.
    assert_eq!(app.stored_submissions().await, 1);
    // A bad mutation input still writes nothing with the new tables in place.
    let response = app
        .request::<SubmitData>(
            SUBMIT,
            json!({ "input": { "allocations": [{ "categoryId": "1", "percentage": 100.001 }] } }),
            None,
        )
        .await;
    assert_eq!(response.first_error().extensions.code, "BAD_USER_INPUT");
    assert_eq!(app.stored_submissions().await, 1);
}

async fn subscribers_get_distributions_of_the_version_pushed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.submit(two_way(20.0), None).await;
    app.wait_folded(1).await;
    let query = "subscription { aggregatesUpdated { version totalSubmissions \
        categories { sumHundredths median zeroShare histogram(buckets: 2) { count } } } }";
    let mut subscribers = Vec::new();
    for protocol in [Protocol::TransportWs, Protocol::LegacyGraphqlWs] {
        subscribers.push(Subscription::start(app.addr(), protocol, query).await);
    }
    app.submit(two_way(80.0), None).await;
    app.submit(two_way(80.0), None).await;
    for sub in &mut subscribers {
        // Every update's distribution belongs to its own version: the median and the counts
        // move with the total.
        loop {
            let data: Value = sub.next_data().await;
            let update = &data["aggregatesUpdated"];
            let total = update["totalSubmissions"].as_i64().expect("a total");
            let first = &update["categories"][0];
            let counts: Vec<i64> = first["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["count"].as_i64().unwrap())
                .collect();
            assert_eq!(counts.iter().sum::<i64>(), total, "{update}");
            assert_eq!(first["zeroShare"].as_f64(), Some(0.0));
            match total {
                1 | 2 => assert_eq!(first["median"].as_f64(), Some(20.0)),
                3 => {
                    assert_eq!(first["median"].as_f64(), Some(80.0));
                    assert_eq!(first["sumHundredths"], 18_000);
                    assert_eq!(counts, vec![1, 2]);
                    break;
                }
                other => panic!("unexpected total {other}"),
            }
        }
    }
    for sub in subscribers {
        sub.close().await;
    }
}
