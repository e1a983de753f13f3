//! What a query costs, computed before it runs from the fields it selects, so that the cost
//! follows the work: the database round trips and the values in the answer.
//!
//! async-graphql adds up the fields of the whole document with every fragment inlined and
//! every alias counted on its own; a field costs 1 plus its selections unless it says
//! otherwise (`#[graphql(complexity = …)]` calls the functions below). Lists multiply their
//! selections by how long they can be, and a field that goes to the database adds
//! [`STORE_READ`], so 240 aliases of `mySubmissions(first: 100)` cost what they would do.

/// A field that goes to the database: a pooled connection for one or a few round trips, worth
/// about as much as a hundred values in the answer.
pub const STORE_READ: usize = 100;

/// The longest list of categories a response can hold (the allocations of a submission, the
/// averages of a snapshot, `categories`): one per category. Ten are seeded; categories change
/// only by migration, so a migration that adds some raises this with them.
pub const CATEGORIES: usize = 10;

/// Most submissions `mySubmissions` returns at once.
pub const MAX_PAGE: i32 = 100;

/// A list of at most `len` items, each costing `child`.
pub fn list(len: usize, child: usize) -> usize {
    len.saturating_mul(child).saturating_add(1)
}

/// How many ranges `histogram(buckets:)` returns; out of range it is refused when the field
/// runs, and counted as the nearest bound here.
pub fn histogram_len(buckets: i32) -> usize {
    usize::try_from(buckets.clamp(1, 100)).unwrap_or(1)
}

/// How many points a trend may return: one per bucket between `from` and `to` when both are
/// given (at most [`crate::domain::trend::MAX_TREND_BUCKETS`]); without `from`, the points of
/// a typical range. Only buckets that received submissions are returned, so this is an
/// estimate of the answer's size, not a bound.
pub fn trend_len(buckets_between: Option<i64>) -> usize {
    const TYPICAL_POINTS: i64 = 100;
    let len = buckets_between
        .unwrap_or(TYPICAL_POINTS)
        .clamp(1, crate::domain::trend::MAX_TREND_BUCKETS);
    usize::try_from(len).unwrap_or(1)
}

/// A page of stored submissions: one read, then `first` items. `first` outside 1..=MAX_PAGE is
/// refused when the field runs; it is counted as the nearest bound here.
pub fn page(first: i32, child: usize) -> usize {
    let len = usize::try_from(first.clamp(1, MAX_PAGE)).unwrap_or(1);
    STORE_READ.saturating_add(list(len, child))
}

/// One stored item (a submission by id, the aggregates).
pub fn read(child: usize) -> usize {
    STORE_READ.saturating_add(child).saturating_add(1)
}

/// A write: a database round trip, like a read.
pub fn write(child: usize) -> usize {
    read(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cost_by_their_length_and_clamp_it() {
        assert_eq!(page(1, 3), STORE_READ + 4);
        assert_eq!(page(100, 3), STORE_READ + 301);
        assert_eq!(page(100_000, 3), page(100, 3));
        assert_eq!(page(-5, 3), page(1, 3));
        assert_eq!(list(usize::MAX, 2), usize::MAX);
    }
}
