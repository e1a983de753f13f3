//! The exact distribution of one category's percentages over every counted submission, and
//! the statistics read from it.
//!
//! A percentage is one of 10,001 integers (hundredths), so the distribution is kept exactly as
//! a count per value: quantiles, ranks and histograms come out exact, with no sketch and no
//! sampling, in time that does not grow with the number of submissions. Values that nobody
//! gave are not stored.
//!
//! Every statistic matches what PostgreSQL computes over the raw rows (a submission without
//! the category counting as 0): `percentile_disc`, the hypothetical-set `percent_rank`,
//! `stddev_pop`, each rounded half away from zero to hundredths where it is a percentage.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::category::CategoryId;
use super::hundredths::{Hundredths, FULL};
use super::snapshot::Snapshot;

/// How many submissions gave one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueCount {
    pub hundredths: Hundredths,
    pub submissions: i64,
}

/// One category's distribution at one snapshot version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub category_id: CategoryId,
    /// Submissions counted, those that gave the category nothing included.
    total: i64,
    sum: i64,
    sum_squares: i64,
    /// Values given, ascending, 0 included when someone gave 0.
    values: Vec<Hundredths>,
    /// `cumulative[i]`: submissions that gave `values[i]` or less.
    cumulative: Vec<i64>,
}

/// One range of a histogram: values from `from` up to (without) `to`, the last range with
/// 100 itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramBucket {
    pub from: Hundredths,
    pub to: Hundredths,
    pub submissions: i64,
}

/// Why a statistic cannot be computed for the arguments given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DistributionError {
    #[error("p must be a number between 0 and 1")]
    QuantileOutOfRange,
    #[error("buckets must be between 1 and {MAX_BUCKETS}")]
    BucketsOutOfRange,
}

/// The most ranges a histogram may have: each is then at least one percentage point wide.
pub const MAX_BUCKETS: u32 = 100;

/// `numerator / denominator` rounded half away from zero, for non-negative operands.
fn div_round(numerator: i128, denominator: i128) -> i128 {
    (2 * numerator + denominator) / (2 * denominator)
}

fn clamp_hundredths(raw: i128) -> Hundredths {
    Hundredths::from_raw(i64::try_from(raw.clamp(0, i128::from(FULL))).unwrap_or(0))
        .unwrap_or(Hundredths::ZERO)
}

impl Distribution {
    /// The distribution of `total` submissions of which `counts` say how many gave each
    /// non-zero value (in any order; a value may repeat, its counts add up); the rest gave 0.
    /// `sum` and `sum_squares` are the stored sums of the hundredths and of their squares.
    pub fn new(
        category_id: CategoryId,
        total: i64,
        sum: i64,
        sum_squares: i64,
        mut counts: Vec<ValueCount>,
    ) -> Self {
        counts.retain(|c| c.submissions > 0 && c.hundredths > Hundredths::ZERO);
        counts.sort_unstable_by_key(|c| c.hundredths);
        let given: i64 = counts.iter().map(|c| c.submissions).sum();
        let zeros = (total - given).max(0);
        let mut values = Vec::with_capacity(counts.len() + 1);
        let mut cumulative = Vec::with_capacity(counts.len() + 1);
        let mut running = 0;
        if zeros > 0 {
            running = zeros;
            values.push(Hundredths::ZERO);
            cumulative.push(running);
        }
        for count in counts {
            running += count.submissions;
            if values.last() == Some(&count.hundredths) {
                if let Some(last) = cumulative.last_mut() {
                    *last = running;
                }
            } else {
                values.push(count.hundredths);
                cumulative.push(running);
            }
        }
        Distribution {
            category_id,
            total: total.max(running),
            sum,
            sum_squares,
            values,
            cumulative,
        }
    }

    /// Submissions counted.
    pub fn total(&self) -> i64 {
        self.total
    }

    /// The exact sum of the squares of every submission's hundredths.
    pub fn sum_squares(&self) -> i64 {
        self.sum_squares
    }

