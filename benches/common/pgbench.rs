//! pgbench (PostgreSQL's own load generator) in a process of its own, running the transaction
//! one submission is, written by hand as plain statements: the reference the figures
//! for writes were taken with. Simple protocol, so every statement is parsed and planned, as a
//! hand-written server sending SQL text would have it.

use std::path::Path;
use std::time::Duration;

/// What one pgbench run did.
pub struct Figures {
    /// Transactions committed per second.
    pub rate: f64,
    /// Committed transactions' latencies.
    pub latencies: Vec<Duration>,
}

/// A time-ordered id, as the service's (UUIDv7's layout: milliseconds since the epoch, then
/// random bits), so that neither side pays for inserts at random places in its indexes.
const TIME_ORDERED_ID: &str =
    "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') \
     || substr(md5(random()::text), 1, 20))::uuid";

/// The script: a new voter, the submission, one allocation of `hundredths` to each of
/// `categories`, the outbox row; one commit.
pub fn submission_script(categories: &[i32], hundredths: i32) -> String {
    let allocations = categories
        .iter()
        .map(|id| format!("(':submission', {id}, {hundredths})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "BEGIN;\n\
         INSERT INTO voters (id, token_hash, created_at) \
         VALUES ({TIME_ORDERED_ID}, md5(random()::text), now()) RETURNING id AS voter \\gset\n\
         INSERT INTO submissions (id, voter_id, created_at, created_voter) \
         VALUES ({TIME_ORDERED_ID}, ':voter', now(), true) RETURNING id AS submission \\gset\n\
         INSERT INTO allocations (submission_id, category_id, hundredths) VALUES {allocations};\n\
         INSERT INTO aggregate_outbox (submission_id) VALUES (':submission');\n\
         END;\n"
    )
}

/// The same rows for `per_transaction` submissions in one transaction: one statement, each
/// table a multi-row insert (what group commit does, written by hand). The stretch
/// reference: how far batching alone can take the database, with no server in front.
pub fn batched_submission_script(
    categories: &[i32],
    hundredths: i32,
    per_transaction: usize,
) -> String {
    let categories = categories
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH v AS (INSERT INTO voters (id, token_hash, created_at) \
         SELECT {TIME_ORDERED_ID}, md5(random()::text), now() \
         FROM generate_series(1, {per_transaction}) RETURNING id), \
         s AS (INSERT INTO submissions (id, voter_id, created_at, created_voter) \
         SELECT {TIME_ORDERED_ID}, v.id, now(), true FROM v RETURNING id), \
         a AS (INSERT INTO allocations (submission_id, category_id, hundredths) \
         SELECT s.id, c, {hundredths} FROM s CROSS JOIN unnest(ARRAY[{categories}]) AS c), \
         o AS (INSERT INTO aggregate_outbox (submission_id) SELECT id FROM s) \
         SELECT count(*) FROM s;\n"
    )
}

/// Runs `script` against the database at `url` from `concurrency` connections on one thread
/// for `duration`, its transactions logged into `dir`; `None` when pgbench is not installed.
/// Panics when a transaction failed.
pub async fn run(
    url: &str,
    concurrency: usize,
    duration: Duration,
    script: &str,
    dir: &Path,
) -> Option<Figures> {
    let file = dir.join("submission.pgbench");
    std::fs::write(&file, script).expect("pgbench script");
    // A child process awaited, not waited for: the bench's runtime stays free.
    let output = tokio::process::Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=simple", "--jobs=1"])
        .arg(format!("--client={concurrency}"))
        .arg(format!("--time={}", duration.as_secs()))
        .args(["--log", "--log-prefix"])
        .arg(dir.join("latency"))
        .arg("--file")
        .arg(&file)
        .arg(url)
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
    };
    assert_eq!(
        field("number of failed transactions:"),
        Some("0"),
        "pgbench saw failures: {text}"
    );
    // `tps = 1823.41 (without initial connection time)`
    let rate = field("tps =")?.parse().ok()?;
    // One line per transaction: `client transaction latency_us script epoch_s epoch_us`.
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("latency") {
            continue;
        }
        let log = std::fs::read_to_string(entry.path()).ok()?;
        latencies.extend(log.lines().filter_map(|line| {
            let micros = line.split_whitespace().nth(2)?.parse().ok()?;
            Some(Duration::from_micros(micros))
        }));
    }
    Some(Figures { rate, latencies })
}
