//! `tax-budget seed`: demo data for a demo or a benchmark, written fast and made visible at
//! once.
//!
//! Submissions are written in large batches (one statement each on PostgreSQL), several at a
//! time, as already folded: no outbox rows, so no worker has to fold a million of them one
//! batch at a time. One `rebuild-aggregates` afterwards sums them all, exact by construction
//! (the proven rebuild), and caches and publishes the result, so every server shows it.
//!
//! On PostgreSQL the time of a batch was mostly its foreign-key triggers (21 calls per
//! submission); where the role may, each batch checks its references once instead and skips
//! them (see [`ReferenceChecks::PerBatch`]), and says so; otherwise it falls back to the
//! triggers, slower but as exact.
//!
//! The summary is marked stale first: readers then use live SQL, which counts what is written
//! so far, instead of a summary that lacks it; and if the seed dies half-way, the stale mark is
//! what makes the next starting worker (or `rebuild-aggregates`) count what was written.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, TryStreamExt};
use rand::Rng;
use uuid::Uuid;

use super::progress::{per_second, Progress, Spinner};
use super::splits::{self, PersonaId, SplitGenerator};
use crate::domain::{Category, CategoryId, Snapshot};
use crate::publisher::SnapshotPublisher;
use crate::store::{ReferenceChecks, SeedBatch, SeedSubmission, Store, StoreError};

/// More would hold gigabytes of voters in memory for no demo or benchmark we run.
pub const MAX_SUBMISSIONS: u64 = 100_000_000;
/// Seeded submissions are dated over this many days up to now.
const HISTORY_DAYS: i64 = 30;

/// The flags of `seed`.
#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// How many submissions to write.
    #[arg(long)]
    pub submissions: u64,

    /// How many voters they come from, each with at least one; the default is one each.
    #[arg(long)]
    pub voters: Option<u64>,

    /// Seed of the random splits: the same value (and counts) gives the same splits.
    #[arg(long, default_value_t = 1)]
    pub seed_value: u64,

    /// Submissions per batch (one statement on PostgreSQL, one transaction on SQLite).
    #[arg(long, default_value_t = 5000)]
    pub batch_size: usize,

    /// Batches written at once, each on its own connection.
    #[arg(long, default_value_t = 2)]
    pub parallel: usize,
}

/// Why `seed` refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("--submissions must be at least 1")]
    NoSubmissions,
    #[error("--submissions {0} is more than the {MAX_SUBMISSIONS} seed writes")]
    TooManySubmissions(u64),
    #[error("--voters must be at least 1")]
    NoVoters,
    #[error(
        "--voters {voters} is more than --submissions {submissions}: every voter has at least \
         one submission"
    )]
    MoreVotersThanSubmissions { voters: u64, submissions: u64 },
    #[error("--batch-size and --parallel must be at least 1")]
    NoBatches,
    #[error("no category is open for allocations")]
    NoCategories,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checked settings of one seed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPlan {
    pub submissions: u64,
    pub voters: u64,
    pub seed_value: u64,
    pub batch_size: usize,
    pub parallel: usize,
}

impl SeedPlan {
    /// Refuses what cannot be seeded before anything is touched.
    pub fn new(args: &SeedArgs) -> Result<SeedPlan, SeedError> {
        let submissions = args.submissions;
        let voters = args.voters.unwrap_or(submissions);
        if submissions == 0 {
            return Err(SeedError::NoSubmissions);
        }
        if submissions > MAX_SUBMISSIONS {
            return Err(SeedError::TooManySubmissions(submissions));
        }
        if voters == 0 {
            return Err(SeedError::NoVoters);
        }
        if voters > submissions {
            return Err(SeedError::MoreVotersThanSubmissions {
                voters,
                submissions,
            });
        }
        if args.batch_size == 0 || args.parallel == 0 {
            return Err(SeedError::NoBatches);
        }
        Ok(SeedPlan {
            submissions,
            voters,
            seed_value: args.seed_value,
            batch_size: args.batch_size,
            parallel: args.parallel,
        })
    }

