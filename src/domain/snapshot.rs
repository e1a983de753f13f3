//! The aggregate of all submissions: exact sums, and the averages derived from them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::category::{Category, CategoryId};
use super::hundredths::Hundredths;

/// Which tier produced a snapshot that a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SnapshotSource {
    /// Read from the shared cache (Redis or the in-process cache).
    Cache,
    /// Read from (or folded into) the summary table.
    #[default]
    Summary,
    /// Computed by SQL over every allocation.
    Live,
}

impl SnapshotSource {
    /// The tier's name, as the API and the metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            SnapshotSource::Cache => "CACHE",
            SnapshotSource::Summary => "SUMMARY",
            SnapshotSource::Live => "LIVE",
        }
    }
}

/// Running sum of one category's hundredths over all submissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryTotal {
    pub category_id: CategoryId,
    pub sum_hundredths: i64,
}

/// Sums and count at one version. Averages are derived, never stored, so the stored data stays
/// exact and the arithmetic lives in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Which summary this snapshot belongs to: created with the summary row and renewed by
    /// every rebuild, so a snapshot of a recreated or restored database (whose versions start
    /// again lower) is not mistaken for an old one of this. Empty before the first summary.
    #[serde(default)]
    pub generation: String,
    /// Grows with every change of the summary; caches and subscribers never go back.
    pub version: i64,
    pub total_submissions: i64,
    pub updated_at: DateTime<Utc>,
    pub totals: Vec<CategoryTotal>,
    #[serde(skip)]
    pub source: SnapshotSource,
}

impl Serialize for CategoryId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<'de> Deserialize<'de> for CategoryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i32::deserialize(d).map(CategoryId)
    }
}

impl Snapshot {
    /// The snapshot of a system nobody has submitted to yet.
    pub fn empty(version: i64, updated_at: DateTime<Utc>) -> Self {
        Snapshot {
            generation: String::new(),
            version,
            total_submissions: 0,
            updated_at,
            totals: Vec::new(),
            source: SnapshotSource::Summary,
        }
    }

    pub fn with_source(mut self, source: SnapshotSource) -> Self {
        self.source = source;
        self
    }

    /// True when `self`, heard of from another process or a cache, should replace `current`
    /// in a subscriber's view: a higher version (rebuilds renew the generation but go on
    /// counting versions). A snapshot from before the first summary never replaces one of a
    /// summary.
    pub fn is_newer_than(&self, current: &Snapshot) -> bool {
        if self.generation.is_empty() && !current.generation.is_empty() {
            return false;
        }
        self.version > current.version
    }

    /// True when `self`, just read from the database, should replace `stored` (in a cache or
    /// this process's view): a newer version of the same summary, or any version of another
    /// generation, since the database is the truth and `stored` then came from a database
    /// that was recreated or restored since. "No summary yet" never replaces a summary: the
    /// first fold creates one at once.
    pub fn supersedes(&self, stored: &Snapshot) -> bool {
        if self.generation == stored.generation {
            self.version > stored.version
        } else {
            !self.generation.is_empty()
        }
    }

    /// The exact sum of one category's hundredths over every counted submission.
    pub fn sum_of(&self, id: CategoryId) -> i64 {
        self.totals
            .iter()
            .filter(|t| t.category_id == id)
            .map(|t| t.sum_hundredths)
            .sum()
    }

