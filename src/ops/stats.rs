//! `tax-budget stats`: how much is stored, how far the worker is behind, which summary and
//! cache versions there are, and which tier a read would use now. It only reads, like
//! `verify`: the caller connects without migrating, and nothing backfills the cache.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cache::{CacheError, SnapshotCache};
use crate::store::{Store, StoreError, StoreStats, SummaryState};
use crate::verify::CacheView;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot read the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read the cache: {0}")]
    Cache(#[source] CacheError),
}

/// The tier `aggregates` is answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReadTier {
    Cache,
    Summary,
    Live,
}

impl fmt::Display for ReadTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadTier::Cache => "CACHE",
            ReadTier::Summary => "SUMMARY",
            ReadTier::Live => "LIVE",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub submissions: i64,
    pub voters: i64,
    pub outbox: OutboxStats,
    /// `None` before the first fold.
    pub summary: Option<SummaryStats>,
    pub cache: CacheStats,
    /// Where a read in a serving process would be answered from now, see [`read_tier`].
    pub read_tier: ReadTier,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxStats {
    /// Submissions stored but not yet folded into the summary.
    pub depth: i64,
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// How long the oldest of them has waited; `None` with an empty outbox.
    pub age_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryStats {
    pub version: i64,
    pub generation: String,
    pub total_submissions: i64,
    pub stale: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CacheStats {
    /// No Redis: each serving process keeps its own cache in memory, out of this one's reach.
    InProcess,
    Empty,
    /// A value that does not decode as a snapshot.
    Unreadable,
    Holds {
        version: i64,
        generation: String,
        total_submissions: i64,
        /// Whether it belongs to the summary now stored, so that readers trust it.
        same_generation: bool,
    },
}

/// Reads the cache (`None`: there is no shared one), then the store.
pub async fn collect(
    store: &dyn Store,
    cache: Option<&dyn SnapshotCache>,
) -> Result<Stats, StatsError> {
    // The cache first, as `verify` does: a fold between the two reads leaves the cache looking
    // behind the summary, which it then is, rather than ahead of it.
    let cache = CacheView::read(cache).await.map_err(StatsError::Cache)?;
    let stored = store.stats().await?;
    Ok(assemble(stored, &cache, Utc::now()))
}

/// What [`collect`] read, put together as of `now`.
pub fn assemble(stored: StoreStats, cache: &CacheView, now: DateTime<Utc>) -> Stats {
    let read_tier = read_tier(stored.summary.as_ref(), cache);
    let summary_generation = stored.summary.as_ref().map(|s| s.generation.as_str());
    let cache = match cache {
        CacheView::InProcess => CacheStats::InProcess,
        CacheView::Empty => CacheStats::Empty,
        CacheView::Unreadable => CacheStats::Unreadable,
        CacheView::Holds(snapshot) => CacheStats::Holds {
            version: snapshot.version,
            generation: snapshot.generation.clone(),
            total_submissions: snapshot.total_submissions,
            same_generation: summary_generation.unwrap_or("") == snapshot.generation,
        },
    };
    let age_seconds = stored
        .oldest_outbox_at
        .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
    Stats {
        submissions: stored.submissions,
        voters: stored.voters,
        outbox: OutboxStats {
            depth: stored.outbox_depth,
            oldest_created_at: stored.oldest_outbox_at,
            age_seconds,
        },
        summary: stored.summary.map(|s| SummaryStats {
            version: s.version,
            generation: s.generation,
            total_submissions: s.total_submissions,
            stale: s.stale,
            updated_at: s.updated_at,
        }),
        cache,
        read_tier,
    }
}

/// The tier a read would use now, in a serving process that has read the database once.
///
/// The same rule as `Aggregates::read` (src/aggregates.rs), which has no pure function to
/// share: it decides with the process's feed, which knows the summary's generation after one
/// read. So: a cached snapshot of the summary's generation answers (also when behind: a
/// process whose feed is ahead then answers from the feed, as CACHE too; and before the first
/// fold, when the generation is empty and the cache holds a version-0 live answer); else a
/// summary not marked stale; else live SQL. Without Redis the caches are in the serving
/// processes, out of sight, so this says what answers below them.
pub fn read_tier(summary: Option<&SummaryState>, cache: &CacheView) -> ReadTier {
    let generation = summary.map_or("", |s| s.generation.as_str());
    if let CacheView::Holds(cached) = cache {
        if cached.generation == generation {
            return ReadTier::Cache;
        }
    }
    match summary {
        Some(summary) if !summary.stale => ReadTier::Summary,
        _ => ReadTier::Live,
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "{name:<14}{value}")
        };
        row(f, "submissions", self.submissions.to_string())?;
        row(f, "voters", self.voters.to_string())?;
        let outbox = match self.outbox.age_seconds {
            Some(age) => format!(
                "{} not yet folded, oldest waiting {age:.1} s",
                self.outbox.depth
            ),
            None => format!("{} not yet folded", self.outbox.depth),
        };
        row(f, "outbox", outbox)?;
        let summary = match &self.summary {
            Some(s) => format!(
                "version {}, {} submissions, {}, generation {}, updated {}",
                s.version,
                s.total_submissions,
                if s.stale {
                    "STALE (a rebuild is running or died)"
                } else {
                    "fresh"
                },
                short(&s.generation),
                s.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
            ),
            None => "none yet (created by the first fold)".to_owned(),
        };
        row(f, "summary", summary)?;
        row(f, "cache", self.cache_line())?;
        let tier = match (&self.cache, self.read_tier) {
            (CacheStats::InProcess, tier) => format!(
                "{tier} (below each server's in-process cache, which answers first once \
                 filled)"
            ),
            (_, tier) => tier.to_string(),
        };
        row(f, "read tier", tier)
    }
}