    /// The batches, in order: first those whose submissions create the voters (one each),
    /// then those of the voters' further submissions. A batch never mixes the two, so that
    /// every voter is committed before a later batch names it (batches run concurrently).
    fn batches(&self) -> (Vec<Range<u64>>, Vec<Range<u64>>) {
        let step = self.batch_size as u64;
        let split = |range: Range<u64>| -> Vec<Range<u64>> {
            let mut out = Vec::new();
            let mut start = range.start;
            while start < range.end {
                let end = (start + step).min(range.end);
                out.push(start..end);
                start = end;
            }
            out
        };
        (split(0..self.voters), split(self.voters..self.submissions))
    }
}

/// What a seed run did.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub plan: SeedPlan,
    pub writing: Duration,
    /// Refreshing the planner's statistics and rebuilding the summary.
    pub rebuilding: Duration,
    /// How the batches' references were checked.
    pub checks: ReferenceChecks,
    /// The rebuilt summary, as cached and published.
    pub snapshot: Snapshot,
    /// The active categories, in display order, for the averages.
    pub categories: Vec<Category>,
}

impl std::fmt::Display for SeedReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plan = &self.plan;
        let total = self.writing + self.rebuilding;
        writeln!(
            f,
            "seeded {} submissions from {} voters (--seed-value {}) in {:.2} s: {:.0} \
             submissions/s written ({:.2} s), summary rebuilt in {:.2} s",
            plan.submissions,
            plan.voters,
            plan.seed_value,
            total.as_secs_f64(),
            per_second(plan.submissions, self.writing),
            self.writing.as_secs_f64(),
            self.rebuilding.as_secs_f64(),
        )?;
        writeln!(
            f,
            "summary version {}: {} submissions in all, cached and published",
            self.snapshot.version, self.snapshot.total_submissions
        )?;
        writeln!(f, "{}", self.checks)?;
        let averages: Vec<String> = self
            .snapshot
            .averages(&self.categories)
            .into_iter()
            .filter_map(|(id, average)| {
                let category = self.categories.iter().find(|c| c.id == id)?;
                Some(format!("{} {average} %", category.name))
            })
            .collect();
        write!(f, "average split: {}", averages.join(", "))
    }
}

/// Writes the plan's submissions over `categories`, then rebuilds the summary and has
/// `publisher` cache and publish it.
pub async fn seed(
    store: Arc<dyn Store>,
    publisher: &SnapshotPublisher,
    categories: &[Category],
    plan: &SeedPlan,
) -> Result<SeedReport, SeedError> {
    let categories = splits::active(categories);
    if categories.is_empty() {
        return Err(SeedError::NoCategories);
    }
    let checks = store.seed_reference_checks().await?;
    if let ReferenceChecks::PerRowFallback(why) = &checks {
        tracing::warn!(
            why,
            "seed: cannot skip the foreign-key triggers; checking references per row (slower)"
        );
    }
    store.mark_summary_stale().await?;

    let started = Instant::now();
    let mut generator = Generator::new(plan, &categories, Utc::now());
    let mut progress = Progress::start("seed", "submissions", plan.submissions);
    let (voters, repeats) = plan.batches();
    for phase in [voters, repeats] {
        let mut written = futures_util::stream::iter(phase)
            .map(|range| {
                let mut batch = generator.batch(range);
                batch.checks = checks.clone();
                write(store.clone(), batch)
            })
            .buffer_unordered(plan.parallel);
        while let Some(count) = written.try_next().await? {
            progress.advance(count);
        }
    }
    progress.finish();
    let writing = started.elapsed();

    // One statement: no progress to report but the time it takes.
    let spinner = Spinner::start("seed", "rebuilding the summary over every submission");
    let rebuilt = match store.analyze_seeded().await {
        Ok(()) => publisher.rebuild_summary(store.as_ref()).await,
        Err(error) => Err(error),
    };
    let rebuilding = spinner.finish();
    Ok(SeedReport {
        plan: plan.clone(),
        writing,
        rebuilding,
        snapshot: rebuilt?,
        checks,
        categories,
    })
}

