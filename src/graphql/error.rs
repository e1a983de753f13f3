//! The one place where internal errors become GraphQL errors.
//!
//! Every error a client sees has `extensions.code`; input errors also say which `field` was
//! wrong (and, for allocations, every problem found). Internal details are logged here and
//! never sent.

use async_graphql::{Error, ErrorExtensions, ServerError, Value};

use crate::domain::AllocationError;
use crate::error_code::ErrorCode;
use crate::store::StoreError;
use crate::submissions::{AuthError, SealError, SubmitError};

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadUserInput {
        message: String,
        field: String,
        problems: Vec<Problem>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// An idempotency key sent again with another payload. Its own code, not
    /// `BAD_USER_INPUT`: the input is valid, and only a new key makes it a new submission.
    #[error("{message}")]
    IdempotencyKeyReused { message: String, field: String },
    #[error("too many submissions from your address; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Reads from one address beyond their budget of query cost per minute.
    #[error(
        "too many queries from your address (a query cost budget of {per_minute} per minute); \
         try again in {retry_after_secs} s"
    )]
    ReadRateLimited {
        retry_after_secs: u64,
        per_minute: u32,
    },
    /// Refused before running: the query would cost more than one request may.
    #[error(
        "the query costs at least {cost}, above the limit of {limit} per request: ask for \
         fewer items (`first`), fields or aliases, or split it"
    )]
    QueryTooCostly { cost: usize, limit: usize },
    /// Refused before running: selections (or fragment spreads) nested beyond the limit.
    #[error("the query is nested too deep: {what} {depth}, the limit is {limit}")]
    QueryTooDeep {
        what: &'static str,
        depth: usize,
        limit: usize,
    },
    /// Refused before running: a fragment that spreads itself, directly or not.
    #[error("fragment `{0}` spreads itself")]
    FragmentCycle(String),
    #[error("introspection (`__schema`, `__type`) is disabled on this server")]
    IntrospectionDisabled,
    /// Too many costly queries are running (this one was not started), or a read waited too
    /// long for its turn at the database. Nothing was written.
    #[error("the server is too busy to answer this now; try again in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The database cannot be reached or is overloaded: nothing was written, and the same
    /// request may succeed later (with an idempotency key, retrying is always safe).
    #[error("the service cannot reach its database right now; nothing was saved, try again")]
    Unavailable,
    #[error("internal error; it has been logged")]
    Internal,
}

impl ApiError {
    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadUserInput {
            problems: vec![Problem {
                field: field.to_owned(),
                message: message.clone(),
            }],
            field: field.to_owned(),
            message,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadUserInput { .. } => ErrorCode::BadUserInput,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::IdempotencyKeyReused { .. } => ErrorCode::IdempotencyKeyReused,
            ApiError::RateLimited { .. } | ApiError::ReadRateLimited { .. } => {
                ErrorCode::RateLimited
            }
            ApiError::QueryTooCostly { .. } => ErrorCode::QueryTooCostly,
            ApiError::QueryTooDeep { .. } => ErrorCode::QueryTooDeep,
            ApiError::FragmentCycle(_) => ErrorCode::GraphqlValidationFailed,
            ApiError::IntrospectionDisabled => ErrorCode::IntrospectionDisabled,
            ApiError::Overloaded { .. } => ErrorCode::Overloaded,
            ApiError::Unavailable => ErrorCode::ServiceUnavailable,
            ApiError::Internal => ErrorCode::Internal,
        }
    }

    /// As an error of the whole request (parsing, validation), which has no path or location.
    pub fn into_server_error(self) -> ServerError {
        let error = self.extend();
        let mut server_error = ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> Error {
        Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                ApiError::RateLimited { retry_after_secs }
                | ApiError::ReadRateLimited {
                    retry_after_secs, ..
                }
                | ApiError::Overloaded { retry_after_secs } => {
                    ext.set("retryAfterSeconds", *retry_after_secs);
                }
                ApiError::QueryTooCostly { cost, limit } => {
                    ext.set("cost", *cost);
                    ext.set("maxCost", *limit);
                }
                ApiError::QueryTooDeep { depth, limit, .. } => {
                    ext.set("depth", *depth);
                    ext.set("maxDepth", *limit);
                }
                _ => {}
            }
            if let ApiError::IdempotencyKeyReused { field, .. } = self {
                ext.set("field", field.as_str());
            }
            if let ApiError::BadUserInput {
                field, problems, ..
            } = self
            {
                ext.set("field", field.as_str());
                let list: Vec<Value> = problems
                    .iter()
                    .map(|p| {
                        let mut entry = async_graphql::indexmap::IndexMap::new();
                        entry.insert(
                            async_graphql::Name::new("field"),
                            Value::from(p.field.as_str()),
                        );
                        entry.insert(
                            async_graphql::Name::new("message"),
                            Value::from(p.message.as_str()),
                        );
                        Value::Object(entry)
                    })
                    .collect();
                ext.set("problems", Value::List(list));
            }
        })
    }
}

