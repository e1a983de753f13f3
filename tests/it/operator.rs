//! The operator commands as `tax-budget` processes against a running deployment: `verify`
//! passes on a consistent database and shows the diff when the summary or the cache is wrong;
//! `cache reset` empties the cache; `stats` counts what is stored and names the tier a read
//! would use; a summary left stale by a dead rebuild is rebuilt when a process with a worker
//! starts.

use std::time::Duration;

use serde_json::Value;
use tax_budget::domain::Snapshot;
use tax_budget::store::FoldBatch;
use tax_budget::verify::{self, Report};

use crate::harness::gql::AggregateSource;
use crate::harness::{
    eventually, on_both_backends, spawn_app, spawn_app_with, Backend, Options, TestApp,
    TestBackend, EVEN,
};
use crate::processes::Process;
use crate::seed::{run_piped, text};

/// Runs a `tax-budget` command to its end: its exit code, and the process to read its output.
async fn run(args: &[&str], app: &TestApp) -> (Option<i32>, Process) {
    let mut process = Process::spawn(args, &app.backend.env());
    let status = process.wait_exit().await;
    (status.code(), process)
}

/// `verify` run in this process, on the app's own store and cache (which, without Redis, no
/// `verify` process can see).
async fn verify_in_process(app: &TestApp) -> Report {
    verify::verify(app.app.store.as_ref(), Some(app.app.cache.as_ref()))
        .await
        .expect("verify reads")
}

async fn summary(app: &TestApp) -> Snapshot {
    app.app
        .store
        .summary_snapshot()
        .await
        .expect("summary read")
        .expect("a fresh summary")
}

async fn verify_passes_when_consistent_and_shows_a_tampered_summary(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for _ in 0..3 {
        app.submit(EVEN, None).await;
    }
    app.wait_folded(3).await;

    let (code, verify) = run(&["verify"], &app).await;
    let line = verify.wait_for_line("consistent: ").await;
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.starts_with("consistent: summary version")
            && line.contains("live SQL over 3 folded submissions (0 not yet folded)"),
        "{line}"
    );

    app.execute_sql(
        "UPDATE aggregate_totals SET sum_hundredths = sum_hundredths + 1 WHERE category_id = 1",
    )
    .await;
    let (code, verify) = run(&["verify"], &app).await;
    verify.wait_for_line("inconsistent: summary version").await;
    // 3 submissions × 10 % = 3000 hundredths, and the one added behind the service's back.
    let diff = verify
        .wait_for_line("category 1 sum of hundredths: summary 3001")
        .await;
    assert_eq!(code, Some(1), "{diff}");
    assert!(
        diff.ends_with("summary 3001, live SQL over folded submissions 3000 (summary +1)"),
        "{diff}"
    );

    // A rebuild repairs it.
    app.app.rebuild_aggregates().await.expect("rebuild");
    let (code, verify) = run(&["verify"], &app).await;
    let line = verify.wait_for_line("consistent: ").await;
    assert_eq!(code, Some(0), "{line}");

    // The distributions and trend buckets are checked the same way.
    app.execute_sql(
        "UPDATE aggregate_distribution SET submissions = submissions + 1 WHERE category_id = 2;
         UPDATE aggregate_trend SET submissions = submissions - 1 WHERE resolution = 'hour';",
    )
    .await;
    let (code, verify) = run(&["verify"], &app).await;
    let line = verify.wait_for_line("inconsistent: summary version").await;
    assert!(
        line.contains("distribution and trend numbers vs live SQL"),
        "{line}"
    );
    let count = verify
        .wait_for_line("category 2 submissions at 10 %: summary 4")
        .await;
    assert!(
        count.ends_with("live SQL over folded submissions 3 (summary +1)"),
        "{count}"
    );
    let bucket = verify.wait_for_line("hour bucket ").await;
    assert!(
        bucket.ends_with("submissions: summary 2, live SQL over folded submissions 3 (summary -1)"),
        "{bucket}"
    );
    assert_eq!(code, Some(1));
    app.app.rebuild_aggregates().await.expect("rebuild");
    let (code, verify) = run(&["verify"], &app).await;
    let line = verify.wait_for_line("consistent: ").await;
    assert_eq!(code, Some(0), "{line}");
}

on_both_backends!(verify_passes_when_consistent_and_shows_a_tampered_summary);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_without_a_database_gives_no_verdict() {
    let missing = std::env::temp_dir().join(format!("tax-budget-missing-{}", uuid::Uuid::new_v4()));
    let env = [(
        "DATABASE_URL",
        missing.join("db.sqlite3").display().to_string(),
    )];
    let mut verify = Process::spawn(&["verify"], &env);
    let status = verify.wait_exit().await;
    let line = verify.wait_for_line("verify: no verdict").await;
    assert_eq!(status.code(), Some(2), "{line}");
    assert!(line.contains("no SQLite database at"), "{line}");
    assert!(!missing.exists(), "verify created nothing");
}

