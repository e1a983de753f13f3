//! Group commit: submissions that arrive together share a transaction, and each caller still
//! gets its own answer — a refused or replayed submission beside others changes nothing for
//! them — and nothing acknowledged is missing from the database.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::gql::{GqlResponse, SubmitData};
use crate::harness::{allocation, on_both_backends, spawn_app_with, Backend, Options, EVEN};
use tax_budget::voter_token::VoterToken;
use tax_budget::worker::BUSY_FOLD_ROWS;

on_both_backends!(
    a_burst_of_mixed_submissions_gets_one_answer_each,
    after_a_busy_fold_the_next_waits_out_the_fold_interval,
    a_backlog_beyond_one_fold_is_folded_without_resting
);

const UNEVEN: [f64; 10] = [20.0, 0.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0];

/// A window long enough that a burst from one test client lands in few batches even on a
/// busy machine (the default, 200 µs, is tuned for throughput, not for tests).
fn wide_window() -> Options {
    Options {
        tweak: |c| c.write_batches.window = Duration::from_millis(20),
        ..Options::default()
    }
}

/// What one call of the burst sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A new submission.
    Plain(usize),
    /// The same key and payload as every other `SameKey`.
    SameKey,
    /// The key `raced`, with `EVEN` (true) or `UNEVEN`.
    RacedKey(bool),
    /// Percentages that add up to 99.99.
    Invalid,
    /// A new submission of the voter who submitted before the burst, by its token.
    Mine(usize),
    /// That voter, with the key `SameKey` uses: a key of its own, not the anonymous callers'.
    MineSameKey,
    /// A well-formed voter token that no voter has.
    UnknownToken,
}

impl Call {
    fn send(self) -> (Value, Option<&'static str>) {
        match self {
            Call::Plain(i) | Call::Mine(i) => {
                // Every plain call a different split, so that the sums tell them apart.
                let mut values = EVEN;
                values[i % 10] += 0.01 * (i / 10 + 1) as f64;
                values[(i + 1) % 10] -= 0.01 * (i / 10 + 1) as f64;
                (allocation(values), None)
            }
            Call::SameKey | Call::MineSameKey => (allocation(UNEVEN), Some("burst-same")),
            Call::RacedKey(even) => (
                allocation(if even { EVEN } else { UNEVEN }),
                Some("burst-raced"),
            ),
            Call::Invalid => {
                let mut values = EVEN;
                values[0] -= 0.01;
                (allocation(values), None)
            }
            Call::UnknownToken => (allocation(EVEN), None),
        }
    }

    /// The voter token the call presents: `mine` is the voter's who submitted before the
    /// burst, `unknown` one that no voter has.
    fn token<'a>(self, mine: &'a str, unknown: &'a str) -> Option<&'a str> {
        match self {
            Call::Mine(_) | Call::MineSameKey => Some(mine),
            Call::UnknownToken => Some(unknown),
            _ => None,
        }
    }
}

