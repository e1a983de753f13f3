//! Push: how fast a new snapshot reaches WebSocket subscribers and what an idle subscriber
//! costs the server, with subscriptions shared per operation, beside the reference in the
//! same run: the same subscribers each running the operation on its own (the path every
//! subscription took before; a subscription sent with a persisted-query extension still
//! does).
//!
//!     cargo bench --bench push
//!     PUSH_SUBSCRIBERS=10000 cargo bench --bench push
//!
//! - Fan-out: `PUSH_SUBSCRIBERS` (default 2,000) sockets on one `tax-budget serve` process
//!   (SQLite in a temp dir, in-process cache and bus), all subscribed to the dashboard's
//!   subscription; then `PUSH_UPDATES` (default 5) submissions one after another, each timed
//!   from its POST until every subscriber got the new version. CPU: the server's user and
//!   system time over the updates, per socket and update (the submissions and folds
//!   included). Memory: the server's VmRSS with every socket subscribed, minus before the
//!   first connected, per socket. A fresh process per path.
//! - Across instances (only with `TEST_DATABASE_URL` and `TEST_REDIS_URL`): two processes on
//!   one new PostgreSQL database and Redis; 200 subscribers on B; submissions on A at
//!   `PUSH_RATE` (default 50) per second for `PUSH_SECONDS` (default 5); for each submission
//!   and subscriber, the time from its POST until a version counting it arrived.
//!
//! The subscribers run in this process, on the same two cores as the server: the times
//! include reading every frame on the client side.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use common::{env_number, scratch_dir};

const DASHBOARD: &str = "subscription Dashboard { aggregatesUpdated { version totalSubmissions \
     updatedAt source categories { category { id slug name color displayOrder } \
     averagePercentage } } }";
const SUBMIT: &str = "mutation Submit($input: SubmitAllocationInput!) { \
     submitAllocation(input: $input) { submission { id } } }";
