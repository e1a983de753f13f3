//! `tax-budget verify`: whether the summary, SQL over the stored allocations and the shared
//! cache agree, and where they do not.
//!
//! The rule, exact at any moment even while submissions and folds go on:
//!
//! - **summary = live SQL over the folded submissions.** Per category and in the submission
//!   count, the summary must hold exactly the sums SQL computes over the allocations of every
//!   submission that has left the outbox, both read in one transaction. Submissions still in
//!   the outbox are counted and reported, never compared: a fold adds them to the summary in
//!   the transaction that removes them from the outbox, so no committed state has them half
//!   counted.
//! - **Distributions and trend buckets = live SQL over the folded submissions**, in the same
//!   transaction: every value count, sum of squares and trend bucket the summary keeps beside
//!   its sums. The first few differences are listed, then how many more there are.
//! - **The summary is not marked stale.** A stale summary (a rebuild running, or one that died
//!   between its two steps) sends every reader to slow live SQL; it is reported as a problem.
//! - **cache = summary at the same version.** The cache is read before the summary, and
//!   versions only grow, so a cache can be *behind* the summary (a fold committed but not yet
//!   published, or a publish that failed) but never ahead of it. A cache behind is not an
//!   inconsistency: what it holds was the summary once, and the next fold, a worker's heal or
//!   `tax-budget cache reset` brings it forward; the line says so. A cache that holds the
//!   summary's version with other sums, a cache ahead of the summary, or one that cannot be
//!   decoded is an inconsistency. An empty cache is fine (the next read fills it), and without
//!   Redis each serving process keeps its own cache in memory, which no other process can see.

use std::collections::BTreeMap;
use std::fmt;

use crate::cache::{CacheError, SnapshotCache};
use crate::domain::Snapshot;
use crate::store::{DerivedAudit, Store, StoreError, SummaryAudit};

/// Differences of the derived state listed one per line; the rest are counted.
const DERIVED_LINES: usize = 20;

/// What the cache held when `verify` looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheView {
    /// No Redis: each serving process keeps its own cache in memory, out of this one's reach.
    InProcess,
    Empty,
    /// A value that does not decode as a snapshot.
    Unreadable,
    Holds(Snapshot),
}