    /// The average percentage of every active category, in display order.
    ///
    /// A submission without some category counts as 0 for it, so each average is
    /// `sum / total_submissions`. The exact averages add up to 100; rounding each to a
    /// hundredth could make them add up to 99.99 or 100.01, so the hundredths lost to rounding
    /// go to the categories with the largest remainders (ties to display order). The result
    /// adds up to exactly 100.00 whenever every submission allocated over the active
    /// categories only; with no submissions every average is 0.
    pub fn averages(&self, categories: &[Category]) -> Vec<(CategoryId, Hundredths)> {
        let mut active: Vec<&Category> = categories.iter().filter(|c| c.active).collect();
        active.sort_by_key(|c| (c.display_order, c.id));
        let count = self.total_submissions;
        if count <= 0 {
            return active.iter().map(|c| (c.id, Hundredths::ZERO)).collect();
        }
        let mut shares: Vec<(CategoryId, i64, i64)> = active
            .iter()
            .map(|c| {
                let sum = self.sum_of(c.id).max(0);
                (c.id, sum / count, sum % count)
            })
            .collect();
        let leftover = shares.iter().map(|(_, _, rem)| rem).sum::<i64>() / count;
        let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
        by_remainder.sort_by(|&a, &b| shares[b].2.cmp(&shares[a].2).then(a.cmp(&b)));
        for &i in by_remainder
            .iter()
            .take(usize::try_from(leftover).unwrap_or(0))
        {
            shares[i].1 += 1;
        }
        shares
            .into_iter()
            .map(|(id, floor, _)| {
                let value = Hundredths::from_raw(floor).unwrap_or(Hundredths::ZERO);
                (id, value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::allocation::tests::categories;
    use proptest::prelude::*;

    fn at(generation: &str, version: i64) -> Snapshot {
        Snapshot {
            generation: generation.into(),
            ..Snapshot::empty(version, DateTime::<Utc>::UNIX_EPOCH)
        }
    }

    #[test]
    fn what_replaces_what() {
        // Heard of: versions order, across rebuilds too; "no summary yet" never wins.
        assert!(at("a", 5).is_newer_than(&at("a", 4)));
        assert!(!at("a", 4).is_newer_than(&at("a", 4)));
        assert!(at("b", 6).is_newer_than(&at("a", 5)));
        assert!(!at("b", 2).is_newer_than(&at("a", 1000)));
        assert!(!at("", 7).is_newer_than(&at("a", 1)));
        assert!(at("a", 0).is_newer_than(&at("", -1)));
        // Read from the database: another generation wins whatever its version.
        assert!(at("b", 2).supersedes(&at("a", 1000)));
        assert!(!at("a", 3).supersedes(&at("a", 3)));
        assert!(at("a", 4).supersedes(&at("a", 3)));
        assert!(!at("", 0).supersedes(&at("a", 1000)));
        assert!(at("a", 0).supersedes(&at("", 0)));
    }

    fn snapshot(count: i64, sums: &[i64]) -> Snapshot {
        Snapshot {
            generation: "g".into(),
            version: 1,
            total_submissions: count,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            totals: sums
                .iter()
                .enumerate()
                .map(|(i, &sum_hundredths)| CategoryTotal {
                    category_id: CategoryId(i as i32 + 1),
                    sum_hundredths,
                })
                .collect(),
            source: SnapshotSource::Summary,
        }
    }

    fn raw(averages: Vec<(CategoryId, Hundredths)>) -> Vec<u16> {
        averages.into_iter().map(|(_, h)| h.raw()).collect()
    }

    #[test]
    fn averages_of_three_thirds_still_add_up_to_hundred() {
        // Three submissions: 100/0/0, 0/100/0, 0/0/100 → each exactly 33.333…
        let s = snapshot(3, &[10_000, 10_000, 10_000]);
        assert_eq!(raw(s.averages(&categories(3))), vec![3334, 3333, 3333]);
    }

    #[test]
    fn a_missing_category_counts_as_zero() {
        let s = snapshot(2, &[15_000, 5_000]);
        assert_eq!(raw(s.averages(&categories(3))), vec![7500, 2500, 0]);
    }

    #[test]
    fn no_submissions_means_all_zero() {
        let s = snapshot(0, &[]);
        assert_eq!(raw(s.averages(&categories(2))), vec![0, 0]);
    }

    #[test]
    fn serialises_without_the_source() {
        let s = snapshot(1, &[10_000]).with_source(SnapshotSource::Live);
        let json = serde_json::to_string(&s).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.source, SnapshotSource::Summary);
        assert_eq!(back.totals, s.totals);
    }

    proptest! {
        #[test]
        fn averages_always_add_up_to_exactly_hundred(
            submissions in proptest::collection::vec(proptest::collection::vec(0u32..=10_000, 4), 1..50)
        ) {
            // Turn each random vector into a valid 5-way split of 10000 hundredths.
            let mut sums = [0i64; 5];
            for cuts in &submissions {
                let mut cuts = cuts.clone();
                cuts.sort_unstable();
                let mut bounds = vec![0];
                bounds.extend(cuts);
                bounds.push(10_000);
                for (i, w) in bounds.windows(2).enumerate() {
                    sums[i] += i64::from(w[1] - w[0]);
                }
            }
            let s = snapshot(submissions.len() as i64, &sums);
            let averages = s.averages(&categories(5));
            let total: u32 = averages.iter().map(|(_, h)| u32::from(h.raw())).sum();
            prop_assert_eq!(total, 10_000);
            // Each rounded average is within one hundredth of the exact one.
            for ((_, h), sum) in averages.iter().zip(sums) {
                let exact = sum as f64 / submissions.len() as f64;
                prop_assert!((f64::from(h.raw()) - exact).abs() < 1.0);
            }
        }
    }
}
