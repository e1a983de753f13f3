//! Shared subscriptions: every socket that subscribes to the same snapshot operation gets the
//! results of one execution of it, serialized once, with the behaviour of a subscription run
//! for it alone (first result at once, monotonic versions, `complete` on stop and at
//! shutdown, the same errors and the same read budget).
//!
//! Executions are counted by `App::updates_computed`, which counts every result of
//! `aggregatesUpdated` the server computes, shared or not. A subscription sent with a
//! persisted-query extension runs per socket, as every subscription did before: the tests use
//! it as the reference.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::gql::AGGREGATES_UPDATED;
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{
    eventually, on_both_backends, spawn_app, spawn_app_with, Backend, Options, TestApp, EVEN,
};

/// The same result as [`AGGREGATES_UPDATED`], asked another way: an alias, a fragment,
/// `__typename`, an operation name.
const WITH_FRAGMENT: &str = "subscription Live { live: aggregatesUpdated { __typename ...S } } \
     fragment S on AggregateSnapshot { version totalSubmissions source \
     categories { category { id slug } averagePercentage } }";
/// A smaller selection.
const SMALL: &str = "subscription { aggregatesUpdated { version totalSubmissions } }";
/// Another, with fields read from the distributions: shared all the same, each version's
/// distributions read once.
const DETAILED: &str = "subscription { aggregatesUpdated { version totalSubmissions \
     categories { median histogram(buckets: 4) { count } } } }";

fn shared(query: &str) -> Value {
    json!({ "query": query })
}