async fn write(store: Arc<dyn Store>, batch: SeedBatch) -> Result<u64, StoreError> {
    let count = batch.submissions.len() as u64;
    store.insert_seeded(batch).await?;
    Ok(count)
}

/// Draws the submissions, batch by batch, in order.
struct Generator {
    splits: SplitGenerator,
    ids: IdSequence,
    categories: Vec<CategoryId>,
    voters: u64,
    voter_ids: Vec<Uuid>,
    personas: Vec<PersonaId>,
    /// When each voter first submitted, in microseconds since the Unix epoch.
    joined: Vec<i64>,
    start: i64,
    end: i64,
}

impl Generator {
    fn new(plan: &SeedPlan, categories: &[Category], now: DateTime<Utc>) -> Generator {
        let voters = usize::try_from(plan.voters).unwrap_or(0);
        let end = now.timestamp_micros();
        Generator {
            splits: SplitGenerator::new(plan.seed_value, categories),
            ids: IdSequence::new(now),
            categories: categories.iter().map(|c| c.id).collect(),
            voters: plan.voters,
            voter_ids: Vec::with_capacity(voters),
            personas: Vec::with_capacity(voters),
            joined: Vec::with_capacity(voters),
            start: end
                - TimeDelta::days(HISTORY_DAYS)
                    .num_microseconds()
                    .unwrap_or(0),
            end,
        }
    }

    /// Submissions `range` of the plan: below `voters`, submission `i` creates voter `i`;
    /// above, it is a further submission of a voter drawn with a skew (some people submit
    /// often), dated after the voter's first.
    fn batch(&mut self, range: Range<u64>) -> SeedBatch {
        let len = usize::try_from(range.end - range.start).unwrap_or(0);
        let mut batch = SeedBatch {
            submissions: Vec::with_capacity(len),
            categories: self.categories.clone(),
            hundredths: Vec::with_capacity(len * self.categories.len()),
            checks: ReferenceChecks::default(),
        };
        for i in range {
            let (voter, creates_voter, at) = if i < self.voters {
                let persona = self.splits.persona();
                let at = self.splits.rng().random_range(self.start..=self.end);
                self.voter_ids.push(self.ids.next());
                self.personas.push(persona);
                self.joined.push(at);
                (self.voter_ids.len() - 1, true, at)
            } else {
                let rng = self.splits.rng();
                let skewed = rng.random::<f64>().powi(2);
                let voter = ((skewed * self.voter_ids.len() as f64) as usize)
                    .min(self.voter_ids.len().saturating_sub(1));
                let at = rng.random_range(self.joined[voter]..=self.end);
                (voter, false, at)
            };
            self.splits
                .split(self.personas[voter], &mut batch.hundredths);
            batch.submissions.push(SeedSubmission {
                id: self.ids.next(),
                voter_id: self.voter_ids[voter],
                created_at: DateTime::from_timestamp_micros(at).unwrap_or_else(Utc::now),
                creates_voter,
            });
        }
        batch
    }
}

/// The ids of one seed run, shaped like UUIDv7: the run's start in milliseconds, a counter,
/// then bits random per run. Growing ids put each batch at the right edge of the primary-key
/// indexes; random ones would scatter ten million allocation rows over an index far larger
/// than the buffer cache, each insert waiting on a page from disk. The run's time and random
/// bits, not the seed value, keep two runs on one database apart.
struct IdSequence {
    /// Time, version 7, 12 random bits, variant: the top 66 bits of every id.
    prefix: u128,
    /// The lowest 22 bits of every id.
    run: u128,
    next: u64,
}

impl IdSequence {
    const COUNTER_SHIFT: u32 = 22;