impl CacheView {
    /// What `cache` holds (`None`: there is no shared one). A value that does not decode is
    /// a finding, not a failure; a cache that cannot be read is.
    pub async fn read(cache: Option<&dyn SnapshotCache>) -> Result<CacheView, CacheError> {
        let Some(cache) = cache else {
            return Ok(CacheView::InProcess);
        };
        match cache.get().await {
            Ok(Some(snapshot)) => Ok(CacheView::Holds(snapshot)),
            Ok(None) => Ok(CacheView::Empty),
            Err(CacheError::Decode(_)) => Ok(CacheView::Unreadable),
            Err(error) => Err(error),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the summary: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the cache: {0}")]
    Cache(#[source] CacheError),
}

/// The verdict: one line of what was compared, then one line per disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    headline: String,
    problems: Vec<String>,
}

impl Report {
    /// True when nothing disagrees; a cache that is empty, behind or in-process still is.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line per disagreement, empty when consistent.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_consistent() {
            "consistent"
        } else {
            "inconsistent"
        };
        write!(f, "{verdict}: {}", self.headline)?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Reads the cache (`None`: there is no shared one), then the summary with the sums it must
/// hold, and compares them.
pub async fn verify(
    store: &dyn Store,
    cache: Option<&dyn SnapshotCache>,
) -> Result<Report, VerifyError> {
    // The cache first: a fold that commits between the two reads then leaves the cache behind
    // the summary, which is harmless, instead of ahead of it, which would be a false alarm.
    let cache = CacheView::read(cache).await.map_err(VerifyError::Cache)?;
    let audit = store.audit_summary().await?;
    Ok(compare(&audit, &cache))
}

/// Applies the rule of this module to what was read.
pub fn compare(audit: &SummaryAudit, cache: &CacheView) -> Report {
    let mut problems = Vec::new();
    let folded = audit.folded.total_submissions;
    let unfolded = audit.unfolded;
    let summary_part = match &audit.summary {
        Some(summary) => {
            if audit.stale {
                problems.push(
                    "summary is marked stale: a rebuild is running or died, and readers use \
                     live SQL; a starting worker finishes it, or run `tax-budget \
                     rebuild-aggregates`"
                        .to_owned(),
                );
            }
            let found = differences(summary, &audit.folded);
            let relation = if found.is_empty() { "=" } else { "vs" };
            problems.extend(
                found
                    .into_iter()
                    .map(|d| d.line("summary", "live SQL over folded submissions")),
            );
            let stale = if audit.stale { " (marked stale)" } else { "" };
            let derived = derived_differences(&audit.derived);
            let derived_relation = if derived.is_empty() { "=" } else { "vs" };
            let derived_count = derived.len();
            problems.extend(derived.into_iter().take(DERIVED_LINES));
            if derived_count > DERIVED_LINES {
                problems.push(format!(
                    "and {} more differences in distributions and trend buckets",
                    derived_count - DERIVED_LINES
                ));
            }
            format!(
                "summary version {}{stale} {relation} live SQL over {folded} folded submissions \
                 ({unfolded} not yet folded); its {} distribution and trend numbers \
                 {derived_relation} live SQL",
                summary.version,
                audit.derived.stored.len().max(audit.derived.folded.len())
            )
        }
        None => {
            // Every writer of the summary creates it first, so folded submissions without a
            // summary row mean the row was deleted behind the service's back.
            if folded > 0 {
                problems.push(format!(
                    "no summary row, yet {folded} submissions have left the outbox"
                ));
            }
            format!("no summary yet ({unfolded} submissions not yet folded)")
        }
    };
    let summary_version = audit.summary.as_ref().map_or(0, |s| s.version);
    let cache_part = match cache {
        CacheView::InProcess => "cache in-process (no REDIS_URL): not visible here".to_owned(),
        CacheView::Empty => "cache empty (the next read fills it)".to_owned(),
        CacheView::Unreadable => {
            problems.push(
                "cache holds a value that is not a snapshot; `tax-budget cache reset` \
                 repairs it"
                    .to_owned(),
            );
            "cache unreadable".to_owned()
        }
        CacheView::Holds(cached) => match &audit.summary {
            // Version 0 is a live answer from before the first fold, over every submission at
            // some past moment: nothing to compare it with.
            None if cached.version == 0 => {
                "cache holds version 0, a live answer from before the first fold".to_owned()
            }
            // Readers do not trust a snapshot of another generation; the next read or fold
            // overwrites it, whatever its version.
            Some(summary) if cached.generation != summary.generation => format!(
                "cache holds another summary generation's version {} (not trusted; the next \
                 read or fold replaces it)",
                cached.version
            ),
            Some(_) if cached.version < summary_version => format!(
                "cache behind at version {} (repaired by the next fold, a worker's heal or \
                 `tax-budget cache reset`)",
                cached.version
            ),
            Some(summary) if cached.version == summary_version => {
                let found = differences(cached, summary);
                if found.is_empty() {
                    format!("cache = summary at version {}", cached.version)
                } else {
                    let context = format!("cache vs summary at version {}", cached.version);
                    problems.extend(
                        found
                            .into_iter()
                            .map(|d| format!("{context}, {}", d.line("cache", "summary"))),
                    );
                    format!("cache differs at version {}", cached.version)
                }
            }
            _ => {
                problems.push(format!(
                    "cache holds version {}, ahead of the summary's {summary_version}: the \
                     database was restored, or another deployment uses this REDIS_KEY_PREFIX; \
                     `tax-budget cache reset` repairs it",
                    cached.version
                ));
                format!("cache ahead at version {}", cached.version)
            }
        },
    };
    Report {
        headline: format!("{summary_part}; {cache_part}"),
        problems,
    }
}

/// One line per number of the derived state that the summary and live SQL disagree on.
fn derived_differences(derived: &DerivedAudit) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> =
        derived.stored.keys().chain(derived.folded.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let stored = derived.stored.get(name).copied().unwrap_or(0);
            let folded = derived.folded.get(name).copied().unwrap_or(0);
            (stored != folded).then(|| {
                Difference {
                    what: name.clone(),
                    left: stored,
                    right: folded,
                }
                .line("summary", "live SQL over folded submissions")
            })
        })
        .collect()
}

