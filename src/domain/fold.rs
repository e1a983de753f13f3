//! What a batch of submissions adds to the summary: the sums per category, the value counts,
//! and the trend buckets, computed once from the batch's rows.
//!
//! A fold reads its submissions' allocations once and adds this to the stored tables with a
//! few upserts, instead of joining the batch to the allocations once per table it updates.
//! Rows come out in key order, so that concurrent folds touch the same rows in the same order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::category::CategoryId;
use super::trend::Resolution;

/// One allocation of a submission being folded, or the submission alone when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedRow {
    /// Identifies the submission within the batch (its outbox row).
    pub submission: i64,
    pub created_at: DateTime<Utc>,
    /// The category and its value in hundredths; `None` for a submission without allocations.
    pub allocation: Option<(CategoryId, i32)>,
}

/// What a category's totals gain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalsDelta {
    pub category: CategoryId,
    pub sum_hundredths: i64,
    pub allocations: i64,
    pub sum_squares: i64,
}

/// How many more submissions gave `category` exactly `hundredths` (never 0: zeros are derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueDelta {
    pub category: CategoryId,
    pub hundredths: i32,
    pub submissions: i64,
}

/// How many more submissions a trend bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendCountDelta {
    pub resolution: Resolution,
    pub bucket_start: DateTime<Utc>,
    pub submissions: i64,
}

/// What a category's sum in a trend bucket gains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendSumDelta {
    pub resolution: Resolution,
    pub bucket_start: DateTime<Utc>,
    pub category: CategoryId,
    pub sum_hundredths: i64,
}

/// Everything one fold adds, each list in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldDelta {
    pub totals: Vec<TotalsDelta>,
    pub values: Vec<ValueDelta>,
    pub trend_counts: Vec<TrendCountDelta>,
    pub trend_sums: Vec<TrendSumDelta>,
}

impl FoldDelta {
    /// Adds up `rows`: every allocation counts in its category's totals (zeros too), every
    /// non-zero value in the value counts, and every submission once in each resolution's
    /// bucket of its `created_at`, with its allocations in that bucket's sums.
    pub fn of(rows: impl IntoIterator<Item = FoldedRow>) -> Self {
        let mut totals: BTreeMap<CategoryId, TotalsDelta> = BTreeMap::new();
        let mut values: BTreeMap<(CategoryId, i32), i64> = BTreeMap::new();
        let mut submissions: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
        let mut trend_sums: BTreeMap<(Resolution, DateTime<Utc>, CategoryId), i64> =
            BTreeMap::new();
        for row in rows {
            submissions.insert(row.submission, row.created_at);
            let Some((category, hundredths)) = row.allocation else {
                continue;
            };
            let value = i64::from(hundredths);
            let total = totals.entry(category).or_insert(TotalsDelta {
                category,
                sum_hundredths: 0,
                allocations: 0,
                sum_squares: 0,
            });
            total.sum_hundredths += value;
            total.allocations += 1;
            total.sum_squares += value * value;
            if hundredths > 0 {
                *values.entry((category, hundredths)).or_default() += 1;
            }
            for resolution in Resolution::ALL {
                let bucket = resolution.floor(row.created_at);
                *trend_sums
                    .entry((resolution, bucket, category))
                    .or_default() += value;
            }
        }
        let mut trend_counts: BTreeMap<(Resolution, DateTime<Utc>), i64> = BTreeMap::new();
        for created_at in submissions.into_values() {
            for resolution in Resolution::ALL {
                *trend_counts
                    .entry((resolution, resolution.floor(created_at)))
                    .or_default() += 1;
            }
        }
        FoldDelta {
            totals: totals.into_values().collect(),
            values: values
                .into_iter()
                .map(|((category, hundredths), submissions)| ValueDelta {
                    category,
                    hundredths,
                    submissions,
                })
                .collect(),
            trend_counts: trend_counts
                .into_iter()
                .map(
                    |((resolution, bucket_start), submissions)| TrendCountDelta {
                        resolution,
                        bucket_start,
                        submissions,
                    },
                )
                .collect(),
            trend_sums: trend_sums
                .into_iter()
                .map(
                    |((resolution, bucket_start, category), sum_hundredths)| TrendSumDelta {
                        resolution,
                        bucket_start,
                        category,
                        sum_hundredths,
                    },
                )
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, h, m, s)
            .single()
            .expect("time")
    }

    fn row(submission: i64, created_at: DateTime<Utc>, category: i32, value: i32) -> FoldedRow {
        FoldedRow {
            submission,
            created_at,
            allocation: Some((CategoryId(category), value)),
        }
    }

