//! The `extensions.code`s the API answers with, as one closed list.
//!
//! Every error a client can receive names one of these, the metrics count outcomes by them
//! (anything else would be counted as `other`), and the README lists them: one enum, so that a
//! code added in one place cannot be missing from the others. Its own module, beside the
//! GraphQL layer and the metrics rather than in either, since both use it.

use async_graphql::Value;

/// Declares [`ErrorCode`] with its wire names and [`ErrorCode::ALL`] from one list, so that
/// `ALL` cannot leave a variant out.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $code:literal,)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order declared.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as the client receives it in `extensions.code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    /// A request that cannot be read as one: a body that is not JSON (or not of a JSON media
    /// type), a bad Automatic Persisted Queries extension, a mutation over GET.
    BadRequest => "BAD_REQUEST",
    /// A value the API refuses; `extensions.field` says where.
    BadUserInput => "BAD_USER_INPUT",
    /// A document that does not validate against the schema.
    GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
    /// An idempotency key first sent with other allocations.
    IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
    /// Anything unexpected; details are logged, never sent.
    Internal => "INTERNAL",
    /// `__schema` or `__type` on a server that disables introspection.
    IntrospectionDisabled => "INTROSPECTION_DISABLED",
    /// An `Accept` header that allows no media type the server answers with.
    NotAcceptable => "NOT_ACCEPTABLE",
    /// Too many costly queries or database reads at once.
    Overloaded => "OVERLOADED",
    /// A persisted query's hash the server does not know (Apollo clients then send the query).
    PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
    /// A query costing more than one request may.
    QueryTooCostly => "QUERY_TOO_COSTLY",
    /// A query nested deeper than allowed.
    QueryTooDeep => "QUERY_TOO_DEEP",
    /// An address beyond its budget of submissions or of query cost.
    RateLimited => "RATE_LIMITED",
    /// The database cannot be reached or ran out of time; nothing was written.
    ServiceUnavailable => "SERVICE_UNAVAILABLE",
    /// More operations at once on one WebSocket than allowed.
    TooManyOperations => "TOO_MANY_OPERATIONS",
    /// A voter token that is malformed or unknown.
    Unauthenticated => "UNAUTHENTICATED",
}

impl ErrorCode {
    /// The code named `code`, if the API has it.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|known| known.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for Value {
    fn from(code: ErrorCode) -> Value {
        Value::from(code.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("bad_user_input"), None);
        assert_eq!(ErrorCode::parse("SOMETHING_ELSE"), None);
    }

    #[test]
    fn codes_are_distinct_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name}"
            );
        }
        assert_eq!(seen.len(), 15);
    }

    /// The README's list of codes is the one clients read: every code the API can send is in it.
    #[test]
    fn the_readme_lists_every_code() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let section = readme
            .split("\n### Errors\n")
            .nth(1)
            .and_then(|rest| rest.split("\n### ").next())
            .expect("README has an Errors section");
        let missing: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|code| !section.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "not in README's Errors: {missing:?}");
    }
}