async fn verify_compares_the_cache_with_the_summary_at_its_version(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.submit(EVEN, None).await;
    app.submit(EVEN, None).await;
    app.wait_folded(2).await;
    let summary = summary(&app).await;
    let version = summary.version;

    // Other sums under the summary's version: no fold or rebuild ever writes that.
    let forged = Snapshot {
        total_submissions: 3,
        ..summary.clone()
    };
    app.app.cache.invalidate().await.expect("invalidate");
    assert!(app.app.cache.put_if_newer(&forged).await.expect("put"));
    let expected = format!(
        "cache vs summary at version {version}, total submissions: cache 3, summary 2 (cache +1)"
    );
    let report = verify_in_process(&app).await;
    assert_eq!(
        report.problems(),
        std::slice::from_ref(&expected),
        "{report}"
    );

    if backend == Backend::Postgres {
        // The same through a process, which sees the Redis cache.
        let (code, verify) = run(&["verify"], &app).await;
        verify.wait_for_line("inconsistent: ").await;
        let diff = verify.wait_for_line(&expected).await;
        assert_eq!(code, Some(1), "{diff}");

        let (code, reset) = run(&["cache", "reset"], &app).await;
        let line = reset.wait_for_line("cache reset: ").await;
        assert_eq!(code, Some(0), "{line}");
        let (code, verify) = run(&["verify"], &app).await;
        let line = verify.wait_for_line("consistent: ").await;
        assert_eq!(code, Some(0), "{line}");
        assert!(
            line.ends_with("; cache empty (the next read fills it)"),
            "{line}"
        );
    } else {
        app.app.cache.invalidate().await.expect("invalidate");
        let report = verify_in_process(&app).await;
        assert!(report.is_consistent(), "{report}");
    }

    // An older snapshot is only behind: repairable, not an inconsistency. (On SQLite the
    // app's summary watch may repair it before verify looks; then it agrees.)
    let older = Snapshot {
        version: version - 1,
        total_submissions: 1,
        ..summary
    };
    assert!(app.app.cache.put_if_newer(&older).await.expect("put"));
    let report = verify_in_process(&app).await;
    let line = report.to_string();
    assert!(report.is_consistent(), "{line}");
    assert!(
        line.contains(&format!("cache behind at version {}", version - 1))
            || line.contains(&format!("cache = summary at version {version}")),
        "{line}"
    );
}

on_both_backends!(verify_compares_the_cache_with_the_summary_at_its_version);

async fn cache_reset_makes_the_next_read_come_from_the_summary(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    app.submit(EVEN, None).await;
    let worker = app.app.spawn_worker();
    app.wait_folded(1).await;
    worker.abort();
    let version = summary(&app).await.version;
    // The worker writes the cache after its fold commits, so after the fold is seen: wait for
    // that write (or a read's, which fills an empty cache), so that none lands after the reset.
    eventually("the cache holds the folded version", || async {
        app.aggregates().await;
        let cached = app.app.cache.get().await.expect("cache read");
        (cached.map(|snapshot| snapshot.version) == Some(version)).then_some(())
    })
    .await;

    let (code, reset) = run(&["cache", "reset"], &app).await;
    let line = reset.wait_for_line("cache reset: ").await;
    assert_eq!(code, Some(0), "{line}");
    match backend {
        Backend::Postgres => {
            assert!(
                line.contains(&format!("forgot the cached snapshot (version {version})")),
                "{line}"
            );
            assert_eq!(app.app.cache.get().await.expect("cache read"), None);
            let next = app.aggregates().await;
            assert_eq!(next.source, AggregateSource::Summary);
            assert_eq!(next.version, version);
            // That read filled the cache again.
            assert_eq!(app.aggregates().await.source, AggregateSource::Cache);
        }
        // The in-process cache lives in the server, out of the command's reach.
        Backend::Sqlite => assert!(line.contains("nothing to do"), "{line}"),
    }
}

on_both_backends!(cache_reset_makes_the_next_read_come_from_the_summary);

