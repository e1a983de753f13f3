//! `tax-budget seed`: demo data for a demo or a benchmark, written fast and made visible at
//! once.
//!
//! Submissions are written in large batches (one statement each on PostgreSQL), several at a
//! time, as already folded: no outbox rows, so no worker has to fold a million of them one
//! batch at a time. One `rebuild-aggregates` afterwards sums them all, exact by construction
//! (the proven rebuild), and caches and publishes the result, so every server shows it.
//!
//! On PostgreSQL the time of a batch was mostly its foreign-key triggers (21 calls per
//! submission, one now that allocations have none); each batch checks its references once,
//! and where the role may, skips the triggers (see [`ReferenceChecks::PerBatch`]) and says
//! so; otherwise the triggers check each submission's voter too, slower but as exact.
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

use super::progress::{per_second, Progress, StepProgress};
use super::splits::{self, PersonaId, SplitGenerator};
use crate::domain::{Category, CategoryId, Snapshot};
use crate::publisher::SnapshotPublisher;
use crate::store::{ReferenceChecks, SeedBatch, SeedSubmission, Store, StoreError};

/// More would hold gigabytes of voters in memory for no demo or benchmark we run.
pub const MAX_SUBMISSIONS: u64 = 100_000_000;
/// Further submissions are drawn this many at a time and written ordered by voter (see
/// `Generator::window`): about 25 MB of them in memory.
const REPEAT_WINDOW: usize = 250_000;
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
    let mut writer = Writer {
        store: store.clone(),
        checks: checks.clone(),
        parallel: plan.parallel,
        progress: &mut progress,
    };
    // Every voter is committed before the first further submission names one.
    writer
        .write_all(voters.into_iter().map(|range| generator.batch(range)))
        .await?;
    let window = (REPEAT_WINDOW / plan.batch_size).max(1);
    writer
        .write_all(
            repeats
                .chunks(window)
                .flat_map(|ranges| generator.window(ranges)),
        )
        .await?;
    progress.finish();
    let writing = started.elapsed();

    // Steps of SQL that report nothing until they end: progress by steps, as for
    // `rebuild-aggregates`.
    let rebuild = StepProgress::start("seed", "rebuilding the summary over every submission");
    let rebuilt = match store.analyze_seeded().await {
        Ok(()) => {
            publisher
                .rebuild_summary_showing(store.as_ref(), rebuild.reporter())
                .await
        }
        Err(error) => Err(error),
    };
    let rebuilding = rebuild.finish();
    Ok(SeedReport {
        plan: plan.clone(),
        writing,
        rebuilding,
        snapshot: rebuilt?,
        checks,
        categories,
    })
}

/// Writes batches, `parallel` at a time, and counts them on the progress bar.
struct Writer<'a> {
    store: Arc<dyn Store>,
    checks: ReferenceChecks,
    parallel: usize,
    progress: &'a mut Progress,
}