/// Connections being set up at once: far below the listen backlog.
const CONNECTING: usize = 128;
/// For every wait, and on top of it a millisecond per subscriber (connecting them all).
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Shared,
    PerSocket,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Shared => "shared per operation",
            Path::PerSocket => "per socket (reference)",
        }
    }

    fn payload(self) -> Value {
        match self {
            Path::Shared => json!({ "query": DASHBOARD }),
            // Registering the document as a persisted query keeps it off the shared path.
            Path::PerSocket => {
                let hash = hex::encode(Sha256::digest(DASHBOARD.as_bytes()));
                json!({ "query": DASHBOARD,
                    "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
            }
        }
    }
}

/// A `tax-budget serve` process, killed when dropped.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn spawn(env: &[(&str, String)]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tax-budget"));
        command
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("BIND", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            // Every subscriber is 127.0.0.1: no per-address budgets.
            .env("SUBMIT_RATE_PER_MINUTE", "0")
            .env("READ_COST_PER_MINUTE", "0")
            .env("WS_MAX_PER_ADDRESS", "100000")
            .env("WS_MAX_CONNECTIONS", "100000")
            .env("MAX_CONNECTIONS", "100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("tax-budget starts");
        let stdout = child.stdout.take().expect("stdout");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Reads on until the process ends, so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split('/').next().and_then(|a| a.parse().ok());
                    let _ = addr_tx.send(addr);
                }
            }
        });
        let addr = addr_rx
            .recv_timeout(DEADLINE)
            .ok()
            .flatten()
            .expect("the server says where it listens");
        ServerProcess { child, addr }
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// CPU time the process has used (user and system), in microseconds: counted by the
    /// kernel, so it does not move with what else runs, as the latencies do.
    fn cpu_micros(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/<pid>/stat");
        // Fields 14 and 15 (utime, stime) count after the command name, which may hold spaces.
        let after_name = stat.rsplit_once(')').expect("stat fields").1;
        let ticks: u64 = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|t| t.parse::<u64>().expect("ticks"))
            .sum();
        // USER_HZ is 100 on every Linux the bench runs on.
        ticks * 10_000
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(subscriber, totalSubmissions, when)` for every result a subscriber reads.
type Seen = mpsc::UnboundedSender<(usize, i64, Instant)>;

/// Opens a socket, subscribes, and reports each result until the socket or `stop` ends.
async fn subscriber(
    index: usize,
    addr: SocketAddr,
    payload: Value,
    seen: Seen,
    connecting: Arc<Semaphore>,
) {
    let permit = connecting.acquire_owned().await.expect("semaphore");
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    // A small read buffer, as the server's: tungstenite zeroes the unused part of its read
    // buffer before each read, and with its default of 128 KiB the 10,000 clients of this
    // process spent more of the two cores zeroing memory than the server spent pushing.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .expect("websocket connects");
    let send = |message: Value| Message::Text(message.to_string().into());
    socket
        .send(send(json!({ "type": "connection_init" })))
        .await
        .expect("init");
    socket
        .send(send(
            json!({ "id": "1", "type": "subscribe", "payload": payload }),
        ))
        .await
        .expect("subscribe");
    let mut permit = Some(permit);
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        // Read as little as a client must, so that the times are mostly the server's: these
        // clients share its cores.
        if !text.starts_with(r#"{"type":"next""#) {
            continue;
        }
        let total = text
            .split(r#""totalSubmissions":"#)
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("a result: {text}"));
        // Subscribed: the next one may connect.
        permit.take();
        if seen.send((index, total, Instant::now())).is_err() {
            break;
        }
    }
}

async fn submit(http: &reqwest::Client, addr: SocketAddr, i: usize) {
    let allocations: Vec<Value> = (1..=10)
        .map(|c| {
            let percentage = if c == 1 + i % 10 { 55.0 } else { 5.0 };
            json!({ "categoryId": c.to_string(), "percentage": percentage })
        })
        .collect();
    let body = json!({ "query": SUBMIT, "variables": { "input": { "allocations": allocations } } });
    let reply: Value = http
        .post(format!("http://{addr}/graphql"))
        .json(&body)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    assert!(reply["errors"].is_null(), "submission refused: {reply}");
}

/// Milliseconds at the given quantile of `samples` (sorted here).
fn quantile(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[index].as_secs_f64() * 1e3
}

struct Subscribers {
    seen: mpsc::UnboundedReceiver<(usize, i64, Instant)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The newest total each subscriber saw.
    newest: Vec<i64>,
}

impl Subscribers {
    /// Connects `n` subscribers and waits until each got its first result.
    async fn connect(addr: SocketAddr, n: usize, path: Path) -> Subscribers {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let connecting = Arc::new(Semaphore::new(CONNECTING));
        let tasks = (0..n)
            .map(|i| {
                tokio::spawn(subscriber(
                    i,
                    addr,
                    path.payload(),
                    seen_tx.clone(),
                    connecting.clone(),
                ))
            })
            .collect();
        let mut subscribers = Subscribers {
            seen,
            tasks,
            newest: vec![-1; n],
        };
        subscribers.wait_until(|_| true, &mut |_, _| {}).await;
        subscribers
    }

    /// Reads results until every subscriber's newest total satisfies `done`, handing each
    /// `(subscriber, total, when)` to `each`.
    async fn wait_until(
        &mut self,
        done: impl Fn(i64) -> bool,
        each: &mut impl FnMut(usize, (i64, Instant)),
    ) {
        let mut missing = self
            .newest
            .iter()
            .filter(|t| !(**t >= 0 && done(**t)))
            .count();
        let deadline =
            tokio::time::Instant::now() + DEADLINE + Duration::from_millis(missing as u64);
        while missing > 0 {
            let (index, total, at) = tokio::time::timeout_at(deadline, self.seen.recv())
                .await
                .expect("every subscriber within the deadline")
                .expect("subscribers running");
            let before = self.newest[index];
            assert!(total >= before, "subscriber {index}: {before} then {total}");
            self.newest[index] = total;
            if !(before >= 0 && done(before)) && done(total) {
                missing -= 1;
            }
            each(index, (total, at));
        }
    }

    fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// One fan-out run on a fresh process: memory per socket, latency percentiles, and the
/// server's CPU time per socket and update.
struct FanOut {
    kib_per_socket: f64,
    cpu_micros_per_push: f64,
    latencies: Vec<Duration>,
    connect_secs: f64,
}

async fn fan_out(n: usize, updates: usize, path: Path) -> FanOut {
    let dir = scratch_dir();
    let server = ServerProcess::spawn(&[(
        "DATABASE_URL",
        dir.path().join("bench.sqlite3").display().to_string(),
    )]);
    let http = reqwest::Client::new();
    // Warm: one read, so the idle figure includes what the first request allocates.
    http.get(format!("http://{}/readyz", server.addr))
        .send()
        .await
        .expect("readyz");
    let idle = server.rss_kib();
    let started = Instant::now();
    let mut subscribers = Subscribers::connect(server.addr, n, path).await;
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = server.rss_kib();
    let mut latencies = Vec::with_capacity(n * updates);
    let cpu_before = server.cpu_micros();
    for round in 1..=updates {
        let sent = Instant::now();
        submit(&http, server.addr, round).await;
        let want = round as i64;
        subscribers
            .wait_until(|total| total >= want, &mut |_, (total, at)| {
                if total == want {
                    latencies.push(at - sent);
                }
            })
            .await;
    }
    let cpu = server.cpu_micros().saturating_sub(cpu_before);
    subscribers.close();
    // The process first: it holds the database open.
    drop(server);
    drop(dir);
    FanOut {
        kib_per_socket: connected.saturating_sub(idle) as f64 / n as f64,
        cpu_micros_per_push: cpu as f64 / (n * updates) as f64,
        latencies,
        connect_secs,
    }
}

/// Submissions on A at `rate`/s for `seconds`, 200 subscribers on B: submit→receive times.
async fn across(
    a: SocketAddr,
    b: SocketAddr,
    rate: usize,
    seconds: usize,
    path: Path,
) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let mut subscribers = Subscribers::connect(b, 200, path).await;
    let base = *subscribers.newest.iter().max().unwrap_or(&0);
    // Everyone on the same version first.
    subscribers.wait_until(|t| t >= base, &mut |_, _| {}).await;
    let count = rate * seconds;
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let submitter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..count {
            tick.tick().await;
            let _ = sent_tx.send(Instant::now());
            submit(&http, a, i).await;
        }
    });
    // Each subscriber's arrival times per total.
    let mut arrivals: HashMap<usize, Vec<(i64, Instant)>> = HashMap::new();
    let want = base + count as i64;
    subscribers
        .wait_until(|t| t >= want, &mut |index, seen| {
            arrivals.entry(index).or_default().push(seen)
        })
        .await;
    submitter.await.expect("submitter");
    let mut sent = Vec::with_capacity(count);
    while let Ok(at) = sent_rx.try_recv() {
        sent.push(at);
    }
    subscribers.close();
    // Submission i (sent one after another) is counted in any total above base + i.
    let mut latencies = Vec::with_capacity(count * 200);
    for seen in arrivals.values() {
        for (i, sent_at) in sent.iter().enumerate() {
            let needed = base + i as i64 + 1;
            if let Some((_, at)) = seen.iter().find(|(total, _)| *total >= needed) {
                latencies.push(at.saturating_duration_since(*sent_at));
            }
        }
    }
    latencies
}

async fn across_instances(rate: usize, seconds: usize) -> Option<[Vec<Duration>; 2]> {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("TEST_DATABASE_URL"),
        std::env::var("TEST_REDIS_URL"),
    ) else {
        return None;
    };
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let name = format!("tb_push_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&pg)
        .await
        .expect("connect to TEST_DATABASE_URL");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, query) = pg
        .split_once('?')
        .map_or((pg.as_str(), None), |(b, q)| (b, Some(q)));
    let prefix = base.rsplit_once('/').map_or(base, |(p, _)| p);
    let url = match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    };
    let env = [
        ("DATABASE_URL", url),
        ("REDIS_URL", redis),
        ("REDIS_KEY_PREFIX", format!("{name}:")),
    ];
    let figures = {
        let a = ServerProcess::spawn(&env);
        let b = ServerProcess::spawn(&env);
        let shared = across(a.addr, b.addr, rate, seconds, Path::Shared).await;
        let reference = across(a.addr, b.addr, rate, seconds, Path::PerSocket).await;
        [shared, reference]
    };
    let _ = admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await;
    forget_cache(&env[1].1, &env[2].1).await;
    Some(figures)
}

/// Deletes the servers' cache key under the run's Redis prefix, as the app itself would.
async fn forget_cache(redis_url: &str, prefix: &str) {
    use tax_budget::cache::{RedisCache, SnapshotCache};
    if let Ok((redis, _subscriber)) =
        tax_budget::redis::Redis::connect(redis_url, Duration::from_secs(2)).await
    {
        let _ = RedisCache::new(redis, prefix).invalidate().await;
    }
}

fn nofile_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(str::to_owned)
        })
        .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        .unwrap_or_else(|| "?".into())
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick and quiet.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_number("PUSH_SUBSCRIBERS", 2_000);
    let updates = env_number("PUSH_UPDATES", 5);
    let rate = env_number("PUSH_RATE", 50);
    let seconds = env_number("PUSH_SECONDS", 5);
    println!(
        "push: {n} subscribers, {updates} updates (open files allowed: {})",
        nofile_limit()
    );

    println!("\nfan-out: one update to {n} idle subscribers on one process (SQLite)");
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "path", "first ms", "p50 ms", "p99 ms", "max ms", "KiB/sock", "connect s", "CPU µs/push"
    );
    for path in [Path::Shared, Path::PerSocket] {
        let mut run = fan_out(n, updates, path).await;
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>12.1} {:>12.1}",
            path.name(),
            quantile(&mut run.latencies, 0.0),
            quantile(&mut run.latencies, 0.5),
            quantile(&mut run.latencies, 0.99),
            quantile(&mut run.latencies, 1.0),
            run.kib_per_socket,
            run.connect_secs,
            run.cpu_micros_per_push,
        );
    }

    println!(
        "\nacross instances: submit on A at {rate}/s for {seconds} s, 200 subscribers on B \
         (PostgreSQL + Redis)"
    );
    match across_instances(rate, seconds).await {
        None => println!("skipped: set TEST_DATABASE_URL and TEST_REDIS_URL"),
        Some([mut shared, mut reference]) => {
            println!(
                "{:<26} {:>10} {:>10} {:>10}",
                "path", "p50 ms", "p99 ms", "max ms"
            );
            for (path, samples) in [
                (Path::Shared, &mut shared),
                (Path::PerSocket, &mut reference),
            ] {
                println!(
                    "{:<26} {:>10.1} {:>10.1} {:>10.1}",
                    path.name(),
                    quantile(samples, 0.5),
                    quantile(samples, 0.99),
                    quantile(samples, 1.0),
                );
            }
        }
    }
}
