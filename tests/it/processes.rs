//! Real processes of the `tax-budget` binary: several servers on one PostgreSQL + Redis, a
//! worker killed in the middle of a fold, the rebuild command, graceful shutdown, the
//! submission rate limit as the flags set it, the log lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::gql::{GqlClient, AGGREGATES_UPDATED};
use crate::harness::ws::{Protocol, Subscription};
use crate::harness::{
    allocation, eventually, on_both_backends, spawn_app_with, Backend, Options, TestBackend, EVEN,
};

/// A child process whose output lines are collected as they come.
pub(crate) struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub(crate) fn spawn(args: &[&str], env: &[(&str, String)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tax-budget"));
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("tax-budget starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("TEST_LOG").is_some() {
                        eprintln!("[child] {line}");
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Process { child, lines }
    }

    pub(crate) async fn wait_for_line(&self, needle: &str) -> String {
        let lines = self.lines.clone();
        eventually(&format!("output line containing {needle:?}"), || {
            let found = lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            async move { found }
        })
        .await
    }

    /// Starts `serve` on a random port and returns it with its address.
    async fn serve(env: &[(&str, String)]) -> (Process, std::net::SocketAddr) {
        let mut env = env.to_vec();
        env.push(("BIND", "127.0.0.1:0".into()));
        let process = Process::spawn(&["serve"], &env);
        let line = process
            .wait_for_line("tax-budget listening on http://")
            .await;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("address in the listening line");
        (process, addr)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    pub(crate) async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = &mut self.child;
        let mut status = None;
        eventually("process exit", || {
            status = status.or_else(|| child.try_wait().expect("try_wait"));
            async move { status }
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_on_one_server_reaches_a_subscriber_on_another() {
    let Some(backend) = TestBackend::create(Backend::Postgres).await else {
        return;
    };
    let env = backend.env();
    let (_a, a) = Process::serve(&env).await;
    let (_b, b) = Process::serve(&env).await;

    let mut on_b = Subscription::start(b, Protocol::TransportWs, AGGREGATES_UPDATED).await;
    let initial = on_b.next_snapshot().await;
    assert_eq!(initial.total_submissions, 0);

    GqlClient::new(a)
        .submit([30.0, 70.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], None)
        .await;
    let update = on_b.wait_for(|s| s.total_submissions == 1).await;
    assert_eq!(update.categories[1].average_percentage, 70.0);

    // And the other way round, with both servers' workers running against one database.
    let mut on_a = Subscription::start(a, Protocol::LegacyGraphqlWs, AGGREGATES_UPDATED).await;
    on_a.next_snapshot().await;
    GqlClient::new(b).submit(EVEN, None).await;
    let update = on_a.wait_for(|s| s.total_submissions == 2).await;
    assert_eq!(update.categories[1].average_percentage, 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_are_woken_through_redis_and_fold_exactly() {
    let Some(app) = spawn_app_with(Backend::Postgres, Options::without_worker()).await else {
        return;
    };
    let mut env = app.backend.env();
    // An hour between polls: only the Redis nudge can wake these workers in time.
    env.push(("WORKER_POLL_MS", "3600000".into()));
    env.push(("WORKER_BATCH_SIZE", "25".into()));
    let workers = [
        Process::spawn(&["worker"], &env),
        Process::spawn(&["worker"], &env),
    ];
    for worker in &workers {
        worker.wait_for_line("outbox worker started").await;
    }
    let app = Arc::new(app);
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let mut values = EVEN;
                    values[(w + i) % 10] = 0.5;
                    values[(w + i + 5) % 10] = 19.5;
                    app.submit(values, None).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    app.assert_folded_exactly(300).await;
    drop(workers);
}

async fn a_killed_worker_loses_and_double_counts_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    for i in 0..30 {
        let mut values = EVEN;
        values[i % 10] = 1.0;
        values[(i + 3) % 10] = 19.0;
        app.submit(values, None).await;
    }
    let mut env = app.backend.env();
    env.push(("WORKER_BATCH_SIZE", "10".into()));

    let mut paused = env.clone();
    paused.push(("WORKER_FOLD_PAUSE_MS", "600000".into()));
    let doomed = Process::spawn(&["worker"], &paused);
    doomed.wait_for_line("fold paused before commit").await;
    drop(doomed); // SIGKILL in the middle of the fold transaction

    assert_eq!(
        app.app.store.outbox_len().await.unwrap(),
        30,
        "no outbox row was lost"
    );
    let summary = app.app.store.summary_snapshot().await.unwrap();
    assert_eq!(
        summary.map_or(0, |s| s.total_submissions),
        0,
        "nothing was counted"
    );

    let mut worker = Process::spawn(&["worker"], &env);
    app.assert_folded_exactly(30).await;

    worker.signal("TERM");
    assert!(
        worker.wait_exit().await.success(),
        "a worker stops cleanly on SIGTERM"
    );
}

on_both_backends!(a_killed_worker_loses_and_double_counts_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_aggregates_command_recomputes_the_summary() {
    let app = spawn_app_with(Backend::Sqlite, Options::default())
        .await
        .expect("app");
    for _ in 0..5 {
        app.submit(EVEN, None).await;
    }
    app.wait_folded(5).await;
    let env = app.backend.env();
    let mut rebuild = Process::spawn(&["rebuild-aggregates"], &env);
    assert!(rebuild.wait_exit().await.success());
    let line = rebuild.wait_for_line("summary rebuilt").await;
    assert!(line.contains("5 submissions"), "{line}");
    let summary = app
        .app
        .store
        .summary_snapshot()
        .await
        .unwrap()
        .expect("fresh summary");
    assert_eq!(summary.total_submissions, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_without_connection_init_is_closed() {
    let app = spawn_app_with(Backend::Sqlite, Options::default())
        .await
        .expect("app");
    let mut idle = Subscription::connect(app.addr(), Protocol::TransportWs).await;
    let started = tokio::time::Instant::now();
    let message = idle.next_message().await.expect("a close frame");
    assert_eq!(message, json!({ "type": "__closed", "code": 4408 }));
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "not before the init timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_websockets_and_exits_cleanly() {
    let backend = TestBackend::create(Backend::Sqlite).await.expect("db");
    let (mut server, addr) = Process::serve(&backend.env()).await;
    let mut sub = Subscription::start(addr, Protocol::TransportWs, AGGREGATES_UPDATED).await;
    sub.next_snapshot().await;
    server.signal("TERM");
    // The subscription is completed and the socket closed with "going away".
    let mut saw_close = false;
    while let Some(message) = sub.next_message().await {
        if message["type"] == "__closed" {
            assert_eq!(message["code"], 1001);
            saw_close = true;
            break;
        }
        assert!(
            message["type"] == "complete" || message["type"] == "next",
            "{message}"
        );
    }
    assert!(saw_close, "the server sent a close frame");
    assert!(server.wait_exit().await.success());
}

/// `serve` writes its log lines from a thread of its own, in batches: each response's line
/// still comes out, naming its request, and the lines logged while the process ends are
/// written before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_come_out_promptly_and_the_last_ones_at_exit() {
    let backend = TestBackend::create(Backend::Sqlite).await.expect("db");
    let (mut server, addr) = Process::serve(&backend.env()).await;
    let id = format!("log-line-{}", uuid::Uuid::new_v4());
    let answered = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("x-request-id", &id)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("request");
    assert_eq!(answered.status(), 200);
    let line = server.wait_for_line(&id).await;
    assert!(line.contains("finished processing request"), "{line}");
    assert!(line.contains("status=200"), "{line}");

    server.signal("TERM");
    assert!(server.wait_exit().await.success());
    // The last line is logged just before the process ends.
    server.wait_for_line("server stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_limits_submissions_per_address_as_configured() {
    let backend = TestBackend::create(Backend::Sqlite).await.expect("db");
    let mut env = backend.env();
    env.push(("SUBMIT_RATE_PER_MINUTE", "1".into()));
    let (_server, addr) = Process::serve(&env).await;
    let client = GqlClient::new(addr);
    client.submit(EVEN, None).await;
    let second = client.submit_raw(allocation(EVEN), None, None).await;
    let error = second.first_error();
    assert_eq!(error.extensions.code, "RATE_LIMITED", "{second:?}");
    let retry = error.extensions.retry_after_seconds;
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{second:?}");
}

/// The embedded default with its worker in another process: no Redis tells the server about
/// the worker's folds, so the server watches the summary itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_separate_worker_s_folds_reach_the_server() {
    let Some(backend) = TestBackend::create(Backend::Sqlite).await else {
        return;
    };
    let mut env = backend.env();
    env.push(("RUN_WORKER", "false".into()));
    let (_server, addr) = Process::serve(&env).await;
    let _worker = Process::spawn(&["worker"], &backend.env());
    let client = GqlClient::new(addr);
    let mut subscriber = Subscription::start(addr, Protocol::TransportWs, AGGREGATES_UPDATED).await;
    assert_eq!(subscriber.next_snapshot().await.total_submissions, 0);
    for _ in 0..3 {
        client.submit(EVEN, None).await;
    }
    let pushed = subscriber.wait_for(|s| s.total_submissions == 3).await;
    let read = eventually("the server reads the worker's fold", || async {
        let snapshot = client.aggregates().await;
        (snapshot.total_submissions == 3).then_some(snapshot)
    })
    .await;
    assert!(read.version >= pushed.version);
}

/// With an OTLP endpoint set, spans reach the collector: a small in-process OTLP/HTTP
/// receiver stands in for one and keeps every body it gets. The spans are protobuf, whose
/// strings travel as plain UTF-8, so the span and attribute names can be looked for in the
/// bytes without decoding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector() {
    use axum::body::Bytes;
    use axum::routing::post;

    let Some(backend) = TestBackend::create(Backend::Sqlite).await else {
        return;
    };
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let collector = {
        let received = received.clone();
        axum::Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let received = received.clone();
                async move {
                    received.lock().expect("received").push(body);
                    ""
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector_addr = listener.local_addr().expect("addr");
    let collector_task = tokio::spawn(async move { axum::serve(listener, collector).await });

    let mut env = backend.env();
    env.push((
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://{collector_addr}"),
    ));
    let (mut server, addr) = Process::serve(&env).await;
    server.wait_for_line("exporting traces over OTLP").await;
    let client = GqlClient::new(addr);
    client.submit(EVEN, None).await;
    eventually("the submission is folded", || async {
        (client.aggregates().await.total_submissions == 1).then_some(())
    })
    .await;
    // The batch exporter sends on its schedule or when the process ends: end it.
    server.signal("TERM");
    assert!(server.wait_exit().await.success());

    let bodies = received.lock().expect("received").concat();
    let contains = |needle: &str| bodies.windows(needle.len()).any(|w| w == needle.as_bytes());
    for needle in [
        "tax-budget",
        "request",
        "request_id",
        "fold_batch",
        "first_outbox_id",
    ] {
        assert!(
            contains(needle),
            "no {needle:?} in {} bytes of spans",
            bodies.len()
        );
    }
    collector_task.abort();
}