/// The same operation, run per socket: a request that registers its document as a persisted
/// query is never shared.
fn per_socket(query: &str) -> Value {
    let hash = hex::encode(Sha256::digest(query.as_bytes()));
    json!({ "query": query, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
}

fn protocol(i: usize) -> Protocol {
    if i % 2 == 0 {
        Protocol::TransportWs
    } else {
        Protocol::LegacyGraphqlWs
    }
}

async fn connected(app: &TestApp, protocol: Protocol) -> Subscription {
    let mut socket = Subscription::connect(app.addr(), protocol).await;
    socket.init().await;
    socket
}

/// The snapshot in a result payload: whichever field (or alias) holds it.
fn snapshot(payload: &Value) -> &Value {
    let data = payload["data"].as_object().unwrap_or_else(|| {
        panic!("a result with data: {payload}");
    });
    data.values().next().expect("one field")
}

fn total(payload: &Value) -> i64 {
    snapshot(payload)["totalSubmissions"]
        .as_i64()
        .expect("totalSubmissions")
}

fn version(payload: &Value) -> i64 {
    snapshot(payload)["version"].as_i64().expect("version")
}

/// A result for `id`, skipping nothing: anything else is a failure.
async fn result_for(socket: &mut Subscription, id: &str) -> Value {
    let (got, payload) = socket.next_event().await.expect("socket open");
    assert_eq!(got, id, "{payload}");
    assert!(!payload.is_null(), "a result, not `complete`, for {id}");
    payload
}

async fn complete_for(socket: &mut Subscription, id: &str) {
    let (got, payload) = socket.next_event().await.expect("socket open");
    assert_eq!(
        (got.as_str(), &payload),
        (id, &Value::Null),
        "`complete` for {id}"
    );
}

on_both_backends!(fifty_subscribers_share_one_execution_per_operation_and_version);

async fn fifty_subscribers_share_one_execution_per_operation_and_version(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let computed = || app.app.updates_computed.get();
    let documents = [AGGREGATES_UPDATED, WITH_FRAGMENT, DETAILED];
    // 48 sockets share three operations; 2 run the first one each for itself.
    let mut subscribers = Vec::new();
    for i in 0..50 {
        let mut socket = connected(&app, protocol(i)).await;
        let (group, payload) = match i {
            48 | 49 => (3 + i - 48, per_socket(AGGREGATES_UPDATED)),
            _ => (i % 3, shared(documents[i % 3])),
        };
        socket.subscribe("s", payload).await;
        subscribers.push((group, socket));
    }
    // Versions each of the five executions was seen to compute.
    let mut versions: HashMap<usize, BTreeSet<i64>> = HashMap::new();
    let mut last: HashMap<usize, i64> = HashMap::new();
    for round in 0..=3 {
        if round > 0 {
            app.submit(EVEN, None).await;
        }
        let mut results: HashMap<usize, Vec<Value>> = HashMap::new();
        for (i, (group, socket)) in subscribers.iter_mut().enumerate() {
            let payload = loop {
                let payload = result_for(socket, "s").await;
                let v = version(&payload);
                let before = last.insert(i, v).unwrap_or(i64::MIN);
                assert!(
                    v > before,
                    "subscriber {i}: version went from {before} to {v}"
                );
                versions.entry(*group).or_default().insert(v);
                if total(&payload) == round {
                    break payload;
                }
            };
            results.entry(*group).or_default().push(payload);
        }
        for (group, payloads) in &results {
            assert!(
                payloads.windows(2).all(|w| w[0] == w[1]),
                "round {round}, document {group}: every subscriber got the same result"
            );
        }
        // The shared result is the one a subscriber of its own gets.
        assert_eq!(results[&0][0], results[&3][0], "round {round}");
        assert_eq!(snapshot(&results[&1][0])["__typename"], "AggregateSnapshot");
        let averages = |payload: &Value| {
            snapshot(payload)["categories"]
                .as_array()
                .expect("categories")
                .iter()
                .map(|c| c["averagePercentage"].as_f64().expect("average"))
                .collect::<Vec<_>>()
        };
        assert_eq!(averages(&results[&0][0]), averages(&results[&1][0]));
        let read = app.aggregates().await;
        assert_eq!(version(&results[&2][0]), read.version);
        assert_eq!(total(&results[&2][0]), read.total_submissions);
        // One execution per operation and version, however many subscribe: 3 shared
        // operations and 2 run per socket, not 50.
        let seen: usize = versions.values().map(BTreeSet::len).sum();
        assert_eq!(computed(), seen as u64, "round {round}: {versions:?}");
        assert_eq!(
            seen,
            5 * (round as usize + 1),
            "one version per fold: {versions:?}"
        );
    }
    for (_, socket) in subscribers {
        socket.close().await;
    }
}

/// A subscription sent by the hash of a persisted query alone joins the shared execution of
/// the same document sent as text: the hash is the text's SHA-256, so it is the same cohort.
/// (One that registers the document, its text and its hash together, still runs alone, so
/// that the schema's extension registers it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_by_persisted_hash_joins_the_shared_execution() {
    let app = spawn_app_with(Backend::Sqlite, Options::default())
        .await
        .expect("SQLite always runs");
    let computed = || app.app.updates_computed.get();
    let mut registering = connected(&app, Protocol::TransportWs).await;
    registering.subscribe("r", per_socket(SMALL)).await;
    let first = result_for(&mut registering, "r").await;
    assert_eq!(computed(), 1);

    let hash = hex::encode(Sha256::digest(SMALL.as_bytes()));
    let by_hash =
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    let mut a = connected(&app, Protocol::TransportWs).await;
    let mut b = connected(&app, Protocol::LegacyGraphqlWs).await;
    let mut c = connected(&app, Protocol::TransportWs).await;
    a.subscribe("1", by_hash.clone()).await;
    b.subscribe("1", by_hash).await;
    c.subscribe("1", shared(SMALL)).await;
    for socket in [&mut a, &mut b, &mut c] {
        assert_eq!(result_for(socket, "1").await, first);
    }
    // The registering subscription runs alone; the three share one execution.
    assert_eq!(computed(), 2);

    app.submit(EVEN, None).await;
    let second = result_for(&mut a, "1").await;
    assert_eq!(total(&second), 1);
    assert_eq!(result_for(&mut b, "1").await, second);
    assert_eq!(result_for(&mut c, "1").await, second);
    assert_eq!(result_for(&mut registering, "r").await, second);
    assert_eq!(computed(), 4, "one execution per version for the three");
    for socket in [registering, a, b, c] {
        socket.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_stops_the_others_go_on_and_the_last_one_out_ends_the_execution() {
    let options = Options {
        tweak: |c| c.websocket.ws_max_per_address = 2,
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("SQLite always runs");
    let computed = || app.app.updates_computed.get();
    let mut a = connected(&app, Protocol::TransportWs).await;
    let mut b = connected(&app, Protocol::LegacyGraphqlWs).await;
    a.subscribe("1", shared(SMALL)).await;
    a.subscribe("2", shared(SMALL)).await;
    b.subscribe("x", shared(SMALL)).await;
    let first = result_for(&mut a, "1").await;
    assert_eq!(result_for(&mut a, "2").await, first);
    assert_eq!(result_for(&mut b, "x").await, first);
    assert_eq!(computed(), 1);

    // Stopped, one member is completed; the others still get every version.
    a.unsubscribe("1").await;
    complete_for(&mut a, "1").await;
    app.submit(EVEN, None).await;
    let second = result_for(&mut a, "2").await;
    assert_eq!(total(&second), 1);
    assert_eq!(result_for(&mut b, "x").await, second);
    assert_eq!(computed(), 2);
    b.unsubscribe("x").await;
    complete_for(&mut b, "x").await;
    // An id stopped twice, or never started, gets nothing: the next message is a result.
    b.unsubscribe("x").await;
    b.unsubscribe("nope").await;
    b.subscribe("y", shared(SMALL)).await;
    assert_eq!(result_for(&mut b, "y").await, second);
    assert_eq!(
        computed(),
        2,
        "a newcomer gets the current result, computed before"
    );

    // The last members leave with their sockets: nothing is computed any more.
    a.close().await;
    b.close().await;
    eventually("the server let go of both sockets", || async {
        let first = Subscription::try_connect(app.addr(), Protocol::TransportWs).await?;
        let second = Subscription::try_connect(app.addr(), Protocol::TransportWs).await;
        drop(first);
        second.map(drop)
    })
    .await;
    app.submit(EVEN, None).await;
    app.wait_folded(2).await;
    assert_eq!(computed(), 2, "nobody subscribed: nothing computed");
    // A new subscriber starts the operation again.
    eventually("a place for a socket", || async {
        Subscription::try_connect(app.addr(), Protocol::TransportWs)
            .await
            .map(drop)
    })
    .await;
    let mut c = connected(&app, Protocol::TransportWs).await;
    c.subscribe("1", shared(SMALL)).await;
    assert_eq!(total(&result_for(&mut c, "1").await), 2);
    assert_eq!(computed(), 3);
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_the_same_shared_or_not() {
    // The full selection costs 76 (a list of ten categories), the small one 3.
    let options = Options {
        queries: tax_budget::config::QueryLimitsConfig {
            max_cost: 50,
            ..Default::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("SQLite always runs");
    for (i, query) in [
        "subscription { aggregatesUpdated { nope } }",
        AGGREGATES_UPDATED,
        "subscription { aggregatesUpdated { version } } subscription B { aggregatesUpdated { version } }",
    ]
    .into_iter()
    .enumerate()
    {
        let mut socket = connected(&app, protocol(i)).await;
        socket.subscribe("shared", shared(query)).await;
        let refused = result_for(&mut socket, "shared").await;
        complete_for(&mut socket, "shared").await;

        socket.subscribe("alone", per_socket(query)).await;

        assert_eq!(result_for(&mut socket, "alone").await, refused, "{query}");
        complete_for(&mut socket, "alone").await;
        assert!(refused["errors"][0]["message"].is_string(), "{refused}");
        assert_eq!(refused["data"], Value::Null);
        if query == AGGREGATES_UPDATED {
            assert_eq!(
                refused["errors"][0]["extensions"]["code"], "QUERY_TOO_COSTLY",
                "{refused}"
            );
        }
        socket.close().await;
    }
    assert_eq!(app.app.updates_computed.get(), 0);
}

/// Subscribes `query` over and over on one socket until the read budget refuses; returns how
/// many ran and the refusal.
async fn subscribe_until_refused(app: &TestApp, payload: fn(&str) -> Value) -> (usize, Value) {
    let mut socket = connected(app, Protocol::TransportWs).await;
    for i in 0..100 {
        let id = i.to_string();
        socket.subscribe(&id, payload(SMALL)).await;
        let result = result_for(&mut socket, &id).await;
        if result["errors"].is_array() {
            complete_for(&mut socket, &id).await;
            socket.close().await;
            return (i, result);
        }
        socket.unsubscribe(&id).await;
        complete_for(&mut socket, &id).await;
    }
    panic!("100 subscriptions of 3 within a budget of 30 a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_pays_the_read_budget_as_a_subscription_of_its_own_does() {
    let mut outcomes = Vec::new();
    for payload in [shared as fn(&str) -> Value, per_socket] {
        let options = Options {
            queries: tax_budget::config::QueryLimitsConfig {
                // Ten subscriptions of 3.
                read_cost_per_minute: 30,
                ..Default::default()
            },
            ..Options::default()
        };
        let app = spawn_app_with(Backend::Sqlite, options)
            .await
            .expect("SQLite always runs");
        let (accepted, refusal) = subscribe_until_refused(&app, payload).await;
        let error = &refusal["errors"][0];
        assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{refusal}");
        assert!(error["extensions"]["retryAfterSeconds"].as_u64().is_some());
        outcomes.push(accepted);
    }
    assert_eq!(outcomes, [10, 10], "accepted: shared, per socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_shared_and_per_socket_subscriptions_before_closing() {
    for round in 0..6 {
        let mut app = spawn_app(Backend::Sqlite)
            .await
            .expect("SQLite always runs");
        let mut socket = connected(&app, protocol(round)).await;
        socket.subscribe("shared", shared(SMALL)).await;
        socket.subscribe("alone", per_socket(SMALL)).await;
        let mut started = BTreeSet::new();
        while started.len() < 2 {
            let (id, payload) = socket.next_event().await.expect("open");
            assert!(!payload.is_null());
            started.insert(id);
        }
        let (completed, _) = tokio::join!(
            async {
                let mut completed = BTreeSet::new();
                while let Some((id, payload)) = socket.next_event().await {
                    if payload.is_null() {
                        completed.insert(id);
                    }
                }
                completed
            },
            app.shut_down(Duration::from_secs(5))
        );
        assert_eq!(
            completed, started,
            "round {round}: both completed before the close"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_stops_reading_holds_back_no_other_member() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::MaybeTlsStream;

    let options = Options {
        tweak: |c| {
            c.websocket.ws_write_timeout_secs = 1;
            c.websocket.ws_max_operations = 2_000;
            c.websocket.ws_max_per_address = 2;
        },
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("SQLite always runs");
    // A small receive window and never a read: 2,000 members of the shared operation on it
    // make some 3 MB per version, far more than the kernel buffers.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(app.addr()).await.expect("connect");
    let mut request = format!("ws://{}/graphql", app.addr())
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut stuck, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("handshake");
    stuck
        .send(Message::Text(
            json!({ "type": "connection_init" }).to_string().into(),
        ))
        .await
        .expect("init");
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        for id in 0..2_000 {
            let message = json!({ "id": id.to_string(), "type": "subscribe",
                "payload": { "query": AGGREGATES_UPDATED } });
            if stuck
                .send(Message::Text(message.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    })
    .await;

    let mut healthy = connected(&app, Protocol::TransportWs).await;
    healthy.subscribe("1", shared(AGGREGATES_UPDATED)).await;
    result_for(&mut healthy, "1").await;
    for n in 1..=3 {
        let started = std::time::Instant::now();
        app.submit(EVEN, None).await;
        loop {
            if total(&result_for(&mut healthy, "1").await) == n {
                break;
            }
        }
        println!(
            "update {n} reached the healthy member after {:?}",
            started.elapsed()
        );
    }
    eventually("the stuck socket is dropped", || async {
        Subscription::try_connect(app.addr(), Protocol::TransportWs)
            .await
            .map(drop)
    })
    .await;
    // The healthy member goes on.
    app.submit(EVEN, None).await;
    loop {
        if total(&result_for(&mut healthy, "1").await) == 4 {
            break;
        }
    }
    drop(stuck);
    healthy.close().await;
}