/// Leaves the summary as a rebuild that died between its two steps does, then starts
/// `command` (which runs a worker) and checks that it finishes the rebuild.
async fn a_stale_summary_is_rebuilt_when(backend: Backend, command: &[&str]) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    for _ in 0..3 {
        app.submit(EVEN, None).await;
    }
    let folded = app
        .app
        .store
        .fold_outbox(FoldBatch {
            max_rows: 100,
            pause_before_commit: Duration::ZERO,
        })
        .await
        .expect("fold")
        .expect("a batch");
    assert_eq!(folded.snapshot.total_submissions, 3);
    assert_eq!(folded.rows, 3);

    app.app.store.mark_summary_stale().await.expect("stale");
    // The app's start-up resync (once its Redis subscription takes) may have read the summary
    // before it was marked stale and write that copy into the cache after it was emptied.
    let live = app.read_past_the_cache(AggregateSource::Live).await;
    assert_eq!(live.total_submissions, 3);
    let (code, verify) = run(&["verify"], &app).await;
    let stale = verify.wait_for_line("summary is marked stale").await;
    assert_eq!(code, Some(1), "{stale}");

    let mut env = app.backend.env();
    env.push(("BIND", "127.0.0.1:0".into()));
    let started = Process::spawn(command, &env);
    started
        .wait_for_line("the summary is marked stale (a rebuild died or is running)")
        .await;
    started.wait_for_line("interrupted rebuild finished").await;
    started.wait_for_line("outbox worker started").await;

    let after = eventually("readers back on the summary", || async {
        let read = app.aggregates().await;
        (read.source != AggregateSource::Live).then_some(read)
    })
    .await;
    assert_eq!(after.total_submissions, 3);
    assert!(after.version > live.version, "{after:?} after {live:?}");
    let (code, verify) = run(&["verify"], &app).await;
    let line = verify.wait_for_line("consistent: ").await;
    assert_eq!(code, Some(0), "{line}");
}

async fn a_stale_summary_is_rebuilt_when_a_worker_starts(backend: Backend) {
    a_stale_summary_is_rebuilt_when(backend, &["worker"]).await;
}

on_both_backends!(a_stale_summary_is_rebuilt_when_a_worker_starts);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_summary_is_rebuilt_when_serve_starts_with_its_worker() {
    a_stale_summary_is_rebuilt_when(Backend::Sqlite, &["serve"]).await;
}

/// `tax-budget stats --json` on `backend`: the one line of stdout that is JSON (logs go to
/// stderr, which the process's lines include too).
pub(crate) async fn stats_json(backend: &TestBackend) -> Value {
    let mut stats = Process::spawn(&["stats", "--json"], &backend.env());
    let status = stats.wait_exit().await;
    let line = stats.wait_for_line("{\"submissions\":").await;
    assert_eq!(status.code(), Some(0), "{line}");
    serde_json::from_str(&line).expect("stats --json prints JSON")
}

async fn stats_on_an_empty_database(backend: Backend) {
    let Some(backend) = TestBackend::create(backend).await else {
        return;
    };
    let mut migrate = Process::spawn(&["migrate"], &backend.env());
    assert!(migrate.wait_exit().await.success());

    let stats = stats_json(&backend).await;
    assert_eq!(stats["submissions"], 0, "{stats}");
    assert_eq!(stats["voters"], 0, "{stats}");
    assert_eq!(stats["outbox"]["depth"], 0, "{stats}");
    assert_eq!(stats["outbox"]["age_seconds"], Value::Null, "{stats}");
    assert_eq!(stats["summary"], Value::Null, "{stats}");
    let cache = if backend.redis.is_some() {
        "empty"
    } else {
        "in_process"
    };
    assert_eq!(stats["cache"]["state"], cache, "{stats}");
    assert_eq!(stats["read_tier"], "LIVE", "{stats}");

    let mut table = Process::spawn(&["stats"], &backend.env());
    let status = table.wait_exit().await;
    let line = table.wait_for_line("read tier").await;
    assert_eq!(status.code(), Some(0), "{line}");
    assert!(line.starts_with("read tier     LIVE"), "{line}");
    let line = table.wait_for_line("summary       ").await;
    assert_eq!(line, "summary       none yet (created by the first fold)");
}

on_both_backends!(stats_on_an_empty_database);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_without_a_database_fails_and_creates_none() {
    let missing = std::env::temp_dir().join(format!("tax-budget-missing-{}", uuid::Uuid::new_v4()));
    let env = [(
        "DATABASE_URL",
        missing.join("db.sqlite3").display().to_string(),
    )];
    let mut stats = Process::spawn(&["stats"], &env);
    let status = stats.wait_exit().await;
    let line = stats.wait_for_line("no SQLite database at").await;
    assert_eq!(status.code(), Some(1), "{line}");
    assert!(!missing.exists(), "stats created nothing");
}