impl From<AllocationError> for ApiError {
    fn from(err: AllocationError) -> Self {
        let problems: Vec<Problem> = err
            .problems
            .iter()
            .map(|p| Problem {
                field: format!("input.{}", p.location()),
                message: p.to_string(),
            })
            .collect();
        let field = problems
            .first()
            .map(|p| p.field.clone())
            .unwrap_or_else(|| "input.allocations".into());
        let message = problems
            .iter()
            .map(|p| p.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::BadUserInput {
            message,
            field,
            problems,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::Unavailable;
        }
        tracing::error!(error = %err, "store error");
        ApiError::Internal
    }
}

impl From<SealError> for ApiError {
    fn from(err: SealError) -> Self {
        tracing::error!(error = %err, "sealed voter token");
        ApiError::Internal
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Store(e) => e.into(),
            other => ApiError::Unauthenticated(other.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(err: SubmitError) -> Self {
        match err {
            SubmitError::Invalid(e) => e.into(),
            SubmitError::BadIdempotencyKey(e) => {
                ApiError::bad_input("input.idempotencyKey", e.to_string())
            }
            SubmitError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused {
                message: err.to_string(),
                field: "input.idempotencyKey".into(),
            },
            SubmitError::SealedToken(e) => e.into(),
            SubmitError::Auth(e) => e.into(),
            SubmitError::RateLimited(limited) => ApiError::RateLimited {
                retry_after_secs: limited.retry_after_secs(),
            },
            SubmitError::Store(e) => e.into(),
        }
    }
}

/// `result.or_gql()?` in resolvers: maps any of our errors to a GraphQL error with a code.
pub trait OrGraphqlError<T> {
    fn or_gql(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<ApiError>> OrGraphqlError<T> for Result<T, E> {
    fn or_gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.into().extend())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_says_when_to_retry() {
        let error = ApiError::RateLimited {
            retry_after_secs: 12,
        }
        .extend();
        assert_eq!(
            error.message,
            "too many submissions from your address; try again in 12 s"
        );
        let extensions = serde_json::to_value(error.extensions).unwrap();
        assert_eq!(
            extensions,
            serde_json::json!({ "code": "RATE_LIMITED", "retryAfterSeconds": 12 })
        );
    }

    #[test]
    fn a_reused_idempotency_key_has_its_own_code_and_names_the_key() {
        let error = ApiError::from(SubmitError::IdempotencyKeyReused).extend();
        assert!(
            error.message.contains("idempotencyKey"),
            "{}",
            error.message
        );
        let extensions = serde_json::to_value(error.extensions).unwrap();
        assert_eq!(
            extensions,
            serde_json::json!({ "code": "IDEMPOTENCY_KEY_REUSED", "field": "input.idempotencyKey" })
        );
    }

    #[test]
    fn request_level_refusals_name_the_limit() {
        let error = ApiError::QueryTooCostly {
            cost: 290_000,
            limit: 10_000,
        }
        .into_server_error();
        assert!(error.message.contains("290000"), "{}", error.message);
        assert!(error.message.contains("10000"), "{}", error.message);
        assert!(error.locations.is_empty() && error.path.is_empty());
        let extensions = serde_json::to_value(error.extensions).unwrap();
        assert_eq!(
            extensions,
            serde_json::json!({ "code": "QUERY_TOO_COSTLY", "cost": 290_000, "maxCost": 10_000 })
        );
        let deep = ApiError::QueryTooDeep {
            what: "depth",
            depth: 33,
            limit: 20,
        }
        .into_server_error();
        assert_eq!(
            deep.message,
            "the query is nested too deep: depth 33, the limit is 20"
        );
    }
}
