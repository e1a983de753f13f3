//! A document validated once: after it has passed async-graphql's full validation, a request
//! that sends it again with other variables needs only its variables checked.
//!
//! async-graphql's full (`Strict`) validation walks the whole document on every request, and
//! checks each argument's value with a copy of the variables put in: about a tenth of the
//! instructions of a `submitAllocation`, almost all of it the ten allocation objects. Of its
//! rules, only that check of argument values depends on the variables; the others give the
//! same answer for the same document every time. So a document that passed once runs on a
//! second schema that validates `Fast` (cost and depth only), as long as every variable its
//! arguments take would pass that check: a [`Check`] read from the registry once answers it,
//! and answers "no" wherever it is not sure. A request whose variables it does not accept is
//! validated in full, as before, and gets the same errors as before.
//!
//! Only documents simple enough for the check to be exact take part (see [`plan`]): one
//! operation, no fragments, no directives, and each argument either a value without variables
//! (the same every time, checked when the document passed) or exactly one variable.

use std::sync::{Arc, OnceLock};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry, ScalarValidatorFn};
use async_graphql::{SchemaEnv, Value as ConstValue, Variables};
use async_graphql_value::Value;

/// A parsed document, and once it has passed the full validation, what a request sending it
/// again needs to skip that.
pub struct KeptDocument {
    document: ExecutableDocument,
    /// Set when the document first passes the full validation: `None` when it is not simple
    /// enough for [`plan`].
    learned: OnceLock<Option<VariableChecks>>,
}

impl KeptDocument {
    pub fn new(document: ExecutableDocument) -> Self {
        KeptDocument {
            document,
            learned: OnceLock::new(),
        }
    }

    pub fn document(&self) -> &ExecutableDocument {
        &self.document
    }

    /// Whether a request still has to say if the document passes the full validation.
    pub fn learning(&self) -> bool {
        self.learned.get().is_none()
    }

    /// Whether a request sending the document with `variables` gets nothing from the full
    /// validation that the fast one does not give it.
    pub fn skips_validation(&self, variables: &Variables) -> bool {
        match self.learned.get() {
            Some(Some(checks)) => checks.accept(variables),
            _ => false,
        }
    }

    /// The document passed the full validation of the schema of `env`.
    fn passed(&self, env: &SchemaEnv) {
        self.learned
            .get_or_init(|| plan(&env.registry, &self.document));
    }
}

/// Put in a request's data by the transport: the full validation of this request is the
/// kept document's (the limits extension tells it when it passes).
#[derive(Clone)]
pub struct LearnsValidation(pub Arc<KeptDocument>);

impl LearnsValidation {
    pub fn passed(&self, env: &SchemaEnv) {
        self.0.passed(env);
    }
}

/// For each argument that takes a variable: the variable's name, and the check of the
/// argument's type.
struct VariableChecks(Vec<(String, Check)>);

impl VariableChecks {
    /// Whether every variable is accepted by the argument it is given to. A variable that
    /// is not sent is not checked, as the full validation does not check it either (the
    /// execution reports it, on either schema).
    fn accept(&self, variables: &Variables) -> bool {
        self.0.iter().all(|(name, check)| {
            variables
                .get(name.as_str())
                .is_none_or(|value| check.accepts(value))
        })
    }
}

/// The variable checks of `document`, a document that passed the full validation, when it is
/// simple enough that they say all that the full validation would say of its variables.
fn plan(registry: &Registry, document: &ExecutableDocument) -> Option<VariableChecks> {
    if !document.fragments.is_empty() {
        return None;
    }
    let operation = match &document.operations {
        DocumentOperations::Single(operation) => operation,
        DocumentOperations::Multiple(operations) if operations.len() == 1 => {
            operations.values().next()?
        }
        DocumentOperations::Multiple(_) => return None,
    };
    let operation = &operation.node;
    let no_directives = operation.directives.is_empty()
        && operation
            .variable_definitions
            .iter()
            .all(|definition| definition.node.directives.is_empty());
    if !no_directives {
        return None;
    }
    let root = match operation.ty {
        OperationType::Query => registry.query_type.as_str(),
        OperationType::Mutation => registry.mutation_type.as_deref()?,
        // Not run over HTTP.
        OperationType::Subscription => return None,
    };
    let mut checks = Vec::new();
    collect(registry, root, &operation.selection_set.node, &mut checks)?;
    Some(VariableChecks(checks))
}

