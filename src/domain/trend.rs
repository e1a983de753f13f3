//! The national average over time: sums kept per time bucket (minute, hour, day, in UTC),
//! and the running average at the end of each bucket computed from them.
//!
//! A trend read must not grow with the number of submissions or with the service's age, so
//! what came before the first bucket asked for is added up from the coarsest buckets that fit:
//! whole days, then the hours of the first bucket's day, then the minutes of its hour.

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};

use super::category::{Category, CategoryId};
use super::hundredths::Hundredths;
use super::snapshot::{CategoryTotal, Snapshot, SnapshotSource};

/// The most buckets one trend read covers: a day of minutes fits.
pub const MAX_TREND_BUCKETS: i64 = 1500;

/// How long a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    /// The name the store keeps it under.
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    pub fn step(self) -> TimeDelta {
        match self {
            Resolution::Minute => Duration::minutes(1),
            Resolution::Hour => Duration::hours(1),
            Resolution::Day => Duration::days(1),
        }
    }

    /// The start of the bucket that holds `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        // Truncating to a whole minute, hour or day of the epoch cannot fail for any time
        // chrono represents; `at` itself is the fallback should it ever.
        at.duration_trunc(self.step()).unwrap_or(at)
    }
}

/// Why a trend cannot be read for the range asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrendError {
    #[error("from must not be after to")]
    Reversed,
    #[error("the range covers more than {MAX_TREND_BUCKETS} buckets; use a longer bucket or a shorter range")]
    TooLong,
}

/// The buckets a trend read covers: from the start of `from`'s bucket up to the end of `to`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrendRange {
    pub resolution: Resolution,
    pub from: DateTime<Utc>,
    /// Exclusive: the end of the last bucket.
    pub until: DateTime<Utc>,
}

impl TrendRange {
    /// The range from `from` (by default `first`, the first bucket that has submissions, at
    /// most [`MAX_TREND_BUCKETS`] before `to`) to `to`.
    pub fn new(
        resolution: Resolution,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
        first: Option<DateTime<Utc>>,
    ) -> Result<Self, TrendError> {
        let until = resolution.floor(to) + resolution.step();
        let earliest = until - resolution.step() * MAX_TREND_BUCKETS as i32;
        let from = match from {
            Some(from) if from > to => return Err(TrendError::Reversed),
            Some(from) if resolution.floor(from) < earliest => return Err(TrendError::TooLong),
            Some(from) => resolution.floor(from),
            None => first
                .map(|first| resolution.floor(first).clamp(earliest, until))
                .unwrap_or(until - resolution.step()),
        };
        Ok(TrendRange {
            resolution,
            from,
            until,
        })
    }

    /// What lies before `from`, as (resolution, start at or after, start before) ranges of
    /// stored buckets that together cover all of it exactly once.
    pub fn before(&self) -> Vec<(Resolution, Option<DateTime<Utc>>, DateTime<Utc>)> {
        let day = Resolution::Day.floor(self.from);
        let hour = Resolution::Hour.floor(self.from);
        match self.resolution {
            Resolution::Day => vec![(Resolution::Day, None, self.from)],
            Resolution::Hour => vec![
                (Resolution::Day, None, day),
                (Resolution::Hour, Some(day), self.from),
            ],
            Resolution::Minute => vec![
                (Resolution::Day, None, day),
                (Resolution::Hour, Some(day), hour),
                (Resolution::Minute, Some(hour), self.from),
            ],
        }
    }
}

/// Submissions and sums of one bucket, or of everything before the range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketSums {
    pub submissions: i64,
    pub totals: Vec<CategoryTotal>,
}

impl BucketSums {
    pub fn add(&mut self, category_id: CategoryId, sum_hundredths: i64) {
        match self
            .totals
            .iter_mut()
            .find(|t| t.category_id == category_id)
        {
            Some(total) => total.sum_hundredths += sum_hundredths,
            None => self.totals.push(CategoryTotal {
                category_id,
                sum_hundredths,
            }),
        }
    }

    fn add_all(&mut self, other: &BucketSums) {
        self.submissions += other.submissions;
        for total in &other.totals {
            self.add(total.category_id, total.sum_hundredths);
        }
    }
}

/// What the store read for a trend, in one transaction with the summary's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendRows {
    pub range: TrendRange,
    pub version: i64,
    pub source: SnapshotSource,
    pub before: BucketSums,
    /// Buckets with submissions in the range, by start, ascending.
    pub buckets: Vec<(DateTime<Utc>, BucketSums)>,
}