async fn a_burst_of_mixed_submissions_gets_one_answer_each(backend: Backend) {
    let Some(app) = spawn_app_with(backend, wide_window()).await else {
        return;
    };
    let app = Arc::new(app);
    // A voter who submits again during the burst: the store looks its token up in the batch.
    let before = app.submit(EVEN, None).await;
    let mine: Arc<str> = before.voter_token.expect("a new voter's token").into();
    let unknown: Arc<str> = VoterToken::generate().as_str().into();
    let calls: Vec<Call> = (0..40)
        .map(Call::Plain)
        .chain((0..8).map(|_| Call::SameKey))
        .chain((0..6).map(|i| Call::RacedKey(i % 2 == 0)))
        .chain((0..6).map(|_| Call::Invalid))
        .chain((40..46).map(Call::Mine))
        .chain((0..4).map(|_| Call::MineSameKey))
        .chain((0..4).map(|_| Call::UnknownToken))
        .collect();
    // Interleaved, so that refused and replayed calls share batches with new ones.
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|i| (i * 7919) % calls.len());
    let tasks: Vec<_> = order
        .iter()
        .map(|&i| {
            let (app, call) = (app.clone(), calls[i]);
            let (mine, unknown) = (mine.clone(), unknown.clone());
            tokio::spawn(async move {
                let (allocations, key) = call.send();
                let token = call.token(&mine, &unknown);
                (call, app.submit_raw(allocations, key, token).await)
            })
        })
        .collect();
    let mut answers: Vec<(Call, GqlResponse<SubmitData>)> = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }

    let mut created = HashSet::new();
    let mut same_key_ids = HashSet::new();
    let mut my_new_ids = HashSet::from([before.submission.id.clone()]);
    let mut my_same_key_ids = HashSet::new();
    let mut raced: Vec<(bool, Result<String, String>)> = Vec::new();
    for (call, response) in answers {
        let outcome = if response.errors.is_empty() {
            Ok(response.expect_data().submit_allocation.submission.id)
        } else {
            Err(response.first_error().extensions.code.clone())
        };
        match call {
            Call::Plain(_) => {
                let id = outcome.expect("a new submission is stored");
                assert!(created.insert(id), "each caller gets its own submission");
            }
            Call::SameKey => {
                same_key_ids.insert(outcome.expect("a replay is answered"));
            }
            Call::RacedKey(even) => raced.push((even, outcome)),
            Call::Invalid => assert_eq!(outcome, Err("BAD_USER_INPUT".into())),
            Call::Mine(_) => {
                let id = outcome.expect("the voter's new submission is stored");
                assert!(my_new_ids.insert(id), "each caller gets its own submission");
            }
            Call::MineSameKey => {
                my_same_key_ids.insert(outcome.expect("the voter's replay is answered"));
            }
            Call::UnknownToken => assert_eq!(outcome, Err("UNAUTHENTICATED".into())),
        }
    }
    assert_eq!(created.len(), 40);
    assert_eq!(
        my_new_ids.len(),
        7,
        "the one before the burst and six in it"
    );
    assert_eq!(
        my_same_key_ids.len(),
        1,
        "every call of the voter with its key gets the first"
    );
    assert!(
        same_key_ids.is_disjoint(&my_same_key_ids),
        "the voter's key is its own, not the anonymous callers'"
    );
    assert_eq!(
        same_key_ids.len(),
        1,
        "every call with the key gets the first"
    );
    // One payload of the raced key is stored; its calls replay it, the others are refused.
    let winner = raced
        .iter()
        .find_map(|(even, outcome)| outcome.as_ref().ok().map(|id| (*even, id.clone())))
        .expect("one raced payload is stored");
    for (even, outcome) in &raced {
        if *even == winner.0 {
            assert_eq!(outcome.as_ref(), Ok(&winner.1));
        } else {
            assert_eq!(outcome.as_ref(), Err(&"IDEMPOTENCY_KEY_REUSED".to_owned()));
        }
    }

    // Every acknowledged submission is stored, and nothing else is; the voter's are its own.
    my_new_ids.extend(my_same_key_ids);
    let my_stored: HashSet<String> = app
        .query_texts(&format!(
            "SELECT CAST(id AS TEXT) AS text FROM submissions WHERE voter_id = \
             (SELECT voter_id FROM submissions WHERE id = '{}')",
            before.submission.id
        ))
        .await
        .into_iter()
        .collect();
    assert_eq!(my_stored, my_new_ids);
    created.extend(same_key_ids);
    created.insert(winner.1);
    created.extend(my_new_ids);
    let stored: HashSet<String> = app
        .query_texts("SELECT CAST(id AS TEXT) AS text FROM submissions")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, created);
    // Each anonymous submission stored created its voter, and a call whose key was taken
    // wrote nothing, not even the voter it would have created; the voter who came back and
    // the unknown token created none.
    let voters = app
        .query_texts("SELECT CAST(COUNT(*) AS TEXT) AS text FROM voters")
        .await;
    assert_eq!(voters, vec!["43".to_owned()]);
    app.assert_folded_exactly(50).await;
}

