//! `tax-budget seed` as a process against a running deployment: the data it writes is varied,
//! every split adds up to exactly 100 %, `verify` finds the summary exact, the servers show it
//! at once, its output in a pipe is plain lines, and bad flags are refused before anything is
//! written.

use std::process::{Command, Output, Stdio};

use tax_budget::config::{DatabaseUrl, SqliteSync};
use tax_budget::domain::Snapshot;

use crate::harness::{eventually, on_both_backends, spawn_app, Backend, TestApp, TestBackend};
use crate::operator::stats_json;
use crate::processes::Process;

/// Runs `tax-budget` to its end with stdout and stderr apart, byte for byte, as a script that
/// pipes it sees them (neither is a terminal).
pub(crate) async fn run_piped(args: &[&str], env: &[(&'static str, String)]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tax-budget"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("RUST_LOG", "info")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("tax-budget runs")
    })
    .await
    .expect("process task")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// One number, counted by SQL behind the app's back.
async fn count(app: &TestApp, sql: &str) -> i64 {
    let texts = app.query_texts(sql).await;
    texts
        .first()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a count from {sql}: {texts:?}"))
}

async fn seeded_data_is_varied_exact_and_shown_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let seeded = run_piped(
        &[
            "seed",
            "--submissions",
            "2000",
            "--voters",
            "500",
            "--batch-size",
            "300",
        ],
        &app.backend.env(),
    )
    .await;
    let (stdout, stderr) = (text(&seeded.stdout), text(&seeded.stderr));
    assert!(seeded.status.success(), "{stdout}\n{stderr}");

    // In a pipe: plain lines, no bar redrawn with carriage returns, no colours.
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains('\r') && !output.contains('\u{1b}'),
            "{output:?}"
        );
    }
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("seed: ") && l.contains("/2000 submissions ("))
        .collect();
    assert!(progress.len() >= 3, "{stderr}");
    assert!(
        progress[progress.len() - 1].starts_with("seed: 2000/2000 submissions (100%)"),
        "{stderr}"
    );
    assert!(stderr.contains("seed: done in "), "{stderr}");
    assert!(
        stdout.starts_with("seeded 2000 submissions from 500 voters (--seed-value 1) in "),
        "{stdout}"
    );
    assert!(stdout.contains("average split: Healthcare "), "{stdout}");
    // The test databases' role is a superuser: PostgreSQL checks a batch's references once.
    let checks = match backend {
        Backend::Postgres => "references checked once per batch, foreign-key triggers skipped",
        Backend::Sqlite => "references checked per row by foreign keys",
    };
    assert!(stdout.contains(checks), "{stdout}");

    // Exact: the summary equals SQL over every submission.
    let mut verify = Process::spawn(&["verify"], &app.backend.env());
    let status = verify.wait_exit().await;
    let line = verify.wait_for_line("consistent: ").await;
    assert_eq!(status.code(), Some(0), "{line}");
    assert!(
        line.contains("live SQL over 2000 folded submissions"),
        "{line}"
    );
    let summary = app.assert_folded_exactly(2000).await;

    let stats = stats_json(&app.backend).await;
    assert_eq!(stats["submissions"], 2000, "{stats}");
    assert_eq!(stats["voters"], 500, "{stats}");
    assert_eq!(stats["outbox"]["depth"], 0, "{stats}");
    assert_eq!(stats["summary"]["total_submissions"], 2000, "{stats}");
    assert_eq!(stats["summary"]["version"], summary.version, "{stats}");
    assert_eq!(stats["summary"]["stale"], false, "{stats}");
    // With Redis the seed cached the summary; without, each server's cache is its own.
    let tier = match backend {
        Backend::Postgres => "CACHE",
        Backend::Sqlite => "SUMMARY",
    };
    assert_eq!(stats["read_tier"], tier, "{stats}");

    // The running server shows it without anyone submitting.
    let shown = eventually("the server shows the seeded submissions", || async {
        let read = app.aggregates().await;
        (read.total_submissions == 2000).then_some(read)
    })
    .await;
    assert_eq!(shown.version, summary.version);

    // Every split adds up to exactly 100 % over the 10 categories.
    let wrong = count(
        &app,
        "SELECT CAST(COUNT(*) AS TEXT) AS text FROM (SELECT submission_id FROM allocations \
         GROUP BY submission_id HAVING SUM(hundredths) <> 10000 OR COUNT(*) <> 10) t",
    )
    .await;
    assert_eq!(wrong, 0);
    // Varied, not one split repeated: pairs of the first two categories' shares.
    let pairs = count(
        &app,
        "SELECT CAST(COUNT(*) AS TEXT) AS text FROM (SELECT DISTINCT a.hundredths, b.hundredths \
         FROM allocations a JOIN allocations b ON b.submission_id = a.submission_id \
         WHERE a.category_id = 1 AND b.category_id = 2) t",
    )
    .await;
    assert!(pairs > 500, "{pairs} distinct pairs in 2000 submissions");
    // Every voter has a submission; together they have all of them.
    let idle = count(
        &app,
        "SELECT CAST(COUNT(*) AS TEXT) AS text FROM voters v \
         WHERE NOT EXISTS (SELECT 1 FROM submissions s WHERE s.voter_id = v.id)",
    )
    .await;
    assert_eq!(idle, 0);
    let submitting = count(
        &app,
        "SELECT CAST(COUNT(DISTINCT voter_id) AS TEXT) AS text FROM submissions",
    )
    .await;
    assert_eq!(submitting, 500);
}