/// Submissions wait in the outbox (no worker), then a fold that publishes nothing, then a
/// summary marked stale: the outbox, the versions and the read tier follow.
async fn stats_follows_the_outbox_the_summary_and_the_cache(backend: Backend) {
    let Some(app) = spawn_app_with(backend, Options::without_worker()).await else {
        return;
    };
    let redis = app.backend.redis.is_some();
    for _ in 0..3 {
        app.submit(EVEN, None).await;
    }
    let stats = stats_json(&app.backend).await;
    assert_eq!(stats["submissions"], 3, "{stats}");
    // Each anonymous submission created its voter.
    assert_eq!(stats["voters"], 3, "{stats}");
    assert_eq!(stats["outbox"]["depth"], 3, "{stats}");
    let age = stats["outbox"]["age_seconds"].as_f64().expect("an age");
    assert!((0.0..60.0).contains(&age), "{stats}");
    assert_eq!(stats["summary"], Value::Null, "{stats}");
    // Before the first fold a server caches its live answers (version 0) and serves them.
    let before_fold = if redis { "CACHE" } else { "LIVE" };
    assert_eq!(stats["read_tier"], before_fold, "{stats}");

    let folded = app
        .app
        .store
        .fold_outbox(FoldBatch {
            max_rows: 100,
            pause_before_commit: Duration::ZERO,
        })
        .await
        .expect("fold")
        .expect("a batch")
        .snapshot;
    let stats = stats_json(&app.backend).await;
    assert_eq!(stats["outbox"]["depth"], 0, "{stats}");
    assert_eq!(stats["outbox"]["age_seconds"], Value::Null, "{stats}");
    assert_eq!(stats["summary"]["version"], folded.version, "{stats}");
    assert_eq!(stats["summary"]["total_submissions"], 3, "{stats}");
    assert_eq!(stats["summary"]["stale"], false, "{stats}");
    // The fold was not published: the cache still holds the version-0 answer, of no summary's
    // generation, so readers go to the summary.
    if redis {
        assert_eq!(stats["cache"]["state"], "holds", "{stats}");
        assert_eq!(stats["cache"]["version"], 0, "{stats}");
        assert_eq!(stats["cache"]["same_generation"], false, "{stats}");
    }
    assert_eq!(stats["read_tier"], "SUMMARY", "{stats}");

    // Published: the cache holds the summary's version, and answers.
    app.app.cache.put_if_newer(&folded).await.expect("put");
    if redis {
        let stats = stats_json(&app.backend).await;
        assert_eq!(stats["cache"]["version"], folded.version, "{stats}");
        assert_eq!(stats["cache"]["same_generation"], true, "{stats}");
        assert_eq!(stats["read_tier"], "CACHE", "{stats}");
    }

    app.app.store.mark_summary_stale().await.expect("stale");
    app.app.cache.invalidate().await.expect("invalidate");
    let stats = stats_json(&app.backend).await;
    assert_eq!(stats["summary"]["stale"], true, "{stats}");
    assert_eq!(stats["read_tier"], "LIVE", "{stats}");
}

on_both_backends!(stats_follows_the_outbox_the_summary_and_the_cache);

/// A long command in a pipe says what it does, and when it is done, in plain lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_aggregates_in_a_pipe_prints_plain_progress_lines() {
    let app = spawn_app(Backend::Sqlite).await.expect("sqlite");
    app.submit(EVEN, None).await;
    app.submit(EVEN, None).await;
    app.wait_folded(2).await;

    let rebuilt = run_piped(&["rebuild-aggregates"], &app.backend.env()).await;
    let (stdout, stderr) = (text(&rebuilt.stdout), text(&rebuilt.stderr));
    assert!(rebuilt.status.success(), "{stdout}\n{stderr}");
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains('\r') && !output.contains('\u{1b}'),
            "{output:?}"
        );
    }
    assert!(
        stderr.contains("\nrebuild-aggregates: recomputing the summary over every submission\n"),
        "{stderr}"
    );
    // One line per step, with the estimated share done and, after the first, an ETA.
    assert!(
        stderr.contains("\nrebuild-aggregates: step 1/5: sums per category (about 0% done after "),
        "{stderr}"
    );
    let minutes = stderr
        .lines()
        .find(|l| {
            l.starts_with(
                "rebuild-aggregates: step 3/5: trend minute buckets (about 40% done after ",
            )
        })
        .unwrap_or_else(|| panic!("a line for step 3: {stderr}"));
    assert!(
        minutes.contains(" s, ETA ") && minutes.ends_with(" s)"),
        "{minutes}"
    );
    assert!(
        stderr.contains("\nrebuild-aggregates: step 5/5: counting submissions (about 90% done"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nrebuild-aggregates: done in "),
        "{stderr}"
    );
    // Only the result on stdout, for scripts.
    assert!(
        stdout.starts_with("summary rebuilt: version ")
            && stdout.contains(", 2 submissions in ")
            && stdout.lines().count() == 1,
        "{stdout}"
    );
}