/// The national average at the end of one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendPoint {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub submissions: i64,
    pub total_submissions: i64,
    /// Every active category in display order, rounded as [`Snapshot::averages`] rounds.
    pub averages: Vec<(CategoryId, Hundredths)>,
}

impl TrendRows {
    /// One point per bucket, each with the running average over everything up to its end.
    pub fn points(&self, categories: &[Category]) -> Vec<TrendPoint> {
        let mut running = self.before.clone();
        self.buckets
            .iter()
            .map(|(start, sums)| {
                running.add_all(sums);
                let snapshot = Snapshot {
                    total_submissions: running.submissions,
                    totals: running.totals.clone(),
                    ..Snapshot::empty(self.version, *start)
                };
                TrendPoint {
                    start: *start,
                    end: *start + self.range.resolution.step(),
                    submissions: sums.submissions,
                    total_submissions: running.submissions,
                    averages: snapshot.averages(categories),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::allocation::tests::categories;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    #[test]
    fn buckets_start_on_whole_utc_units() {
        let t = at("2026-11-27T23:58:41.5Z");
        assert_eq!(Resolution::Minute.floor(t), at("2026-11-27T23:58:00Z"));
        assert_eq!(Resolution::Hour.floor(t), at("2026-11-27T23:00:00Z"));
        assert_eq!(Resolution::Day.floor(t), at("2026-11-27T00:00:00Z"));
    }

    #[test]
    fn a_range_covers_whole_buckets_and_refuses_too_many() {
        let to = at("2026-11-27T12:30:10Z");
        let r =
            TrendRange::new(Resolution::Hour, Some(at("2026-11-27T01:10:00Z")), to, None).unwrap();
        assert_eq!(r.from, at("2026-11-27T01:00:00Z"));
        assert_eq!(r.until, at("2026-11-27T13:00:00Z"));
        assert_eq!(
            TrendRange::new(Resolution::Hour, Some(at("2026-11-28T00:00:00Z")), to, None),
            Err(TrendError::Reversed)
        );
        assert_eq!(
            TrendRange::new(
                Resolution::Minute,
                Some(at("2026-11-25T00:00:00Z")),
                to,
                None
            ),
            Err(TrendError::TooLong)
        );
        // Without `from`: the first bucket with data, but no more than the bound allows.
        let first = Some(at("2020-01-01T00:00:00Z"));
        let r = TrendRange::new(Resolution::Minute, None, to, first).unwrap();
        assert_eq!((r.until - r.from).num_minutes(), MAX_TREND_BUCKETS);
        let r =
            TrendRange::new(Resolution::Day, None, to, Some(at("2024-01-01T06:00:00Z"))).unwrap();
        assert_eq!(r.from, at("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn what_came_before_is_read_from_the_coarsest_buckets() {
        let r = TrendRange::new(
            Resolution::Minute,
            Some(at("2026-11-27T12:34:00Z")),
            at("2026-11-27T13:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(
            r.before(),
            vec![
                (Resolution::Day, None, at("2026-11-27T00:00:00Z")),
                (
                    Resolution::Hour,
                    Some(at("2026-11-27T00:00:00Z")),
                    at("2026-11-27T12:00:00Z")
                ),
                (
                    Resolution::Minute,
                    Some(at("2026-11-27T12:00:00Z")),
                    at("2026-11-27T12:34:00Z")
                ),
            ]
        );
    }

    #[test]
    fn points_carry_the_running_average() {
        let range = TrendRange::new(
            Resolution::Hour,
            Some(at("2026-11-27T10:00:00Z")),
            at("2026-11-27T12:00:00Z"),
            None,
        )
        .unwrap();
        let sums = |submissions, a, b| {
            let mut s = BucketSums {
                submissions,
                ..BucketSums::default()
            };
            s.add(CategoryId(1), a);
            s.add(CategoryId(2), b);
            s
        };
        let rows = TrendRows {
            range,
            version: 7,
            source: SnapshotSource::Summary,
            // Before the range: one submission of 100/0.
            before: sums(1, 10_000, 0),
            buckets: vec![
                (at("2026-11-27T10:00:00Z"), sums(1, 0, 10_000)),
                (at("2026-11-27T12:00:00Z"), sums(2, 0, 20_000)),
            ],
        };
        let points = rows.points(&categories(2));
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].total_submissions, 2);
        assert_eq!(points[0].submissions, 1);
        assert_eq!(points[0].end, at("2026-11-27T11:00:00Z"));
        let raw = |p: &TrendPoint| p.averages.iter().map(|(_, h)| h.raw()).collect::<Vec<_>>();
        assert_eq!(raw(&points[0]), vec![5000, 5000]);
        assert_eq!(raw(&points[1]), vec![2500, 7500]);
    }
}