    fn new(now: DateTime<Utc>) -> IdSequence {
        let mut rng = rand::rng();
        let millis =
            u128::from(u64::try_from(now.timestamp_millis()).unwrap_or(0)) & 0xFFFF_FFFF_FFFF;
        let rand_a = u128::from(rng.random::<u16>() & 0x0FFF);
        IdSequence {
            prefix: (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62),
            run: u128::from(rng.random::<u32>() & 0x3F_FFFF),
            next: 0,
        }
    }

    /// The next id; the counter has 40 bits, far more than [`MAX_SUBMISSIONS`] twice.
    fn next(&mut self) -> Uuid {
        let counter = u128::from(self.next) << Self::COUNTER_SHIFT;
        self.next += 1;
        Uuid::from_u128(self.prefix | counter | self.run)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::domain::allocation::tests::categories;

    fn args(submissions: u64, voters: Option<u64>) -> SeedArgs {
        SeedArgs {
            submissions,
            voters,
            seed_value: 1,
            batch_size: 3,
            parallel: 2,
        }
    }

    #[test]
    fn refuses_what_cannot_be_seeded() {
        assert!(matches!(
            SeedPlan::new(&args(0, None)),
            Err(SeedError::NoSubmissions)
        ));
        assert!(matches!(
            SeedPlan::new(&args(10, Some(0))),
            Err(SeedError::NoVoters)
        ));
        let more = SeedPlan::new(&args(10, Some(11))).expect_err("refused");
        assert_eq!(
            more.to_string(),
            "--voters 11 is more than --submissions 10: every voter has at least one submission"
        );
        assert!(SeedPlan::new(&args(MAX_SUBMISSIONS + 1, None)).is_err());
        assert_eq!(SeedPlan::new(&args(10, None)).expect("ok").voters, 10);
    }

    #[test]
    fn ids_grow_and_are_version_7() {
        let mut ids = IdSequence::new(Utc::now());
        let drawn: Vec<Uuid> = (0..1000).map(|_| ids.next()).collect();
        assert!(drawn.windows(2).all(|w| w[0] < w[1]));
        assert!(drawn.iter().all(|id| id.get_version_num() == 7));
        assert!(drawn
            .iter()
            .all(|id| id.get_variant() == uuid::Variant::RFC4122));
        let other = IdSequence::new(Utc::now()).next();
        assert_ne!(other, drawn[0]);
    }

    #[test]
    fn voters_are_created_in_batches_of_their_own_before_any_repeat() {
        let plan = SeedPlan::new(&args(10, Some(4))).expect("plan");
        let (voters, repeats) = plan.batches();
        assert_eq!(voters, vec![0..3, 3..4]);
        assert_eq!(repeats, vec![4..7, 7..10]);
    }

    #[test]
    fn every_voter_submits_and_repeats_come_after_joining() {
        let plan = SeedPlan::new(&args(200, Some(50))).expect("plan");
        let cats = categories(10);
        let mut generator = Generator::new(&plan, &cats, Utc::now());
        let (voters, repeats) = plan.batches();
        let batches: Vec<SeedBatch> = voters
            .into_iter()
            .chain(repeats)
            .map(|range| generator.batch(range))
            .collect();
        let submissions: Vec<&SeedSubmission> =
            batches.iter().flat_map(|b| &b.submissions).collect();
        assert_eq!(submissions.len(), 200);
        let created: Vec<Uuid> = submissions
            .iter()
            .filter(|s| s.creates_voter)
            .map(|s| s.voter_id)
            .collect();
        assert_eq!(created.len(), 50);
        let named: HashSet<Uuid> = submissions.iter().map(|s| s.voter_id).collect();
        assert_eq!(named, created.iter().copied().collect());
        for s in submissions.iter().filter(|s| !s.creates_voter) {
            let first = submissions
                .iter()
                .find(|f| f.creates_voter && f.voter_id == s.voter_id)
                .expect("the voter's first");
            assert!(s.created_at >= first.created_at);
        }
        for batch in &batches {
            assert_eq!(batch.hundredths.len(), batch.submissions.len() * 10);
            for split in batch.hundredths.chunks(10) {
                assert_eq!(split.iter().sum::<i32>(), 10_000);
            }
        }
    }
}