on_both_backends!(seeded_data_is_varied_exact_and_shown_at_once);

/// The summary of a seeded SQLite database, read directly.
async fn seeded_summary(backend: &TestBackend, seed_value: &str) -> Snapshot {
    let seeded = run_piped(
        &[
            "seed",
            "--submissions",
            "300",
            "--voters",
            "100",
            "--seed-value",
            seed_value,
        ],
        &backend.env(),
    )
    .await;
    assert!(seeded.status.success(), "{}", text(&seeded.stderr));
    let store = tax_budget::store::connect(&backend.db.url, 1, SqliteSync::Full, None)
        .await
        .expect("connect");
    store
        .summary_snapshot()
        .await
        .expect("summary read")
        .expect("a fresh summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_value_seeds_the_same_splits() {
    let mut summaries = Vec::new();
    for seed_value in ["7", "7", "8"] {
        let backend = TestBackend::create(Backend::Sqlite).await.expect("sqlite");
        summaries.push(seeded_summary(&backend, seed_value).await);
    }
    assert_eq!(summaries[0].total_submissions, 300);
    assert_eq!(summaries[0].totals, summaries[1].totals);
    assert_ne!(summaries[0].totals, summaries[2].totals);
}

/// `url` with another user and password (the test server may want one).
fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

/// A role that may not skip triggers: the seed falls back to the foreign keys' per-row checks,
/// says so, and is as exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_to_skip_triggers_the_seed_checks_per_row() {
    let Some(backend) = TestBackend::create(Backend::Postgres).await else {
        return;
    };
    let migrated = run_piped(&["migrate"], &backend.env()).await;
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let DatabaseUrl::Postgres(url) = &backend.db.url else {
        unreachable!("a PostgreSQL backend");
    };
    let role = format!("tb_seed_{}", uuid::Uuid::new_v4().simple());
    backend
        .execute_sql(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD 'seed-test'; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}; \
             GRANT CREATE ON SCHEMA public TO {role}"
        ))
        .await;
    let mut env = backend.env();
    for (name, value) in &mut env {
        if *name == "DATABASE_URL" {
            *value = with_user(url, &role, "seed-test");
        }
    }
    let seeded = run_piped(
        &[
            "seed",
            "--submissions",
            "600",
            "--voters",
            "200",
            "--batch-size",
            "100",
        ],
        &env,
    )
    .await;
    let (stdout, stderr) = (text(&seeded.stdout), text(&seeded.stderr));
    let status = seeded.status;
    let verified = run_piped(&["verify"], &backend.env()).await;
    backend
        .execute_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await;
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "references checked per row by foreign keys (slower): cannot skip the triggers: \
             permission denied"
        ),
        "{stdout}"
    );
    assert!(
        stderr.contains("checking references per row (slower)"),
        "{stderr}"
    );
    let verdict = text(&verified.stdout) + &text(&verified.stderr);
    assert_eq!(verified.status.code(), Some(0), "{verdict}");
    assert!(
        verdict.contains("live SQL over 600 folded submissions"),
        "{verdict}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_refused_before_anything_is_written() {
    let backend = TestBackend::create(Backend::Sqlite).await.expect("sqlite");
    let cases: [(&[&str], &str); 3] = [
        (&["--submissions", "0"], "--submissions must be at least 1"),
        (
            &["--submissions", "10", "--voters", "11"],
            "--voters 11 is more than --submissions 10: every voter has at least one submission",
        ),
        (
            &["--submissions", "10", "--voters", "0"],
            "--voters must be at least 1",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["seed"];
        args.extend_from_slice(flags);
        let refused = run_piped(&args, &backend.env()).await;
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("seed refused"), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        // Not even the SQLite file: the flags are checked before connecting.
        let tax_budget::config::DatabaseUrl::Sqlite(path) = &backend.db.url else {
            unreachable!("a SQLite backend");
        };
        assert!(!path.exists(), "{} was created", path.display());
    }
}