    #[test]
    fn adds_up_totals_values_and_buckets() {
        let (early, late) = (at(9, 15, 10), at(10, 5, 59));
        let delta = FoldDelta::of([
            row(1, early, 2, 6000),
            row(1, early, 1, 4000),
            row(2, late, 1, 4000),
            row(2, late, 2, 0),
            row(2, late, 3, 6000),
        ]);
        let totals = |c: i32, sum: i64, n: i64, squares: i64| TotalsDelta {
            category: CategoryId(c),
            sum_hundredths: sum,
            allocations: n,
            sum_squares: squares,
        };
        assert_eq!(
            delta.totals,
            vec![
                totals(1, 8000, 2, 32_000_000),
                totals(2, 6000, 2, 36_000_000),
                totals(3, 6000, 1, 36_000_000),
            ]
        );
        let value = |c: i32, hundredths: i32, submissions: i64| ValueDelta {
            category: CategoryId(c),
            hundredths,
            submissions,
        };
        // The zero of category 2 is not counted: zeros are derived from the totals.
        assert_eq!(
            delta.values,
            vec![value(1, 4000, 2), value(2, 6000, 1), value(3, 6000, 1)]
        );
        let count = |resolution, bucket_start, submissions| TrendCountDelta {
            resolution,
            bucket_start,
            submissions,
        };
        assert_eq!(
            delta.trend_counts,
            vec![
                count(Resolution::Minute, at(9, 15, 0), 1),
                count(Resolution::Minute, at(10, 5, 0), 1),
                count(Resolution::Hour, at(9, 0, 0), 1),
                count(Resolution::Hour, at(10, 0, 0), 1),
                count(Resolution::Day, at(0, 0, 0), 2),
            ]
        );
        let days: Vec<(i32, i64)> = delta
            .trend_sums
            .iter()
            .filter(|s| s.resolution == Resolution::Day)
            .map(|s| (s.category.0, s.sum_hundredths))
            .collect();
        assert_eq!(days, vec![(1, 8000), (2, 6000), (3, 6000)]);
        assert_eq!(delta.trend_sums.len(), 2 + 3 + 2 + 3 + 3);
    }

    #[test]
    fn a_submission_without_allocations_still_counts_in_its_buckets() {
        let delta = FoldDelta::of([FoldedRow {
            submission: 7,
            created_at: at(1, 2, 3),
            allocation: None,
        }]);
        assert!(delta.totals.is_empty() && delta.values.is_empty());
        assert!(delta.trend_sums.is_empty());
        assert_eq!(delta.trend_counts.len(), 3);
        assert!(delta.trend_counts.iter().all(|c| c.submissions == 1));
    }

    #[test]
    fn nothing_adds_nothing() {
        assert_eq!(FoldDelta::of([]), FoldDelta::default());
    }

    proptest! {
        /// Whatever the batch, each resolution's buckets hold every submission once and every
        /// allocation's value once, as the totals do.
        #[test]
        fn every_resolution_adds_up_to_the_totals(
            submissions in prop::collection::vec(
                (0u32..86_400 * 3, prop::collection::vec((1i32..=10, 0i32..=10_000), 0..10)),
                0..40,
            )
        ) {
            let start = at(0, 0, 0);
            let rows: Vec<FoldedRow> = submissions
                .iter()
                .enumerate()
                .flat_map(|(i, (second, allocations))| {
                    let created_at = start + chrono::TimeDelta::seconds(i64::from(*second));
                    let mut seen = std::collections::HashSet::new();
                    let mut rows: Vec<FoldedRow> = allocations
                        .iter()
                        .filter(|(c, _)| seen.insert(*c))
                        .map(|(c, v)| row(i as i64, created_at, *c, *v))
                        .collect();
                    if rows.is_empty() {
                        rows.push(FoldedRow { submission: i as i64, created_at, allocation: None });
                    }
                    rows
                })
                .collect();
            let delta = FoldDelta::of(rows.iter().copied());
            let total: i64 = delta.totals.iter().map(|t| t.sum_hundredths).sum();
            let expected: i64 = rows
                .iter()
                .filter_map(|r| r.allocation.map(|(_, v)| i64::from(v)))
                .sum();
            prop_assert_eq!(total, expected);
            for resolution in Resolution::ALL {
                let counted: i64 = delta
                    .trend_counts
                    .iter()
                    .filter(|c| c.resolution == resolution)
                    .map(|c| c.submissions)
                    .sum();
                prop_assert_eq!(counted, submissions.len() as i64);
                let summed: i64 = delta
                    .trend_sums
                    .iter()
                    .filter(|s| s.resolution == resolution)
                    .map(|s| s.sum_hundredths)
                    .sum();
                prop_assert_eq!(summed, expected);
            }
            let valued: i64 = delta.values.iter().map(|v| v.submissions).sum();
            let non_zero = rows.iter().filter(|r| matches!(r.allocation, Some((_, v)) if v > 0));
            prop_assert_eq!(valued, non_zero.count() as i64);
        }
    }
}