impl Stats {
    fn cache_line(&self) -> String {
        match &self.cache {
            CacheStats::InProcess => {
                "in-process (no REDIS_URL): each server's own, not visible here".to_owned()
            }
            CacheStats::Empty => "empty (the next read fills it)".to_owned(),
            CacheStats::Unreadable => {
                "unreadable value (`tax-budget cache reset` repairs it)".to_owned()
            }
            CacheStats::Holds {
                version,
                same_generation: false,
                ..
            } => format!("version {version} of another summary generation (not trusted)"),
            CacheStats::Holds {
                version,
                total_submissions,
                ..
            } => {
                let summary = self.summary.as_ref().map_or(0, |s| s.version);
                let relation = match version.cmp(&summary) {
                    std::cmp::Ordering::Equal => "= summary".to_owned(),
                    std::cmp::Ordering::Less => {
                        format!("behind the summary by {}", summary - version)
                    }
                    std::cmp::Ordering::Greater => {
                        format!("AHEAD of the summary by {}", version - summary)
                    }
                };
                format!("version {version}, {total_submissions} submissions ({relation})")
            }
        }
    }
}

/// The first characters of a generation, enough to tell two apart on a screen.
fn short(generation: &str) -> &str {
    if generation.is_empty() {
        return "(none)";
    }
    generation.get(..8).unwrap_or(generation)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::Snapshot;

    /// A snapshot as the cache would hold it.
    fn cached(generation: &str, version: i64) -> CacheView {
        CacheView::Holds(Snapshot {
            generation: generation.into(),
            ..Snapshot::empty(version, DateTime::<Utc>::UNIX_EPOCH)
        })
    }

    fn summary(generation: &str, version: i64, stale: bool) -> SummaryState {
        SummaryState {
            generation: generation.into(),
            version,
            total_submissions: 3,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            stale,
        }
    }

    #[test]
    fn the_read_tier_follows_the_read_path() {
        let fresh = summary("g", 5, false);
        let stale = summary("g", 5, true);
        assert_eq!(read_tier(Some(&fresh), &cached("g", 5)), ReadTier::Cache);
        // Behind: the cache (or a serving process's newer feed) still answers.
        assert_eq!(read_tier(Some(&fresh), &cached("g", 4)), ReadTier::Cache);
        assert_eq!(
            read_tier(Some(&fresh), &cached("other", 9)),
            ReadTier::Summary
        );
        assert_eq!(
            read_tier(Some(&fresh), &CacheView::Empty),
            ReadTier::Summary
        );
        assert_eq!(
            read_tier(Some(&fresh), &CacheView::InProcess),
            ReadTier::Summary
        );
        assert_eq!(
            read_tier(Some(&fresh), &CacheView::Unreadable),
            ReadTier::Summary
        );
        // A rebuild marks the summary stale; a cache of its generation still answers.
        assert_eq!(read_tier(Some(&stale), &CacheView::Empty), ReadTier::Live);
        assert_eq!(read_tier(Some(&stale), &cached("g", 5)), ReadTier::Cache);
        // Before the first fold: live, and the version-0 live answers a server cached.
        assert_eq!(read_tier(None, &CacheView::Empty), ReadTier::Live);
        assert_eq!(read_tier(None, &cached("", 0)), ReadTier::Cache);
    }

    #[test]
    fn the_outbox_age_is_that_of_its_oldest_row() {
        let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(100);
        let stored = StoreStats {
            submissions: 7,
            voters: 2,
            outbox_depth: 4,
            oldest_outbox_at: Some(now - TimeDelta::milliseconds(2500)),
            summary: Some(summary("g", 5, false)),
        };
        let stats = assemble(stored, &cached("g", 5), now);
        assert_eq!(stats.outbox.age_seconds, Some(2.5));
        assert_eq!(stats.read_tier, ReadTier::Cache);
        let json = serde_json::to_value(&stats).expect("json");
        assert_eq!(json["outbox"]["depth"], 4);
        assert_eq!(json["cache"]["state"], "holds");
        assert_eq!(json["cache"]["same_generation"], true);
        assert_eq!(json["read_tier"], "CACHE");
        let text = stats.to_string();
        assert!(
            text.contains("outbox        4 not yet folded, oldest waiting 2.5 s"),
            "{text}"
        );
        assert!(
            text.contains("cache         version 5, 0 submissions (= summary)"),
            "{text}"
        );
        assert!(text.ends_with("read tier     CACHE\n"), "{text}");
    }

    #[test]
    fn an_empty_database_reads_live() {
        let stored = StoreStats {
            submissions: 0,
            voters: 0,
            outbox_depth: 0,
            oldest_outbox_at: None,
            summary: None,
        };
        let stats = assemble(stored, &CacheView::Empty, Utc::now());
        assert_eq!(stats.read_tier, ReadTier::Live);
        assert_eq!(stats.outbox.age_seconds, None);
        let json = serde_json::to_value(&stats).expect("json");
        assert_eq!(json["summary"], serde_json::Value::Null);
        assert_eq!(json["cache"], serde_json::json!({ "state": "empty" }));
    }
}
