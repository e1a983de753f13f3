//! Budget categories as the domain sees them.

use std::fmt;

/// The stable identifier of a category (seeded by a migration, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CategoryId(pub i32);

impl fmt::Display for CategoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl CategoryId {
    /// Parses the GraphQL `ID` form; `None` for anything that is not a category id.
    pub fn parse(text: &str) -> Option<Self> {
        let id: i32 = text.trim().parse().ok()?;
        (id > 0).then_some(CategoryId(id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: CategoryId,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// Chart colour as `#rrggbb`.
    pub color: String,
    pub display_order: i32,
    /// Inactive categories stay for history but take no new allocations.
    pub active: bool,
}