/// One number two snapshots disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Difference {
    what: String,
    left: i64,
    right: i64,
}

impl Difference {
    fn line(&self, left: &str, right: &str) -> String {
        let by = self.left - self.right;
        format!(
            "{}: {left} {}, {right} {} ({left} {by:+})",
            self.what, self.left, self.right
        )
    }
}

/// Where `left` and `right` disagree: the submission count, then each category's sum in
/// hundredths. A category one side has no row for counts as 0 there, as in the averages.
fn differences(left: &Snapshot, right: &Snapshot) -> Vec<Difference> {
    let mut found = Vec::new();
    if left.total_submissions != right.total_submissions {
        found.push(Difference {
            what: "total submissions".to_owned(),
            left: left.total_submissions,
            right: right.total_submissions,
        });
    }
    let mut sums: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for total in &left.totals {
        sums.entry(total.category_id.0).or_default().0 += total.sum_hundredths;
    }
    for total in &right.totals {
        sums.entry(total.category_id.0).or_default().1 += total.sum_hundredths;
    }
    found.extend(
        sums.into_iter()
            .filter(|(_, (l, r))| l != r)
            .map(|(id, (left, right))| Difference {
                what: format!("category {id} sum of hundredths"),
                left,
                right,
            }),
    );
    found
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::{CategoryId, CategoryTotal, SnapshotSource};

    fn snapshot(version: i64, count: i64, sums: &[(i32, i64)]) -> Snapshot {
        Snapshot {
            generation: "g".into(),
            version,
            total_submissions: count,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            totals: sums
                .iter()
                .map(|&(id, sum_hundredths)| CategoryTotal {
                    category_id: CategoryId(id),
                    sum_hundredths,
                })
                .collect(),
            source: SnapshotSource::Summary,
        }
    }

    /// A summary at `version` over two submissions, and SQL agreeing with it.
    fn agreeing(version: i64) -> SummaryAudit {
        let sums = [(1, 15_000), (2, 5_000)];
        SummaryAudit {
            summary: Some(snapshot(version, 2, &sums)),
            stale: false,
            folded: snapshot(version, 2, &sums).with_source(SnapshotSource::Live),
            unfolded: 3,
            derived: derived(&[("category 1 submissions at 75 %", 2)]),
        }
    }

    /// The same derived numbers stored and computed.
    fn derived(numbers: &[(&str, i64)]) -> DerivedAudit {
        let named: BTreeMap<String, i64> =
            numbers.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
        DerivedAudit {
            stored: named.clone(),
            folded: named,
        }
    }

    #[test]
    fn agreement_is_one_line() {
        let audit = agreeing(7);
        let report = compare(
            &audit,
            &CacheView::Holds(snapshot(7, 2, &[(1, 15_000), (2, 5_000)])),
        );
        assert!(report.is_consistent(), "{report}");
        assert_eq!(
            report.to_string(),
            "consistent: summary version 7 = live SQL over 2 folded submissions (3 not yet \
             folded); its 1 distribution and trend numbers = live SQL; cache = summary at \
             version 7"
        );
    }

    #[test]
    fn derived_numbers_that_differ_are_listed_then_counted() {
        let mut audit = agreeing(7);
        audit
            .derived
            .stored
            .insert("category 2 sum of squares".into(), 10);
        for i in 0..25 {
            audit
                .derived
                .folded
                .insert(format!("minute bucket {i:02} submissions"), 1);
        }
        let report = compare(&audit, &CacheView::Empty);
        assert!(!report.is_consistent());
        let problems = report.problems();
        assert_eq!(problems.len(), DERIVED_LINES + 1);
        assert_eq!(
            problems[0],
            "category 2 sum of squares: summary 10, live SQL over folded submissions 0 \
             (summary +10)"
        );
        assert_eq!(
            problems[1],
            "minute bucket 00 submissions: summary 0, live SQL over folded submissions 1 \
             (summary -1)"
        );
        assert_eq!(
            problems[DERIVED_LINES],
            "and 6 more differences in distributions and trend buckets"
        );
        assert!(report.to_string().contains("numbers vs live SQL"));
    }

    #[test]
    fn a_missing_category_row_counts_as_zero() {
        let mut audit = agreeing(7);
        if let Some(summary) = &mut audit.summary {
            summary.totals.push(CategoryTotal {
                category_id: CategoryId(3),
                sum_hundredths: 0,
            });
        }
        assert!(compare(&audit, &CacheView::Empty).is_consistent());
    }

    #[test]
    fn a_tampered_summary_is_shown_per_category() {
        let mut audit = agreeing(7);
        audit.summary = Some(snapshot(7, 2, &[(1, 15_001), (2, 5_000)]));
        let report = compare(&audit, &CacheView::Empty);
        assert!(!report.is_consistent());
        assert_eq!(
            report.problems(),
            [
                "category 1 sum of hundredths: summary 15001, live SQL over folded submissions \
              15000 (summary +1)"
            ]
        );
        assert!(report
            .to_string()
            .starts_with("inconsistent: summary version 7"));
    }

    #[test]
    fn a_stale_summary_is_a_problem_even_when_its_sums_agree() {
        let mut audit = agreeing(7);
        audit.stale = true;
        let report = compare(&audit, &CacheView::Empty);
        assert_eq!(report.problems().len(), 1, "{report}");
        assert!(report.problems()[0].contains("marked stale"));
    }

    #[test]
    fn a_cache_behind_empty_or_in_process_is_consistent_and_said() {
        let audit = agreeing(7);
        for (cache, says) in [
            (
                CacheView::Holds(snapshot(5, 1, &[(1, 10_000)])),
                "cache behind at version 5",
            ),
            (CacheView::Empty, "cache empty"),
            (CacheView::InProcess, "cache in-process"),
        ] {
            let report = compare(&audit, &cache);
            assert!(report.is_consistent(), "{report}");
            assert!(report.to_string().contains(says), "{report}");
        }
    }

    #[test]
    fn a_cache_that_differs_at_the_summary_version_is_shown() {
        let audit = agreeing(7);
        let cached = snapshot(7, 3, &[(1, 15_000), (2, 15_000)]);
        let report = compare(&audit, &CacheView::Holds(cached));
        assert_eq!(
            report.problems(),
            [
                "cache vs summary at version 7, total submissions: cache 3, summary 2 (cache +1)",
                "cache vs summary at version 7, category 2 sum of hundredths: cache 15000, \
                 summary 5000 (cache +10000)",
            ]
        );
    }

    #[test]
    fn a_cache_ahead_of_the_summary_or_unreadable_is_a_problem() {
        let audit = agreeing(7);
        let ahead = compare(&audit, &CacheView::Holds(snapshot(9, 2, &[])));
        assert!(
            ahead.problems()[0].contains("ahead of the summary's 7"),
            "{ahead}"
        );
        assert!(!compare(&audit, &CacheView::Unreadable).is_consistent());
    }

    #[test]
    fn before_the_first_fold_only_unfolded_submissions_exist() {
        let audit = SummaryAudit {
            summary: None,
            stale: false,
            folded: snapshot(0, 0, &[]),
            unfolded: 4,
            derived: DerivedAudit::default(),
        };
        let live = CacheView::Holds(snapshot(0, 4, &[(1, 40_000)]));
        let report = compare(&audit, &live);
        assert!(report.is_consistent(), "{report}");
        assert!(report.to_string().contains("4 submissions not yet folded"));

        let orphaned = SummaryAudit {
            folded: snapshot(0, 2, &[(1, 20_000)]),
            ..audit
        };
        assert!(!compare(&orphaned, &CacheView::Empty).is_consistent());
    }
}
