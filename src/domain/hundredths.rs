//! A percentage as an integer number of hundredths of a percent (0..=10000).

use std::fmt;

/// 100 % expressed in hundredths.
pub const FULL: u32 = 10_000;

/// A percentage between 0 and 100 with at most two decimals, stored exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hundredths(u16);

/// Why a number is not an acceptable percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PercentError {
    #[error("is not a number")]
    NotFinite,
    #[error("is negative")]
    Negative,
    #[error("is over 100")]
    OverHundred,
    #[error("has more than two decimals")]
    TooManyDecimals,
}

impl Hundredths {
    pub const ZERO: Hundredths = Hundredths(0);

    /// Accepts a percentage given as a float, as it arrives from JSON.
    ///
    /// JSON numbers like `33.33` are not exact in binary, so "at most two decimals" means the
    /// value is exactly the double nearest to some `n / 100`: that double is what parsing the
    /// text `33.33` gives, and what `3333.0 / 100.0` gives too (IEEE division rounds
    /// correctly). Anything else, however close (`10.000000001`, `1e-9`), has a third decimal
    /// somewhere and is refused rather than silently rounded.
    pub fn from_percent(value: f64) -> Result<Self, PercentError> {
        if !value.is_finite() {
            return Err(PercentError::NotFinite);
        }
        if value < 0.0 {
            return Err(PercentError::Negative);
        }
        if value > 100.0 {
            return Err(PercentError::OverHundred);
        }
        let rounded = (value * 100.0).round();
        if rounded / 100.0 != value {
            return Err(PercentError::TooManyDecimals);
        }
        // In range 0..=10000 after the checks above, so the cast cannot truncate.
        Ok(Hundredths(rounded as u16))
    }

    /// From a stored integer; `None` when outside 0..=10000.
    pub fn from_raw(raw: i64) -> Option<Self> {
        u16::try_from(raw)
            .ok()
            .filter(|v| u32::from(*v) <= FULL)
            .map(Hundredths)
    }

    pub fn raw(self) -> u16 {
        self.0
    }

    /// The percentage as a float, for the edge of the API only.
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_two_decimals_and_bounds() {
        assert_eq!(Hundredths::from_percent(0.0).map(Hundredths::raw), Ok(0));
        assert_eq!(
            Hundredths::from_percent(100.0).map(Hundredths::raw),
            Ok(10_000)
        );
        assert_eq!(
            Hundredths::from_percent(33.33).map(Hundredths::raw),
            Ok(3333)
        );
        assert_eq!(Hundredths::from_percent(0.01).map(Hundredths::raw), Ok(1));
        assert_eq!(
            Hundredths::from_percent(12.5).map(Hundredths::raw),
            Ok(1250)
        );
    }

    #[test]
    fn rejects_what_is_not_a_percentage() {
        assert_eq!(Hundredths::from_percent(-0.01), Err(PercentError::Negative));
        assert_eq!(
            Hundredths::from_percent(100.01),
            Err(PercentError::OverHundred)
        );
        assert_eq!(
            Hundredths::from_percent(10.001),
            Err(PercentError::TooManyDecimals)
        );
        assert_eq!(
            Hundredths::from_percent(33.335),
            Err(PercentError::TooManyDecimals)
        );
        // A hair off a hundredth is a third decimal too, not a rounding error to forgive.
        for almost in [10.000000001, 9.999999999, 1e-9, 33.330000000001] {
            assert_eq!(
                Hundredths::from_percent(almost),
                Err(PercentError::TooManyDecimals),
                "{almost}"
            );
        }
        assert_eq!(
            Hundredths::from_percent(f64::NAN),
            Err(PercentError::NotFinite)
        );
        assert_eq!(
            Hundredths::from_percent(f64::INFINITY),
            Err(PercentError::NotFinite)
        );
    }

    #[test]
    fn two_decimals_pass_however_binary_stores_them() {
        assert_eq!(Hundredths::from_percent(33.33), Ok(Hundredths(3333)));
        assert_eq!(Hundredths::from_percent(0.07), Ok(Hundredths(7)));
        assert_eq!(Hundredths::from_percent(100.0), Ok(Hundredths(10_000)));
    }

    #[test]
    fn displays_with_two_decimals() {
        assert_eq!(Hundredths(1205).to_string(), "12.05");
        assert_eq!(Hundredths(10_000).to_string(), "100.00");
    }

    proptest! {
        #[test]
        fn every_hundredth_round_trips_through_its_decimal_text(raw in 0u16..=10_000) {
            // The value a client sends is the decimal text, parsed as f64 by the JSON reader.
            let text = Hundredths(raw).to_string();
            let parsed: f64 = text.parse().unwrap();
            prop_assert_eq!(Hundredths::from_percent(parsed), Ok(Hundredths(raw)));
            prop_assert_eq!(Hundredths(raw).as_percent(), parsed);
        }

        #[test]
        fn a_third_decimal_is_always_refused(raw in 0u32..100_000, ) {
            prop_assume!(raw % 10 != 0);
            let value: f64 = format!("{}.{:03}", raw / 1000, raw % 1000).parse().unwrap();
            prop_assert_eq!(Hundredths::from_percent(value), Err(PercentError::TooManyDecimals));
        }
    }
}
