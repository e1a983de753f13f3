//! The rule for a valid allocation: exactly one entry per active category, each a percentage
//! with at most two decimals, adding up to exactly 100.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use super::category::{Category, CategoryId};
use super::hundredths::{Hundredths, PercentError, FULL};

/// More entries than this is refused outright, before looking at any of them, so a hostile
/// list costs nothing to reject.
pub const MAX_ENTRIES: usize = 100;

/// One entry as it arrives from a client, not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RawAllocation<'a> {
    pub category_id: &'a str,
    pub percentage: f64,
}

/// An allocation that passed every rule: one entry per active category, in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAllocation {
    entries: Vec<(CategoryId, Hundredths)>,
}

impl ValidAllocation {
    pub fn entries(&self) -> &[(CategoryId, Hundredths)] {
        &self.entries
    }
}

/// Where in the input a problem is: the whole list, or one entry's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputLocation {
    List,
    CategoryId(usize),
    Percentage(usize),
}

impl fmt::Display for InputLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputLocation::List => write!(f, "allocations"),
            InputLocation::CategoryId(i) => write!(f, "allocations[{i}].categoryId"),
            InputLocation::Percentage(i) => write!(f, "allocations[{i}].percentage"),
        }
    }
}

/// One thing wrong with an allocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationProblem {
    #[error("the allocation list is empty; give one percentage per category")]
    Empty,
    #[error("the allocation list has {given} entries; at most {max} are accepted")]
    TooManyEntries { given: usize, max: usize },
    #[error("unknown category id \"{id}\"")]
    UnknownCategory { index: usize, id: String },
    #[error("category \"{name}\" is no longer open for allocations")]
    InactiveCategory { index: usize, name: String },
    #[error("category \"{name}\" appears more than once")]
    DuplicateCategory { index: usize, name: String },
    #[error("the percentage for \"{name}\" {reason}: it must be between 0 and 100 with at most two decimals")]
    BadPercentage {
        index: usize,
        name: String,
        reason: PercentError,
    },
    #[error("missing categories: {}; give a percentage (0 is fine) for each", names.join(", "))]
    MissingCategories { names: Vec<String> },
    #[error("the percentages add up to {total}, not 100")]
    SumNotHundred { total: String },
}

impl AllocationProblem {
    /// Which input the problem is about, so a form can show it next to the right field.
    pub fn location(&self) -> InputLocation {
        match self {
            AllocationProblem::UnknownCategory { index, .. }
            | AllocationProblem::InactiveCategory { index, .. }
            | AllocationProblem::DuplicateCategory { index, .. } => {
                InputLocation::CategoryId(*index)
            }
            AllocationProblem::BadPercentage { index, .. } => InputLocation::Percentage(*index),
            AllocationProblem::Empty
            | AllocationProblem::TooManyEntries { .. }
            | AllocationProblem::MissingCategories { .. }
            | AllocationProblem::SumNotHundred { .. } => InputLocation::List,
        }
    }
}

/// Every problem found in one allocation (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allocation: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct AllocationError {
    pub problems: Vec<AllocationProblem>,
}