fn collect(
    registry: &Registry,
    parent: &str,
    selections: &SelectionSet,
    checks: &mut Vec<(String, Check)>,
) -> Option<()> {
    let parent = registry.types.get(parent)?;
    for selection in &selections.items {
        let Selection::Field(field) = &selection.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() {
            return None;
        }
        let name = field.name.node.as_str();
        if name == "__typename" && field.arguments.is_empty() {
            continue;
        }
        let meta = parent.field_by_name(name)?;
        for (argument, value) in &field.arguments {
            match &value.node {
                Value::Variable(variable) => {
                    let argument = meta.args.get(argument.node.as_str())?;
                    let check = Check::of(registry, &argument.ty, 0)?;
                    checks.push((variable.to_string(), check));
                }
                // Checked when the document passed, and the same every time.
                literal if !has_variables(literal) => {}
                _ => return None,
            }
        }
        if !field.selection_set.node.items.is_empty() {
            let ty = MetaTypeName::concrete_typename(&meta.ty);
            collect(registry, ty, &field.selection_set.node, checks)?;
        }
    }
    Some(())
}

fn has_variables(value: &Value) -> bool {
    match value {
        Value::Variable(_) => true,
        Value::List(items) => items.iter().any(has_variables),
        Value::Object(fields) => fields.values().any(has_variables),
        _ => false,
    }
}

/// Input types nested deeper than this are not checked here (a recursive input type would
/// never end): their documents are validated in full every time.
const MAX_CHECK_DEPTH: usize = 16;

/// What async-graphql's full validation asks of a value of one input type, read from the
/// registry once (a name looked up per value would cost as much as the validation saved).
/// Written after its `validation::utils::is_valid_input_value`, which is not public, with no
/// message to build: [`Check::accepts`] may say `false` where it would accept (an input
/// object given as something else, a one-of input object, a type it does not know), never
/// `true` where it would refuse.
enum Check {
    NonNull(Box<Check>),
    List(Box<Check>),
    Scalar(Option<ScalarValidatorFn>),
    Enum(Vec<String>),
    Object(Vec<InputField>),
    /// Never accepted: the full validation says.
    Unsure,
}

struct InputField {
    name: String,
    check: Check,
    /// Non-null without a default.
    required: bool,
}

impl Check {
    fn of(registry: &Registry, ty: &str, depth: usize) -> Option<Check> {
        if depth > MAX_CHECK_DEPTH {
            return None;
        }
        Some(match MetaTypeName::create(ty) {
            MetaTypeName::NonNull(inner) => {
                Check::NonNull(Box::new(Check::of(registry, inner, depth + 1)?))
            }
            MetaTypeName::List(inner) => {
                Check::List(Box::new(Check::of(registry, inner, depth + 1)?))
            }
            MetaTypeName::Named(name) => match registry.types.get(name) {
                Some(MetaType::Scalar { is_valid, .. }) => Check::Scalar(is_valid.clone()),
                Some(MetaType::Enum { enum_values, .. }) => {
                    Check::Enum(enum_values.keys().cloned().collect())
                }
                Some(MetaType::InputObject {
                    input_fields,
                    oneof: false,
                    ..
                }) => Check::Object(
                    input_fields
                        .values()
                        .map(|field| {
                            Some(InputField {
                                name: field.name.clone(),
                                check: Check::of(registry, &field.ty, depth + 1)?,
                                required: MetaTypeName::create(&field.ty).is_non_null()
                                    && field.default_value.is_none(),
                            })
                        })
                        .collect::<Option<_>>()?,
                ),
                _ => Check::Unsure,
            },
        })
    }

