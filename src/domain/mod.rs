//! Pure rules of the allocator: no I/O, no async, no database types.
//!
//! Everything inside works in integer hundredths of a percent so that sums are exact;
//! floating point appears only where a value enters (`Hundredths::from_percent`) or leaves
//! (`Hundredths::as_percent`) the system.

pub mod allocation;
pub mod category;
pub mod distribution;
pub mod fold;
pub mod hundredths;
pub mod snapshot;
pub mod trend;

pub use allocation::{
    validate_allocation, AllocationError, AllocationProblem, InputLocation, RawAllocation,
    ValidAllocation,
};
pub use category::{Category, CategoryId};
pub use distribution::{
    DetailedSnapshot, Distribution, DistributionError, HistogramBucket, ValueCount,
};
pub use fold::{FoldDelta, FoldedRow};
pub use hundredths::{Hundredths, PercentError};
pub use snapshot::{CategoryTotal, Snapshot, SnapshotSource};
pub use trend::{BucketSums, Resolution, TrendError, TrendPoint, TrendRange, TrendRows};