/// On PostgreSQL the rows a transaction wrote share its id (`xmin`): a burst of 100
/// submissions takes far fewer transactions than 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_written_in_few_transactions_on_postgres() {
    let Some(app) = spawn_app_with(Backend::Postgres, wide_window()).await else {
        return;
    };
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let (allocations, _) = Call::Plain(i).send();
                app.submit_raw(allocations, None, None).await
            })
        })
        .collect();
    for task in tasks {
        let response = task.await.expect("task");
        assert!(response.errors.is_empty(), "{:?}", response.errors);
    }
    let transactions = app
        .query_texts("SELECT COUNT(DISTINCT xmin::TEXT)::TEXT AS text FROM submissions")
        .await;
    let transactions: usize = transactions[0].parse().expect("a count");
    assert!(
        transactions <= 25,
        "100 submissions took {transactions} transactions"
    );
    app.assert_folded_exactly(100).await;
}

/// The fold interval of the pacing test: long enough that the check below has a second of
/// slack for the busy fold itself and for noticing it.
const FOLD_INTERVAL: Duration = Duration::from_secs(2);

/// Fold pacing (`--worker-fold-interval-ms`): after a fold of at least `BUSY_FOLD_ROWS` rows,
/// the worker folds again no sooner than the interval after that fold began, even when a
/// submission nudges it meanwhile; and it does fold then, without a poll (the tests' workers
/// poll once an hour). The busy fold here is the worker's first, so no rate of writes is known
/// that would start the next one sooner (`worker::rest_before_next_fold`).
async fn after_a_busy_fold_the_next_waits_out_the_fold_interval(backend: Backend) {
    let options = Options {
        tweak: |c| c.worker_fold_interval = Some(FOLD_INTERVAL),
        ..Options::without_worker()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    // A busy fold's worth waits in the outbox, then a worker starts and folds it in one go.
    let busy = BUSY_FOLD_ROWS as i64 + 2;
    for _ in 0..busy {
        let submitted = app.submit(EVEN, None).await;
        assert!(!submitted.submission.id.is_empty());
    }
    let _worker = app.app.spawn_worker();
    app.wait_folded(busy).await;
    let busy_fold_seen = Instant::now();

    app.submit(EVEN, None).await;
    app.wait_folded(busy + 1).await;
    let waited = busy_fold_seen.elapsed();
    assert!(
        waited >= FOLD_INTERVAL / 2,
        "the fold after a busy one came {waited:?} after it, inside the {FOLD_INTERVAL:?} interval"
    );
    app.assert_folded_exactly(busy + 1).await;
}

/// A full fold (as many rows as `--worker-batch-size`) left rows behind, so the worker goes
/// on at once, whatever the fold interval: pacing is for a worker that keeps up, and resting
/// after a full fold would cap it at one batch per interval. Here the interval is longer than
/// the tests' deadline, so any rest between the folds of the backlog fails the test.
async fn a_backlog_beyond_one_fold_is_folded_without_resting(backend: Backend) {
    const BATCH: i64 = 20;
    let options = Options {
        tweak: |c| {
            c.worker_fold_interval = Some(Duration::from_secs(600));
            c.worker_batch_size = BATCH;
        },
        ..Options::without_worker()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    // Three full folds and a partial one wait in the outbox before a worker starts.
    let backlog = 3 * BATCH + BATCH / 2;
    for _ in 0..backlog {
        let submitted = app.submit(EVEN, None).await;
        assert!(!submitted.submission.id.is_empty());
    }
    let _worker = app.app.spawn_worker();
    app.wait_folded(backlog).await;
    app.assert_folded_exactly(backlog).await;
}