    fn accepts(&self, value: &ConstValue) -> bool {
        match (self, value) {
            (Check::NonNull(_), ConstValue::Null) => false,
            (Check::NonNull(inner), value) => inner.accepts(value),
            (Check::List(inner), ConstValue::List(items)) => {
                items.iter().all(|item| inner.accepts(item))
            }
            (Check::List(_), ConstValue::Null) => true,
            // One value where a list goes is a list of one.
            (Check::List(inner), single) => inner.accepts(single),
            (_, ConstValue::Null) => true,
            (Check::Scalar(None), _) => true,
            (Check::Scalar(Some(is_valid)), value) => is_valid(value),
            (Check::Enum(names), ConstValue::Enum(name)) => {
                names.iter().any(|n| n == name.as_str())
            }
            (Check::Enum(names), ConstValue::String(name)) => names.iter().any(|n| n == name),
            (Check::Object(fields), ConstValue::Object(values)) => {
                // Every value a field's and accepted by it, and every required field there
                // (the keys of an object are distinct).
                let mut required = 0;
                for (key, value) in values {
                    let Some(field) = fields.iter().find(|f| f.name == key.as_str()) else {
                        return false;
                    };
                    if !field.check.accepts(value) {
                        return false;
                    }
                    required += usize::from(field.required);
                }
                required == fields.iter().filter(|f| f.required).count()
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_graphql::extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextValidation,
    };
    use async_graphql::parser::parse_query;
    use async_graphql::{Request, ServerError, ValidationResult};
    use serde_json::{json, Value as Json};

    use super::*;

    const SUBMIT: &str = "mutation Submit($input: SubmitAllocationInput!) { \
        submitAllocation(input: $input) { voterToken submission { id } } }";

    /// Runs the real schema's full validation and stops there (no resolver runs): records
    /// whether it passed, and tells a kept document when it did, as the limits extension does.
    struct StopAfterValidation(Arc<Mutex<Option<bool>>>);

    impl ExtensionFactory for StopAfterValidation {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(StopAfterValidation(self.0.clone()))
        }
    }

    #[async_trait::async_trait]
    impl Extension for StopAfterValidation {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            let passed = next.run(ctx).await.is_ok();
            *self.0.lock().unwrap() = Some(passed);
            if let (true, Some(learns)) = (passed, ctx.data_opt::<LearnsValidation>()) {
                learns.passed(ctx.schema_env);
            }
            Err(vec![ServerError::new("stopped after validation", None)])
        }
    }

    /// Whether the full validation passes `query` with `variables`, teaching `kept`.
    async fn full_validation(query: &str, variables: &Json, kept: &Arc<KeptDocument>) -> bool {
        let passed = Arc::new(Mutex::new(None));
        let schema = crate::graphql::builder()
            .extension(StopAfterValidation(passed.clone()))
            .finish();
        let request = Request::new(query)
            .variables(Variables::from_json(variables.clone()))
            .data(LearnsValidation(kept.clone()));
        schema.execute(request).await;
        let passed = passed.lock().unwrap().take();
        passed.expect("validation ran")
    }

    fn kept(query: &str) -> Arc<KeptDocument> {
        Arc::new(KeptDocument::new(parse_query(query).expect("parses")))
    }

    fn allocations(entries: Vec<Json>) -> Json {
        json!({ "input": { "allocations": entries } })
    }

    fn ten() -> Vec<Json> {
        (1..=10)
            .map(|id| json!({ "categoryId": id.to_string(), "percentage": 10 }))
            .collect()
    }

    fn with(entry: usize, value: Json) -> Json {
        let mut entries = ten();
        entries[entry] = value;
        allocations(entries)
    }

