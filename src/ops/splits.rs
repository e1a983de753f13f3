//! Believable demo splits for `tax-budget seed`: reproducible from a seed, varied like people
//! are, and always exactly 10000 hundredths.
//!
//! Each voter has a persona (what they care about: a weight per category slug). Each of their
//! submissions draws one exponential variable per category scaled by that weight (a flat
//! Dirichlet reweighted by the persona), leaves some categories at 0 as people do, and rounds
//! the shares to a precision people use (whole percents, multiples of 5 %, or hundredths) by
//! largest remainder, in integers, so that the split adds up to exactly 100 %.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::hundredths::FULL;
use crate::domain::{Category, CategoryId};

/// A persona: a weight per category slug; a category not named weighs 1.
struct Persona {
    weights: &'static [(&'static str, u32)],
}

/// What voters care about. The slugs are the migrations' categories; unknown ones weigh 1, so
/// categories added later get splits too.
const PERSONAS: &[Persona] = &[
    // Balanced: every category the same.
    Persona { weights: &[] },
    Persona {
        weights: &[("healthcare", 4), ("social-security", 3), ("housing", 2)],
    },
    Persona {
        weights: &[("education", 5), ("science", 2), ("healthcare", 2)],
    },
    Persona {
        weights: &[("defense", 5), ("public-safety", 3), ("infrastructure", 2)],
    },
    Persona {
        weights: &[("environment", 6), ("science", 2), ("infrastructure", 2)],
    },
    Persona {
        weights: &[("infrastructure", 4), ("housing", 3), ("public-safety", 2)],
    },
    Persona {
        weights: &[("science", 4), ("education", 3), ("environment", 2)],
    },
    Persona {
        weights: &[("social-security", 5), ("healthcare", 3), ("other", 2)],
    },
];

/// How likely a category is left at 0 in a submission (at least one category never is).
const ZERO_CHANCE: f64 = 0.2;
/// Weights are integers with this many steps per unit of an exponential draw, so that the
/// rounding below is exact integer arithmetic.
const WEIGHT_SCALE: f64 = 1_000_000.0;

/// Which persona voter `voter` has; a voter keeps theirs across submissions.
pub type PersonaId = u8;

/// Draws splits over a fixed list of categories.
pub struct SplitGenerator {
    rng: StdRng,
    /// Per persona, the weight of each category, in the order of the categories.
    weights: Vec<Vec<u32>>,
}

impl SplitGenerator {
    /// Splits over `categories` (in that order), the same sequence for the same `seed`.
    pub fn new(seed: u64, categories: &[Category]) -> SplitGenerator {
        let weights = PERSONAS
            .iter()
            .map(|persona| {
                categories
                    .iter()
                    .map(|category| {
                        persona
                            .weights
                            .iter()
                            .find(|(slug, _)| *slug == category.slug)
                            .map_or(1, |(_, weight)| *weight)
                    })
                    .collect()
            })
            .collect();
        SplitGenerator {
            rng: StdRng::seed_from_u64(seed),
            weights,
        }
    }

    /// The random numbers the split comes from, for everything else seeding draws (which
    /// voter submits, when), so that one seed reproduces the whole data set.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A persona for a new voter.
    pub fn persona(&mut self) -> PersonaId {
        let index = self.rng.random_range(0..PERSONAS.len());
        PersonaId::try_from(index).unwrap_or(0)
    }

    /// Appends one split (one value per category, adding up to exactly [`FULL`]) to `out`.
    pub fn split(&mut self, persona: PersonaId, out: &mut Vec<i32>) {
        let base = &self.weights[usize::from(persona) % self.weights.len()];
        if base.is_empty() {
            return;
        }
        let keep = self.rng.random_range(0..base.len());
        let weights: Vec<u64> = base
            .iter()
            .enumerate()
            .map(|(i, &weight)| {
                if i != keep && self.rng.random_bool(ZERO_CHANCE) {
                    return 0;
                }
                // Exp(1) by inversion; 1 - u is in (0, 1], so the logarithm is finite.
                let draw = -(1.0 - self.rng.random::<f64>()).ln();
                // At least 1, so that the kept category makes the total positive.
                ((f64::from(weight) * draw * WEIGHT_SCALE) as u64).max(1)
            })
            .collect();
        let quantum = match self.rng.random_range(0..20) {
            0..8 => 100,
            8..13 => 500,
            _ => 1,
        };
        for value in largest_remainder(&weights, FULL / quantum) {
            out.push(i32::try_from(value * quantum).unwrap_or(0));
        }
    }
}