/// Checks a raw allocation against the categories.
///
/// Problems with single entries are all reported together; the list-wide checks (missing
/// categories, the sum) only run once every entry is fine, because a sum over entries that
/// are themselves wrong would only add noise.
pub fn validate_allocation(
    raw: &[RawAllocation<'_>],
    categories: &[Category],
) -> Result<ValidAllocation, AllocationError> {
    let fail = |problems| Err(AllocationError { problems });
    if raw.is_empty() {
        return fail(vec![AllocationProblem::Empty]);
    }
    if raw.len() > MAX_ENTRIES {
        return fail(vec![AllocationProblem::TooManyEntries {
            given: raw.len(),
            max: MAX_ENTRIES,
        }]);
    }

    let by_id: BTreeMap<CategoryId, &Category> = categories.iter().map(|c| (c.id, c)).collect();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut given = BTreeMap::new();
    for (index, entry) in raw.iter().enumerate() {
        let Some(category) = CategoryId::parse(entry.category_id).and_then(|id| by_id.get(&id))
        else {
            problems.push(AllocationProblem::UnknownCategory {
                index,
                id: entry.category_id.chars().take(64).collect(),
            });
            continue;
        };
        let name = category.name.clone();
        if !category.active {
            problems.push(AllocationProblem::InactiveCategory { index, name });
            continue;
        }
        if !seen.insert(category.id) {
            problems.push(AllocationProblem::DuplicateCategory { index, name });
            continue;
        }
        match Hundredths::from_percent(entry.percentage) {
            Ok(value) => {
                given.insert(category.id, value);
            }
            Err(reason) => problems.push(AllocationProblem::BadPercentage {
                index,
                name,
                reason,
            }),
        }
    }
    if !problems.is_empty() {
        return fail(problems);
    }

    let mut active: Vec<&Category> = categories.iter().filter(|c| c.active).collect();
    active.sort_by_key(|c| (c.display_order, c.id));
    let missing: Vec<String> = active
        .iter()
        .filter(|c| !given.contains_key(&c.id))
        .map(|c| c.name.clone())
        .collect();
    if !missing.is_empty() {
        return fail(vec![AllocationProblem::MissingCategories {
            names: missing,
        }]);
    }

    let total: u32 = given.values().map(|h| u32::from(h.raw())).sum();
    if total != FULL {
        return fail(vec![AllocationProblem::SumNotHundred {
            total: format!("{}.{:02}", total / 100, total % 100),
        }]);
    }

    Ok(ValidAllocation {
        entries: active.iter().map(|c| (c.id, given[&c.id])).collect(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn categories(n: i32) -> Vec<Category> {
        (1..=n)
            .map(|i| Category {
                id: CategoryId(i),
                slug: format!("c{i}"),
                name: format!("Category {i}"),
                description: String::new(),
                color: "#000000".into(),
                display_order: i,
                active: true,
            })
            .collect()
    }

    fn raw(values: &[(&'static str, f64)]) -> Vec<RawAllocation<'static>> {
        values
            .iter()
            .map(|&(category_id, percentage)| RawAllocation {
                category_id,
                percentage,
            })
            .collect()
    }

    fn problems(values: &[(&'static str, f64)]) -> Vec<AllocationProblem> {
        validate_allocation(&raw(values), &categories(3))
            .expect_err("should be refused")
            .problems
    }

    #[test]
    fn accepts_an_exact_split_in_display_order() {
        let ok = validate_allocation(
            &raw(&[("3", 33.34), ("1", 33.33), ("2", 33.33)]),
            &categories(3),
        )
        .expect("valid");
        let ids: Vec<i32> = ok.entries().iter().map(|(c, _)| c.0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(ok.entries()[2].1.raw(), 3334);
    }

    #[test]
    fn refuses_sums_just_off_hundred() {
        assert_eq!(
            problems(&[("1", 33.33), ("2", 33.33), ("3", 33.33)]),
            vec![AllocationProblem::SumNotHundred {
                total: "99.99".into()
            }]
        );
        assert_eq!(
            problems(&[("1", 33.33), ("2", 33.33), ("3", 33.35)]),
            vec![AllocationProblem::SumNotHundred {
                total: "100.01".into()
            }]
        );
    }

    #[test]
    fn names_the_entry_that_is_wrong() {
        let found = problems(&[("1", -1.0), ("2", 100.5), ("3", 0.001)]);
        let locations: Vec<String> = found.iter().map(|p| p.location().to_string()).collect();
        assert_eq!(
            locations,
            vec![
                "allocations[0].percentage",
                "allocations[1].percentage",
                "allocations[2].percentage"
            ]
        );
    }

    #[test]
    fn refuses_unknown_duplicate_and_missing_categories() {
        assert!(matches!(
            problems(&[("1", 50.0), ("99", 50.0), ("3", 0.0)])[..],
            [AllocationProblem::UnknownCategory { index: 1, .. }]
        ));
        assert!(matches!(
            problems(&[("1", 50.0), ("1", 50.0), ("3", 0.0)])[..],
            [AllocationProblem::DuplicateCategory { index: 1, .. }]
        ));
        assert_eq!(
            problems(&[("1", 50.0), ("2", 50.0)]),
            vec![AllocationProblem::MissingCategories {
                names: vec!["Category 3".into()]
            }]
        );
        assert_eq!(problems(&[]), vec![AllocationProblem::Empty]);
    }

    #[test]
    fn refuses_a_list_far_too_long_without_reading_it() {
        let long: Vec<RawAllocation> = (0..10_000)
            .map(|_| RawAllocation {
                category_id: "1",
                percentage: 0.0,
            })
            .collect();
        let err = validate_allocation(&long, &categories(3)).expect_err("too long");
        assert_eq!(
            err.problems,
            vec![AllocationProblem::TooManyEntries {
                given: 10_000,
                max: MAX_ENTRIES
            }]
        );
    }

    #[test]
    fn inactive_categories_take_no_allocation_and_are_not_required() {
        let mut cats = categories(3);
        cats[2].active = false;
        let err = validate_allocation(&raw(&[("1", 50.0), ("2", 40.0), ("3", 10.0)]), &cats)
            .expect_err("inactive");
        assert!(matches!(
            err.problems[..],
            [AllocationProblem::InactiveCategory { index: 2, .. }]
        ));
        assert!(validate_allocation(&raw(&[("1", 50.0), ("2", 50.0)]), &cats).is_ok());
    }

    proptest! {
        #[test]
        fn any_split_of_ten_thousand_hundredths_is_accepted(cuts in proptest::collection::vec(0u32..=10_000, 9)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(10_000);
            let ids: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
            let values: Vec<f64> = bounds.windows(2).map(|w| f64::from(w[1] - w[0]) / 100.0).collect();
            let raw: Vec<RawAllocation> = ids.iter().zip(&values).map(|(id, v)| RawAllocation { category_id: id, percentage: *v }).collect();
            let ok = validate_allocation(&raw, &categories(10));
            prop_assert!(ok.is_ok(), "{:?}", ok);
            let total: u32 = ok.unwrap().entries().iter().map(|(_, h)| u32::from(h.raw())).sum();
            prop_assert_eq!(total, FULL);
        }
    }
}
