//! Counts every GraphQL request the schema answers (over HTTP or WebSocket) by operation name
//! and outcome, with its duration; and names the codes of requests that never ran.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
};
use async_graphql::{Request, Response, ServerResult, Value};

use crate::error_code::ErrorCode;
use crate::metrics::Metrics;

/// async-graphql's message for a hash it does not know, which Apollo clients look for.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PersistedQueryNotFound";

/// The code of an error that stopped a request before it ran (parsing, validation, Automatic
/// Persisted Queries), which async-graphql gives none: values of the wrong type for an
/// argument or variable are bad input, like any other; the rest (unknown fields, syntax) is a
/// malformed request. The limits' refusals carry codes of their own (QUERY_TOO_COSTLY,
/// QUERY_TOO_DEEP, RATE_LIMITED, OVERLOADED, …).
///
/// Automatic Persisted Queries' errors keep async-graphql's messages, which Apollo clients
/// match (`PersistedQueryNotFound` makes them send the query with its hash).
pub fn request_error_code(message: &str) -> ErrorCode {
    if message == PERSISTED_QUERY_NOT_FOUND {
        ErrorCode::PersistedQueryNotFound
    } else if message == "provided sha does not match query"
        || message.contains("\"PersistedQuery\" extension")
    {
        ErrorCode::BadRequest
    } else if is_bad_value(message) {
        ErrorCode::BadUserInput
    } else {
        ErrorCode::GraphqlValidationFailed
    }
}

/// async-graphql's messages for a value that is not of its input type.
fn is_bad_value(message: &str) -> bool {
    [
        "Invalid value for argument",
        "Failed to parse",
        "Expected input type",
    ]
    .iter()
    .any(|prefix| message.starts_with(prefix))
}

/// A variable that passed validation can still fail to read as its input type when the field
/// runs (a string where a list of objects goes): async-graphql then fails the field with no
/// code. It is bad input all the same.
fn code_bad_values(response: &mut Response) {
    for error in &mut response.errors {
        let coded = error
            .extensions
            .as_ref()
            .is_some_and(|extensions| extensions.get("code").is_some());
        if !coded && is_bad_value(&error.message) {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", ErrorCode::BadUserInput);
        }
    }
}

/// The code the first error of `response` has, or will be given by the transport; `None`
/// without errors.
fn outcome(response: &Response) -> Option<String> {
    let error = response.errors.first()?;
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(Value::String(code)) => Some(code.clone()),
        _ if error.path.is_empty() && response.data == Value::Null => {
            Some(request_error_code(&error.message).as_str().to_owned())
        }
        _ => Some(ErrorCode::Internal.as_str().to_owned()),
    }
}

/// Installs the request metrics on a schema; registered first, so it sees the final answer.
pub struct RequestMetrics(pub Metrics);

impl ExtensionFactory for RequestMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ObservedRequest {
            metrics: self.0.clone(),
            operation: Mutex::default(),
        })
    }
}

struct ObservedRequest {
    metrics: Metrics,
    operation: Mutex<Option<String>>,
}

impl ObservedRequest {
    fn name(&self, operation: Option<String>) {
        *self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = operation;
    }
}

#[async_trait::async_trait]
impl Extension for ObservedRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let mut response = next.run(ctx).await;
        code_bad_values(&mut response);
        let operation = self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.metrics.graphql_request(
            operation.as_deref(),
            outcome(&response).as_deref(),
            started.elapsed(),
        );
        response
    }

    /// Names the operation as execution will pick it: the name sent, else the name of the
    /// document's only operation. Looked at after the other extensions have prepared the
    /// request, so that a persisted query sent by hash alone has its document.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.name(request.operation_name.clone());
        let mut request = next.run(ctx, request).await?;
        if request.operation_name.is_none() {
            if let Ok(doc) = request.parsed_query() {
                let mut operations = doc.operations.iter();
                if let (Some((Some(name), _)), None) = (operations.next(), operations.next()) {
                    self.name(Some(name.to_string()));
                }
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{ErrorExtensionValues, ServerError};

    use super::*;

    fn error(message: &str, code: Option<&str>) -> ServerError {
        let mut error = ServerError::new(message, None);
        if let Some(code) = code {
            let mut extensions = ErrorExtensionValues::default();
            extensions.set("code", code);
            error.extensions = Some(extensions);
        }
        error
    }

    fn code(error: &ServerError) -> Option<&Value> {
        error.extensions.as_ref()?.get("code")
    }

    #[test]
    fn values_not_of_their_input_type_are_bad_input_and_other_codes_stay() {
        let mut response = Response::from_errors(vec![
            error(
                r#"Expected input type "AllocationInput", found "ten"."#,
                None,
            ),
            error(
                "Failed to parse \"Int\": not an integer",
                Some("SOMETHING_ELSE"),
            ),
            error("database went away", None),
        ]);
        code_bad_values(&mut response);
        let codes: Vec<_> = response.errors.iter().map(code).collect();
        assert_eq!(codes[0], Some(&Value::from("BAD_USER_INPUT")));
        assert_eq!(codes[1], Some(&Value::from("SOMETHING_ELSE")));
        // Not an input error: left as it was, without extensions at all.
        assert!(response.errors[2].extensions.is_none());
        assert_eq!(outcome(&response).as_deref(), Some("BAD_USER_INPUT"));
    }
}
