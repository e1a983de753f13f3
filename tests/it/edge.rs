//! Hostile and careless clients at the WebSocket and HTTP edge, with raw sockets and real
//! protocol clients: oversized messages, too many operations, wrong origins, too many
//! connections, clients that never read or never finish their headers, idle clients that
//! must be kept, the sub-protocol promised in the handshake, and shutdown.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::gql::AGGREGATES_UPDATED;
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{spawn_app_with, Backend, Options, TestApp, DEADLINE, EVEN};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn app(tweak: fn(&mut tax_budget::config::Config)) -> TestApp {
    let options = Options {
        tweak,
        ..Options::default()
    };
    spawn_app_with(Backend::Sqlite, options)
        .await
        .expect("SQLite always runs")
}

/// Opens a WebSocket offering `protocols` (as one header value) with extra headers.
async fn open(
    app: &TestApp,
    protocols: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Socket, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{}/graphql", app.addr())
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocols).expect("header"),
    );
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).expect("header"));
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((socket, chosen))
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
}

/// The next text message as JSON; `None` when the socket closed (or failed).
async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).expect("json"))
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("nothing arrived within {DEADLINE:?}"),
        }
    }
}

async fn init(socket: &mut Socket) {
    send(socket, json!({ "type": "connection_init", "payload": {} })).await;
    loop {
        let message = next_json(socket).await.expect("ack");
        if message["type"] == "connection_ack" {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mib_websocket_message_closes_the_socket() {
    let app = app(|_| {}).await;
    let (mut socket, _) = open(&app, "graphql-transport-ws", &[]).await.expect("open");
    init(&mut socket).await;
    let huge = "x".repeat(10 * 1024 * 1024);
    // The server may close while the message is still being written.
    let _ = socket.send(Message::Text(huge.into())).await;
    assert_eq!(next_json(&mut socket).await, None, "the socket was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operation_beyond_the_cap_on_one_socket_is_refused_and_the_others_run() {
    let app = app(|c| c.websocket.ws_max_operations = 3).await;
    let (mut socket, _) = open(&app, "graphql-transport-ws", &[]).await.expect("open");
    init(&mut socket).await;
    for id in 1..=4 {
        send(
            &mut socket,
            json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": AGGREGATES_UPDATED } }),
        )
        .await;
    }
    let mut refused = Vec::new();
    let mut running = std::collections::BTreeSet::new();
    while running.len() < 3 || refused.is_empty() {
        let message = next_json(&mut socket).await.expect("open");
        match message["type"].as_str() {
            Some("next") => {
                running.insert(message["id"].as_str().unwrap_or_default().to_owned());
            }
            Some("error") => refused.push(message),
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
    assert_eq!(running.into_iter().collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["id"], "4");
    assert_eq!(
        refused[0]["payload"][0]["extensions"]["code"],
        "TOO_MANY_OPERATIONS"
    );
    // Completing one makes room again.
    send(&mut socket, json!({ "id": "1", "type": "complete" })).await;
    send(
        &mut socket,
        json!({ "id": "5", "type": "subscribe", "payload": { "query": AGGREGATES_UPDATED } }),
    )
    .await;
    loop {
        let message = next_json(&mut socket).await.expect("open");
        if message["id"] == "5" {
            assert_eq!(message["type"], "next", "{message}");
            break;
        }
    }
}

/// Reads until the socket closes; its close code.
async fn close_code(sub: &mut Subscription) -> Option<u16> {
    loop {
        let message = sub
            .next_message()
            .await
            .expect("a close frame, not a dropped socket");
        if message["type"] == "__closed" {
            return message["code"].as_u64().and_then(|c| u16::try_from(c).ok());
        }
    }
}

/// graphql-transport-ws forbids a second operation under the id of a running one: the socket
/// closes with 4409, whether the running one is shared with other sockets or runs on its own,
/// and whichever the new one would be (before, a shared one and one of the protocol's could
/// both run under one id). Completed, an id is free again. (The legacy protocol: next test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_subscribed_twice_closes_graphql_transport_ws_with_4409() {
    let app = app(|_| {}).await;
    let shared = json!({ "query": AGGREGATES_UPDATED });
    // With an extension it does not join the shared execution: the protocol runs it alone.
    let alone = json!({ "query": AGGREGATES_UPDATED, "extensions": { "client": "test" } });
    for (first, second) in [(&shared, &shared), (&alone, &shared), (&shared, &alone)] {
        let mut sub = Subscription::connect(app.addr(), Protocol::TransportWs).await;
        sub.init().await;
        sub.subscribe("1", first.clone()).await;
        let (id, _) = sub.next_event().await.expect("the first result");
        assert_eq!(id, "1");
        sub.subscribe("1", second.clone()).await;
        assert_eq!(
            close_code(&mut sub).await,
            Some(4409),
            "{first} then {second}"
        );
    }

    let mut sub = Subscription::connect(app.addr(), Protocol::TransportWs).await;
    sub.init().await;
    sub.subscribe("1", shared.clone()).await;
    sub.next_event().await.expect("the first result");
    sub.unsubscribe("1").await;
    sub.subscribe("1", shared.clone()).await;
    let (id, payload) = loop {
        let (id, payload) = sub.next_event().await.expect("the socket stays open");
        // The server may confirm the end of the first before the second's result.
        if !payload.is_null() {
            break (id, payload);
        }
    };
    assert_eq!(id, "1");
    assert!(
        payload["data"]["aggregatesUpdated"].is_object(),
        "{payload}"
    );
}

/// Legacy graphql-ws has no such rule: an operation given again under a running id replaces
/// the running one, which the client then hears of no more (no `complete` for it either, as
/// that protocol's reference server has it), wherever either runs: shared, or alone in the
/// protocol. Before, an old shared operation and a new one alone (or the reverse) both
/// answered to the id, two results per update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_subscribed_twice_is_replaced_quietly_on_legacy_graphql_ws() {
    let app = app(|_| {}).await;
    let shared = json!({ "query": AGGREGATES_UPDATED });
    let alone = json!({ "query": AGGREGATES_UPDATED, "extensions": { "client": "test" } });
    let total = |payload: &Value| payload["data"]["aggregatesUpdated"]["totalSubmissions"].as_i64();
    let mut submitted = 0;
    for (first, second) in [
        (&shared, &alone),
        (&alone, &shared),
        (&shared, &shared),
        (&alone, &alone),
    ] {
        let case = format!("{first} then {second}");
        let mut sub = Subscription::connect(app.addr(), Protocol::LegacyGraphqlWs).await;
        sub.init().await;
        for operation in [first, second] {
            sub.subscribe("1", operation.clone()).await;
            let (id, payload) = sub.next_event().await.expect("its first result");
            assert_eq!(
                (id.as_str(), total(&payload)),
                ("1", Some(submitted)),
                "{case}: {operation}"
            );
        }

        app.submit(EVEN, None).await;
        submitted += 1;
        loop {
            let (id, payload) = sub.next_event().await.expect("the socket stays open");
            assert!(
                !payload.is_null(),
                "{case}: a `complete` for {id}, still running"
            );
            if total(&payload) == Some(submitted) {
                break;
            }
        }
        // One operation answers to the id: one result for the update, not two.
        assert_eq!(
            sub.stay_idle(Duration::from_millis(500)).await,
            None,
            "{case}: more after the update's result"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_promises_the_protocol_the_server_then_speaks() {
    let app = app(|_| {}).await;
    // Legacy first: the legacy protocol is promised, and spoken (`start` → `data`).
    let (mut socket, chosen) = open(&app, "graphql-ws, graphql-transport-ws", &[])
        .await
        .expect("open");
    assert_eq!(chosen.as_deref(), Some("graphql-ws"));
    init(&mut socket).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "start", "payload": { "query": AGGREGATES_UPDATED } }),
    )
    .await;
    let message = loop {
        let message = next_json(&mut socket).await.expect("open");
        if message["type"] != "ka" {
            break message;
        }
    };
    assert_eq!(message["type"], "data", "{message}");
    // The other order promises, and speaks, graphql-transport-ws.
    let (mut socket, chosen) = open(&app, "graphql-transport-ws, graphql-ws", &[])
        .await
        .expect("open");
    assert_eq!(chosen.as_deref(), Some("graphql-transport-ws"));
    init(&mut socket).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": AGGREGATES_UPDATED } }),
    )
    .await;
    assert_eq!(next_json(&mut socket).await.expect("open")["type"], "next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_other_origins_and_too_many_sockets_from_one_address_are_refused() {
    let app = app(|c| {
        c.websocket.ws_max_per_address = 2;
        c.websocket.allowed_origins = vec!["https://partner.example".into()];
    })
    .await;
    let status = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => 101,
    };
    let own = format!("http://{}", app.addr());
    assert_eq!(
        status(
            open(
                &app,
                "graphql-transport-ws",
                &[("Origin", "https://evil.example")]
            )
            .await
        ),
        403
    );
    let first = open(&app, "graphql-transport-ws", &[("Origin", &own)]).await;
    let second = open(
        &app,
        "graphql-transport-ws",
        &[("Origin", "https://partner.example")],
    )
    .await;
    assert!(first.is_ok() && second.is_ok());
    assert_eq!(status(open(&app, "graphql-transport-ws", &[]).await), 429);
    drop(first);
    // The place comes back once the server has seen the socket go.
    crate::harness::eventually("a place frees up", || async {
        open(&app, "graphql-transport-ws", &[]).await.ok().map(drop)
    })
    .await;
}

/// With the default settings (a ping every 20 s; a client silent for 60 s is gone), clients
/// that send nothing for three minutes but answer pings, as browsers and WebSocket libraries
/// do by themselves, stay connected: a Pong is proof of life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_that_answer_pings_stay_connected_for_three_minutes() {
    let app = app(|_| {}).await;
    let mut modern =
        Subscription::start(app.addr(), Protocol::TransportWs, AGGREGATES_UPDATED).await;
    let mut legacy =
        Subscription::start(app.addr(), Protocol::LegacyGraphqlWs, AGGREGATES_UPDATED).await;
    let first = (modern.next_snapshot().await, legacy.next_snapshot().await);
    // Both reading (and so answering pings) but sending nothing.
    let quiet = Duration::from_secs(180);
    let (modern_got, legacy_got) = tokio::join!(modern.stay_idle(quiet), legacy.stay_idle(quiet));
    assert_eq!(modern_got, None, "nothing but pings while idle");
    assert_eq!(legacy_got, None, "nothing but pings while idle");
    app.submit(EVEN, None).await;
    for subscription in [&mut modern, &mut legacy] {
        let update = subscription.wait_for(|s| s.total_submissions == 1).await;
        assert!(update.version > first.0.version);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_others_keep_receiving() {
    let app = app(|c| {
        c.websocket.ws_write_timeout_secs = 1;
        c.websocket.ws_max_operations = 1_000;
        // The stuck socket and the healthy one: a third is admitted only once the server
        // has let go of the stuck one.
        c.websocket.ws_max_per_address = 2;
    })
    .await;
    // A small receive window, then never a read: the server's writes soon block.
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
    init(&mut stuck).await;
    // Large answers: the schema's introspection, ten times over in each of 300 operations, some
    // 40 MB in all, far more than the kernel buffers. Once the server stops reading too,
    // these sends block; that is fine.
    let schema = "__schema { types { name description fields { name description \
        args { name description type { name kind } } type { name kind ofType { name kind } } } } }";
    let query = format!(
        "{{ {} }}",
        (0..10)
            .map(|i| format!("s{i}: {schema}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        for id in 0..300 {
            let message =
                json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": query } });
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
    let mut healthy =
        Subscription::start(app.addr(), Protocol::TransportWs, AGGREGATES_UPDATED).await;
    healthy.next_snapshot().await;
    let started = Instant::now();
    app.submit(EVEN, None).await;
    healthy.wait_for(|s| s.total_submissions == 1).await;
    println!(
        "update reached the healthy subscriber after {:?}",
        started.elapsed()
    );

    // Still not reading: the server drops the stuck socket after its write timeout, which
    // frees its place.
    crate::harness::eventually("the stuck socket is dropped", || async {
        open(&app, "graphql-transport-ws", &[]).await.ok().map(drop)
    })
    .await;
    println!(
        "stuck client dropped {:?} after the update",
        started.elapsed()
    );
    // What it finds when it reads at last: what the kernel held, then the end.
    let mut raw = stuck.into_inner();
    let MaybeTlsStream::Plain(tcp) = &mut raw else {
        unreachable!("plain TCP")
    };
    let ended = tokio::time::timeout(DEADLINE, async {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(n) = tcp.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the server closed the stuck socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_closed() {
    let app = app(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(app.addr()).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            match slow.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                // hyper may answer 408 before closing.
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "closed by the server");
    println!("half-sent headers closed after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10));
    // Meanwhile the server answers others.
    let (status, _) = app.client().get_json("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shutdown_completes_every_subscription_before_closing() {
    for round in 0..20 {
        let mut app = app(|_| {}).await;
        let protocol = if round % 2 == 0 {
            Protocol::TransportWs
        } else {
            Protocol::LegacyGraphqlWs
        };
        let mut subscription = Subscription::start(app.addr(), protocol, AGGREGATES_UPDATED).await;
        subscription.next_snapshot().await;
        let (completed, _) = tokio::join!(
            async {
                let mut completed = false;
                while let Some(message) = subscription.next_message().await {
                    if message["type"] == "complete" && message["id"] == "1" {
                        completed = true;
                    }
                }
                completed
            },
            app.shut_down(Duration::from_secs(5))
        );
        assert!(
            completed,
            "round {round} ({protocol:?}): complete before the close"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_origin_listed_no_answer_carries_cors_headers() {
    let app = app(|_| {}).await;
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("options");
    assert!(!preflight.status().is_success(), "{}", preflight.status());
    let read = http
        .post(app.url("/graphql"))
        .header("Origin", "https://evil.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("post");
    // Answered (a page of another origin is refused by the browser, not by the server), and
    // without a header that would let the browser hand the answer to that page.
    assert_eq!(read.status(), 200);
    let cors: Vec<_> = read
        .headers()
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{cors:?}");
    assert!(!read.headers()["x-request-id"].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_an_id_and_only_listed_origins_get_cors() {
    let app = app(|c| c.websocket.allowed_origins = vec!["https://partner.example".into()]).await;
    let http = reqwest::Client::new();
    let made_up = http.get(app.url("/healthz")).send().await.expect("get");
    let id = made_up.headers()["x-request-id"].to_str().expect("text");
    assert_eq!(uuid::Uuid::parse_str(id).map(|_| ()), Ok(()), "{id}");
    let kept = http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .expect("get");
    assert_eq!(kept.headers()["x-request-id"], "trace-me-42");
    // An error names the request it belongs to.
    let failed: Value = http
        .post(app.url("/graphql"))
        .header("x-request-id", "trace-me-43")
        .header("accept", "application/json")
        .json(&json!({ "query": "{ submission(id: 1) { nope } }" }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(
        failed["errors"][0]["extensions"]["requestId"], "trace-me-43",
        "{failed}"
    );

    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let listed = preflight("https://partner.example").await.expect("options");
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://partner.example"
    );
    let other = preflight("https://evil.example").await.expect("options");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let page = http.get(app.url("/")).send().await.expect("get");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
}