    #[tokio::test]
    async fn skips_the_full_validation_only_where_it_would_pass() {
        let kept = kept(SUBMIT);
        assert!(kept.learning());
        // Before the document has passed, nothing skips it.
        assert!(!kept.skips_validation(&Variables::from_json(allocations(ten()))));
        assert!(full_validation(SUBMIT, &allocations(ten()), &kept).await);
        assert!(!kept.learning());

        let cases = [
            ("valid", allocations(ten())),
            (
                "fractional percentages",
                with(0, json!({ "categoryId": "1", "percentage": 10.25 })),
            ),
            (
                "a numeric category id",
                with(0, json!({ "categoryId": 1, "percentage": 10 })),
            ),
            (
                "a key",
                json!({ "input": { "allocations": ten(), "idempotencyKey": "k" } }),
            ),
            (
                "a null key",
                json!({ "input": { "allocations": ten(), "idempotencyKey": null } }),
            ),
            ("no allocations", allocations(vec![])),
            (
                "one allocation not in a list",
                json!({ "input": { "allocations": { "categoryId": "1", "percentage": 100 } } }),
            ),
            (
                "a percentage as a string",
                with(3, json!({ "categoryId": "4", "percentage": "ten" })),
            ),
            (
                "a null percentage",
                with(3, json!({ "categoryId": "4", "percentage": null })),
            ),
            (
                "a boolean percentage",
                with(3, json!({ "categoryId": "4", "percentage": true })),
            ),
            (
                "an object as percentage",
                with(3, json!({ "categoryId": "4", "percentage": { "v": 1 } })),
            ),
            (
                "a missing percentage",
                with(3, json!({ "categoryId": "4" })),
            ),
            (
                "a null category id",
                with(3, json!({ "categoryId": null, "percentage": 10 })),
            ),
            (
                "a boolean category id",
                with(3, json!({ "categoryId": false, "percentage": 10 })),
            ),
            (
                "a fractional category id",
                with(3, json!({ "categoryId": 4.5, "percentage": 10 })),
            ),
            (
                "an unknown field in an allocation",
                with(
                    3,
                    json!({ "categoryId": "4", "percentage": 10, "weight": 1 }),
                ),
            ),
            ("an allocation that is a string", with(3, json!("4:10"))),
            ("a null allocation", with(3, json!(null))),
            (
                "an allocation that is a list",
                with(3, json!([{ "categoryId": "4", "percentage": 10 }])),
            ),
            (
                "null allocations",
                json!({ "input": { "allocations": null } }),
            ),
            (
                "allocations as a string",
                json!({ "input": { "allocations": "all" } }),
            ),
            ("no allocations field", json!({ "input": {} })),
            (
                "an unknown field in the input",
                json!({ "input": { "allocations": ten(), "voter": "me" } }),
            ),
            (
                "a numeric key",
                json!({ "input": { "allocations": ten(), "idempotencyKey": 42 } }),
            ),
            (
                "a key that is a list",
                json!({ "input": { "allocations": ten(), "idempotencyKey": ["k"] } }),
            ),
            ("a null input", json!({ "input": null })),
            (
                "an input that is a string",
                json!({ "input": "everything" }),
            ),
            (
                "an input that is a list",
                json!({ "input": [{ "allocations": ten() }] }),
            ),
            ("no variables", json!({})),
            ("another variable only", json!({ "other": 1 })),
        ];
        let mut skipped = Vec::new();
        for (name, variables) in cases {
            let skips = kept.skips_validation(&Variables::from_json(variables.clone()));
            let passes = full_validation(SUBMIT, &variables, &kept).await;
            assert!(passes || !skips, "{name}: skipped a validation that fails");
            if skips {
                skipped.push(name);
            }
        }
        // What the check lets skip: the valid inputs, so that they take the fast schema. (A
        // missing variable is the execution's to report, on either schema.)
        assert_eq!(
            skipped,
            [
                "valid",
                "fractional percentages",
                "a numeric category id",
                "a key",
                "a null key",
                "no allocations",
                "one allocation not in a list",
                "no variables",
                "another variable only",
            ]
        );
    }

    #[tokio::test]
    async fn only_documents_the_check_covers_exactly_skip_it() {
        let valid = allocations(ten());
        let covered = [
            SUBMIT,
            // The web app's, as it sends it.
            "\n  mutation Submit($input: SubmitAllocationInput!) {\n    submitAllocation(input: $input) {\n      submission {\n        id\n      }\n      voterToken\n    }\n  }\n",
            "mutation($input: SubmitAllocationInput!) { a: submitAllocation(input: $input) { __typename } }",
            "query($id: ID!) { submission(id: $id) { id } categories { id } }",
        ];
        for query in covered {
            let kept = kept(query);
            let variables =
                json!({ "input": valid["input"], "id": "00000000-0000-0000-0000-000000000000" });
            assert!(full_validation(query, &variables, &kept).await, "{query}");
            assert!(
                kept.skips_validation(&Variables::from_json(variables)),
                "{query}"
            );
        }
        let not_covered = [
            // A fragment, a directive, two operations, a variable inside a value.
            "mutation($input: SubmitAllocationInput!) { submitAllocation(input: $input) { ...P } } \
             fragment P on SubmitAllocationPayload { voterToken }",
            "mutation($input: SubmitAllocationInput!, $v: Boolean!) { \
             submitAllocation(input: $input) { voterToken @include(if: $v) } }",
            "mutation A($input: SubmitAllocationInput!) { submitAllocation(input: $input) { voterToken } } \
             query B { categories { id } }",
            "mutation($a: [AllocationInput!]!) { submitAllocation(input: { allocations: $a }) { voterToken } }",
        ];
        for query in not_covered {
            let kept = kept(query);
            let variables =
                json!({ "input": valid["input"], "a": valid["input"]["allocations"], "v": true });
            assert!(full_validation(query, &variables, &kept).await, "{query}");
            assert!(!kept.learning(), "{query}");
            assert!(
                !kept.skips_validation(&Variables::from_json(variables)),
                "{query}"
            );
        }
    }
}