/// Divides `units` among `weights` in proportion, in whole units: each gets the floor of its
/// share, and the units left over go to the largest remainders (ties to the first). The result
/// adds up to exactly `units` when some weight is positive.
pub fn largest_remainder(weights: &[u64], units: u32) -> Vec<u32> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let units_wide = u128::from(units);
    let mut shares: Vec<(u32, u128)> = weights
        .iter()
        .map(|&w| {
            let exact = u128::from(w) * units_wide;
            // Each floor is at most `units`, so it fits.
            let floor = u32::try_from(exact / total).unwrap_or(units);
            (floor, exact % total)
        })
        .collect();
    let given: u32 = shares.iter().map(|(floor, _)| floor).sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &i in order.iter().take(units.saturating_sub(given) as usize) {
        shares[i].0 += 1;
    }
    shares.into_iter().map(|(floor, _)| floor).collect()
}

/// The ids of `categories` that take allocations, in the order splits are drawn for them.
pub fn active_ids(categories: &[Category]) -> Vec<CategoryId> {
    active(categories).iter().map(|c| c.id).collect()
}

/// The categories a valid allocation covers: the active ones, in display order.
pub fn active(categories: &[Category]) -> Vec<Category> {
    let mut active: Vec<Category> = categories.iter().filter(|c| c.active).cloned().collect();
    active.sort_by_key(|c| (c.display_order, c.id));
    active
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::domain::allocation::tests::categories;
    use crate::domain::{validate_allocation, RawAllocation};

    fn draw(seed: u64, count: usize) -> Vec<Vec<i32>> {
        let mut generator = SplitGenerator::new(seed, &categories(10));
        (0..count)
            .map(|_| {
                let persona = generator.persona();
                let mut split = Vec::new();
                generator.split(persona, &mut split);
                split
            })
            .collect()
    }

    #[test]
    fn every_split_is_a_valid_allocation() {
        let cats = categories(10);
        let ids: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        for split in draw(7, 2000) {
            assert_eq!(split.len(), 10);
            assert_eq!(split.iter().sum::<i32>(), 10_000, "{split:?}");
            let raw: Vec<RawAllocation> = ids
                .iter()
                .zip(&split)
                .map(|(id, &h)| RawAllocation {
                    category_id: id,
                    percentage: f64::from(h) / 100.0,
                })
                .collect();
            assert!(validate_allocation(&raw, &cats).is_ok(), "{split:?}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_splits_and_another_does_not() {
        assert_eq!(draw(42, 500), draw(42, 500));
        assert_ne!(draw(42, 500), draw(43, 500));
    }

    #[test]
    fn splits_vary_like_people_do() {
        let splits = draw(1, 1000);
        let distinct: HashSet<&Vec<i32>> = splits.iter().collect();
        assert!(distinct.len() > 950, "{} distinct of 1000", distinct.len());
        let with_zero = splits.iter().filter(|s| s.contains(&0)).count();
        assert!(
            (300..1000).contains(&with_zero),
            "{with_zero} of 1000 leave a category at 0"
        );
        let round = splits
            .iter()
            .filter(|s| s.iter().all(|h| h % 100 == 0))
            .count();
        assert!(
            (300..800).contains(&round),
            "{round} of 1000 in whole percents"
        );
    }

    #[test]
    fn a_persona_favours_its_categories() {
        let mut cats = categories(10);
        cats[0].slug = "environment".into();
        let mut generator = SplitGenerator::new(9, &cats);
        let green = PERSONAS
            .iter()
            .position(|p| {
                p.weights
                    .first()
                    .is_some_and(|(slug, _)| *slug == "environment")
            })
            .and_then(|i| PersonaId::try_from(i).ok())
            .expect("a green persona");
        let mut sum = 0;
        for _ in 0..500 {
            let mut split = Vec::new();
            generator.split(green, &mut split);
            sum += split[0];
        }
        // Weight 6 of 15: far above the 10 % of an even split.
        assert!(sum / 500 > 2500, "mean {}", sum / 500);
    }

    proptest! {
        #[test]
        fn largest_remainder_adds_up_exactly(
            weights in proptest::collection::vec(0u64..u64::MAX / 4, 1..12),
            units in prop_oneof![Just(20u32), Just(100), Just(10_000)],
        ) {
            let shares = largest_remainder(&weights, units);
            let total: u32 = shares.iter().sum();
            if weights.iter().any(|&w| w > 0) {
                prop_assert_eq!(total, units);
            } else {
                prop_assert_eq!(total, 0);
            }
            for (&w, &share) in weights.iter().zip(&shares) {
                if w == 0 {
                    prop_assert_eq!(share, 0);
                }
            }
        }
    }
}