impl Writer<'_> {
    /// Draws the batches as they are needed: no more than `parallel` (and the window they are
    /// from) are in memory.
    async fn write_all(
        &mut self,
        batches: impl Iterator<Item = SeedBatch>,
    ) -> Result<(), SeedError> {
        let mut written = futures_util::stream::iter(batches)
            .map(|mut batch| {
                batch.checks = self.checks.clone();
                write(self.store.clone(), batch)
            })
            .buffer_unordered(self.parallel);
        while let Some(count) = written.try_next().await? {
            self.progress.advance(count);
        }
        Ok(())
    }
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

    /// Submissions `range` of the plan, in order, as one batch.
    fn batch(&mut self, range: Range<u64>) -> SeedBatch {
        let len = usize::try_from(range.end - range.start).unwrap_or(0);
        let mut hundredths = Vec::with_capacity(len * self.categories.len());
        let draws: Vec<Draw> = range.map(|i| self.draw(i, &mut hundredths)).collect();
        let mut batch = self.empty_batch(len);
        self.push_all(&mut batch, draws.iter(), &hundredths);
        batch
    }

    /// Submissions `ranges` of the plan (further ones, no voter-creating among them), drawn in
    /// order as [`Generator::batch`] would draw them, then written ordered by voter: batch `k`
    /// has `ranges[k].len()` of them, and ids are given in the order written.
    ///
    /// The order is what makes further submissions as cheap to write as first ones. Drawn in
    /// order, a batch names voters all over the key space, so its inserts land on random
    /// pages of the indexes on `submissions (voter_id, ...)` (and its reference check locks
    /// voter rows all over the table): each page's first change after a checkpoint is logged
    /// whole, measured as 6,000 full-page images and 38 MB of WAL for 5,000 submissions, and
    /// 0.12-0.22 s against 0.03 s. Ordered over a window, a batch covers one slice of the
    /// voters, so it touches a few hundred pages, and batches written at once lock disjoint
    /// voters. Growing ids in write order keep the primary keys' inserts at the right edge.
    fn window(&mut self, ranges: &[Range<u64>]) -> Vec<SeedBatch> {
        let total: usize = ranges
            .iter()
            .map(|r| usize::try_from(r.end - r.start).unwrap_or(0))
            .sum();
        let mut hundredths = Vec::with_capacity(total * self.categories.len());
        let mut draws: Vec<Draw> = Vec::with_capacity(total);
        for range in ranges {
            for i in range.clone() {
                draws.push(self.draw(i, &mut hundredths));
            }
        }
        // Stable: the same seed writes the same rows in the same order.
        draws.sort_by_key(|d| (d.voter, d.at));
        let mut rest = draws.iter();
        ranges
            .iter()
            .map(|range| {
                let len = usize::try_from(range.end - range.start).unwrap_or(0);
                let mut batch = self.empty_batch(len);
                self.push_all(&mut batch, rest.by_ref().take(len), &hundredths);
                batch
            })
            .collect()
    }

    fn empty_batch(&self, len: usize) -> SeedBatch {
        SeedBatch {
            submissions: Vec::with_capacity(len),
            categories: self.categories.clone(),
            hundredths: Vec::with_capacity(len * self.categories.len()),
            checks: ReferenceChecks::default(),
        }
    }

    /// Appends `draws` to `batch`, each with the next id; `hundredths` holds every draw's
    /// split at its `split`.
    fn push_all<'a>(
        &mut self,
        batch: &mut SeedBatch,
        draws: impl Iterator<Item = &'a Draw>,
        hundredths: &[i32],
    ) {
        let width = self.categories.len();
        for draw in draws {
            // Always there: a split has one value per category.
            let split = hundredths
                .get(draw.split..draw.split + width)
                .unwrap_or_default();
            batch.hundredths.extend_from_slice(split);
            batch.submissions.push(SeedSubmission {
                id: self.ids.next(),
                voter_id: self.voter_ids[draw.voter],
                created_at: DateTime::from_timestamp_micros(draw.at).unwrap_or_else(Utc::now),
                creates_voter: draw.creates_voter,
            });
        }
    }

    /// Submission `i` of the plan, its split appended to `hundredths`: below `voters`,
    /// submission `i` creates voter `i`; above, it is a further submission of a voter drawn
    /// with a skew (some people submit often), dated after the voter's first.
    fn draw(&mut self, i: u64, hundredths: &mut Vec<i32>) -> Draw {
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
        let split = hundredths.len();
        self.splits.split(self.personas[voter], hundredths);
        Draw {
            voter,
            creates_voter,
            at,
            split,
        }
    }
}

/// One drawn submission, before it has an id.
struct Draw {
    /// Index into the voters (their ids grow with it).
    voter: usize,
    creates_voter: bool,
    /// Microseconds since the Unix epoch.
    at: i64,
    /// Where its split starts in the hundredths drawn with it.
    split: usize,
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
    fn a_window_writes_the_same_draws_ordered_by_voter_with_growing_ids() {
        let plan = SeedPlan::new(&args(300, Some(40))).expect("plan");
        let cats = categories(10);
        let now = Utc::now();
        let (voters, repeats) = plan.batches();
        let draw = |windowed: bool| {
            let mut generator = Generator::new(&plan, &cats, now);
            let mut batches: Vec<SeedBatch> =
                voters.iter().map(|r| generator.batch(r.clone())).collect();
            if windowed {
                batches.extend(generator.window(&repeats));
            } else {
                batches.extend(repeats.iter().map(|r| generator.batch(r.clone())));
            }
            batches
        };
        let (windowed, in_order) = (draw(true), draw(false));
        let sizes = |b: &[SeedBatch]| b.iter().map(|b| b.submissions.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&windowed), sizes(&in_order));
        // The voters' positions in the run, to compare runs whose ids differ.
        let rows = |batches: &[SeedBatch]| {
            let voters: Vec<Uuid> = batches
                .iter()
                .flat_map(|b| &b.submissions)
                .filter(|s| s.creates_voter)
                .map(|s| s.voter_id)
                .collect();
            let mut rows: Vec<(usize, DateTime<Utc>, Vec<i32>)> = batches
                .iter()
                .flat_map(|b| b.submissions.iter().zip(b.hundredths.chunks(10)))
                .map(|(s, split)| {
                    let voter = voters.iter().position(|v| *v == s.voter_id);
                    (
                        voter.expect("a created voter"),
                        s.created_at,
                        split.to_vec(),
                    )
                })
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(rows(&windowed), rows(&in_order));
        let repeated: Vec<&SeedSubmission> = windowed[voters.len()..]
            .iter()
            .flat_map(|b| &b.submissions)
            .collect();
        assert!(repeated.windows(2).all(|w| w[0].voter_id <= w[1].voter_id));
        let ids: Vec<Uuid> = windowed
            .iter()
            .flat_map(|b| &b.submissions)
            .map(|s| s.id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
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