    /// Submissions that gave less than `value`.
    fn below(&self, value: Hundredths) -> i64 {
        let index = self.values.partition_point(|&v| v < value);
        index
            .checked_sub(1)
            .and_then(|i| self.cumulative.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The lowest value that at least a share `p` of the submissions gave or less:
    /// `percentile_disc(p)`. `None` without submissions.
    pub fn quantile(&self, p: f64) -> Result<Option<Hundredths>, DistributionError> {
        if !(0.0..=1.0).contains(&p) {
            return Err(DistributionError::QuantileOutOfRange);
        }
        if self.total <= 0 {
            return Ok(None);
        }
        // As PostgreSQL picks the row: the ceil(p·N)-th in order, the first for p = 0. The
        // product is computed in f64 as there, so both round the same way.
        let position = ((p * self.total as f64).ceil() as i64).clamp(1, self.total);
        let index = self.cumulative.partition_point(|&c| c < position);
        Ok(self.values.get(index).copied())
    }

    /// The share of submissions, in hundredths of a percent, that gave less than `value`:
    /// PostgreSQL's hypothetical-set `percent_rank(value)`. `None` without submissions.
    pub fn percent_rank(&self, value: Hundredths) -> Option<Hundredths> {
        (self.total > 0).then(|| {
            clamp_hundredths(div_round(
                i128::from(self.below(value)) * i128::from(FULL),
                i128::from(self.total),
            ))
        })
    }

    /// The population standard deviation in hundredths of a percent, rounded to the nearest
    /// hundredth exactly (the variance is a rational number; no floating point). `None`
    /// without submissions.
    pub fn standard_deviation(&self) -> Option<Hundredths> {
        if self.total <= 0 {
            return None;
        }
        let n = i128::from(self.total);
        let sum = i128::from(self.sum);
        // variance = (N·Σx² − (Σx)²) / N²: the numerator is never negative for real data.
        let numerator = (n * i128::from(self.sum_squares) - sum * sum).max(0);
        let denominator = n * n;
        // The rounded root k is the largest with (2k − 1)² · den ≤ 4 · num, i.e. k − ½ ≤ √v.
        let fits = |k: i128| (2 * k - 1) * (2 * k - 1) * denominator <= 4 * numerator;
        let (mut low, mut high) = (0i128, i128::from(FULL));
        while low < high {
            let mid = (low + high + 1) / 2;
            if fits(mid) {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        Some(clamp_hundredths(low))
    }

    /// The share of submissions, in hundredths of a percent, that gave 0. `None` without
    /// submissions.
    pub fn zero_share(&self) -> Option<Hundredths> {
        (self.total > 0).then(|| {
            let zeros = self.below(Hundredths::from_raw(1).unwrap_or(Hundredths::ZERO));
            clamp_hundredths(div_round(
                i128::from(zeros) * i128::from(FULL),
                i128::from(self.total),
            ))
        })
    }

    /// How many submissions fall into each of `buckets` equal ranges of 0..=100 (bounds
    /// rounded to hundredths); the counts add up to the total.
    pub fn histogram(&self, buckets: u32) -> Result<Vec<HistogramBucket>, DistributionError> {
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            return Err(DistributionError::BucketsOutOfRange);
        }
        let bound = |i: u32| {
            clamp_hundredths(div_round(
                i128::from(i) * i128::from(FULL),
                i128::from(buckets),
            ))
        };
        Ok((0..buckets)
            .map(|i| {
                let (from, to) = (bound(i), bound(i + 1));
                let up_to = if i + 1 == buckets {
                    self.total
                } else {
                    self.below(to)
                };
                HistogramBucket {
                    from,
                    to,
                    submissions: up_to - self.below(from),
                }
            })
            .collect())
    }
}

/// A snapshot with the distribution of every category, all of one version. Shared by every
/// read of that version, so a distribution (up to 10,001 counts) is handed out, never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailedSnapshot {
    pub snapshot: Snapshot,
    distributions: Vec<Arc<Distribution>>,
}

impl DetailedSnapshot {
    /// Puts the stored sums of squares (per category) and counts (per category and non-zero
    /// value) together with the snapshot they were read with.
    pub fn new(
        snapshot: Snapshot,
        sum_squares: &[(CategoryId, i64)],
        counts: Vec<(CategoryId, ValueCount)>,
    ) -> Self {
        let mut ids: Vec<CategoryId> = snapshot
            .totals
            .iter()
            .map(|t| t.category_id)
            .chain(sum_squares.iter().map(|(id, _)| *id))
            .chain(counts.iter().map(|(id, _)| *id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut by_category: BTreeMap<CategoryId, Vec<ValueCount>> = BTreeMap::new();
        for (id, count) in counts {
            by_category.entry(id).or_default().push(count);
        }
        let distributions = ids
            .into_iter()
            .map(|id| {
                let sum = snapshot
                    .totals
                    .iter()
                    .filter(|t| t.category_id == id)
                    .map(|t| t.sum_hundredths)
                    .sum();
                let squares = sum_squares
                    .iter()
                    .filter(|(c, _)| *c == id)
                    .map(|(_, s)| s)
                    .sum();
                let counts = by_category.remove(&id).unwrap_or_default();
                Arc::new(Distribution::new(
                    id,
                    snapshot.total_submissions,
                    sum,
                    squares,
                    counts,
                ))
            })
            .collect();
        DetailedSnapshot {
            snapshot,
            distributions,
        }
    }

    /// The category's distribution; a category nobody has given anything to yet has every
    /// submission at 0.
    pub fn distribution(&self, id: CategoryId) -> Arc<Distribution> {
        self.distributions
            .iter()
            .find(|d| d.category_id == id)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(Distribution::new(
                    id,
                    self.snapshot.total_submissions,
                    0,
                    0,
                    Vec::new(),
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(raw: i64) -> Hundredths {
        Hundredths::from_raw(raw).expect("in range")
    }

    /// The distribution of raw values, built as the store builds it: sums, and counts of the
    /// non-zero values.
    fn of(values: &[i64]) -> Distribution {
        let counts = values
            .iter()
            .map(|&v| ValueCount {
                hundredths: h(v),
                submissions: 1,
            })
            .collect();
        Distribution::new(
            CategoryId(1),
            values.len() as i64,
            values.iter().sum(),
            values.iter().map(|v| v * v).sum(),
            counts,
        )
    }

    /// `percentile_disc` as its definition reads, over the sorted raw values.
    fn percentile_disc(sorted: &[i64], p: f64) -> i64 {
        let position = ((p * sorted.len() as f64).ceil() as usize).max(1);
        sorted[position - 1]
    }

    #[test]
    fn nothing_counted_has_no_statistics_but_an_empty_histogram() {
        let d = of(&[]);
        assert_eq!(d.quantile(0.5), Ok(None));
        assert_eq!(d.percent_rank(h(10)), None);
        assert_eq!(d.standard_deviation(), None);
        assert_eq!(d.zero_share(), None);
        let histogram = d.histogram(4).unwrap();
        assert_eq!(histogram.len(), 4);
        assert!(histogram.iter().all(|b| b.submissions == 0));
    }

    #[test]
    fn submissions_without_the_category_count_as_zero() {
        // Four submissions, two of which never mentioned the category.
        let d = Distribution::new(
            CategoryId(1),
            4,
            3000,
            5_000_000,
            vec![
                ValueCount {
                    hundredths: h(1000),
                    submissions: 1,
                },
                ValueCount {
                    hundredths: h(2000),
                    submissions: 1,
                },
            ],
        );
        assert_eq!(d.zero_share(), Some(h(5000)));
        assert_eq!(d.quantile(0.5), Ok(Some(h(0))));
        assert_eq!(d.quantile(0.75), Ok(Some(h(1000))));
        assert_eq!(d.percent_rank(h(2000)), Some(h(7500)));
        assert_eq!(d.percent_rank(h(0)), Some(h(0)));
    }

    #[test]
    fn arguments_out_of_range_are_refused() {
        let d = of(&[100]);
        assert_eq!(d.quantile(1.5), Err(DistributionError::QuantileOutOfRange));
        assert_eq!(
            d.quantile(f64::NAN),
            Err(DistributionError::QuantileOutOfRange)
        );
        assert_eq!(d.histogram(0), Err(DistributionError::BucketsOutOfRange));
        assert_eq!(d.histogram(101), Err(DistributionError::BucketsOutOfRange));
    }

    #[test]
    fn histogram_bounds_cover_zero_to_hundred() {
        let d = of(&[0, 500, 9999, 10000, 3333]);
        let buckets = d.histogram(3).unwrap();
        let bounds: Vec<(u16, u16, i64)> = buckets
            .iter()
            .map(|b| (b.from.raw(), b.to.raw(), b.submissions))
            .collect();
        assert_eq!(
            bounds,
            vec![(0, 3333, 2), (3333, 6667, 1), (6667, 10000, 2)]
        );
    }

    #[test]
    fn standard_deviation_rounds_half_up_exactly() {
        // Values 0 and 1 hundredth: σ = 0.5 hundredths exactly, rounded up.
        assert_eq!(of(&[0, 1]).standard_deviation(), Some(h(1)));
        assert_eq!(of(&[2000, 2000]).standard_deviation(), Some(h(0)));
        assert_eq!(of(&[0, 10000]).standard_deviation(), Some(h(5000)));
    }

    proptest! {
        #[test]
        fn statistics_match_their_definitions_over_raw_values(
            values in proptest::collection::vec(
                prop_oneof![Just(0i64), Just(2500i64), 0i64..=10_000], 1..200),
            p in 0.0f64..=1.0,
            probe in 0i64..=10_000,
            buckets in 1u32..=100,
        ) {
            let d = of(&values);
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let n = values.len() as i64;
            prop_assert_eq!(d.quantile(p).unwrap(), Some(h(percentile_disc(&sorted, p))));
            prop_assert_eq!(d.quantile(0.5).unwrap(), Some(h(percentile_disc(&sorted, 0.5))));
            let below = sorted.iter().filter(|&&v| v < probe).count() as i64;
            prop_assert_eq!(
                d.percent_rank(h(probe)),
                Some(h((2 * below * 10_000 + n) / (2 * n)))
            );
            // σ against f64 where the exact value is not within a hair of a rounding tie.
            let mean = values.iter().sum::<i64>() as f64 / n as f64;
            let variance = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let sigma = variance.sqrt();
            if (sigma - sigma.floor() - 0.5).abs() > 1e-6 {
                prop_assert_eq!(d.standard_deviation(), Some(h(sigma.round() as i64)));
            }
            let histogram = d.histogram(buckets).unwrap();
            prop_assert_eq!(histogram.iter().map(|b| b.submissions).sum::<i64>(), n);
            for b in &histogram {
                let last = b.to == h(10_000);
                let inside = sorted.iter().filter(|&&v| {
                    v >= i64::from(b.from.raw()) && (v < i64::from(b.to.raw()) || (last && v == 10_000))
                }).count() as i64;
                prop_assert_eq!(b.submissions, inside);
            }
        }
    }
}
