//! The limits every GraphQL request meets before it runs, over HTTP and WebSocket alike: an
//! async-graphql extension, created once per request.
//!
//! 1. Parsed: introspection refused when it is off; fragments that spread themselves or nest
//!    too deep refused; the size of the document with every fragment inlined counted, so a
//!    document that would be costly only once expanded (a "fragment bomb") is refused before
//!    async-graphql walks it: its nesting check and its cost visitor follow every inlined
//!    copy, and 700 bytes of fragments spreading fragments ten times over kept them busy for
//!    2.7 s (debug build) at 10^6 fields, ten times longer for each further level.
//! 2. Validated: the depth and the cost (see [`super::cost`]) within their limits; then, for
//!    queries, a slot among the costly queries running (load shedding, no queue) and the
//!    client address's budget of cost per minute (subscriptions pay their cost once, at start;
//!    mutations have the submission limit instead).
//!
//! Every refusal is an error with a code and no `data`; the HTTP transport answers 400 for the
//! query's own limits, 429 for the budget and 503 for the shedding, with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{
    Name, Positioned, Request, Response, ServerError, ServerResult, ValidationResult,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::config::QueryLimitsConfig;
use crate::metrics::{Limit, Metrics};
use crate::rate_limit::{ClientKey, RateLimiter};
use crate::submissions::ClientAddr;

/// Deep enough for GraphiQL's introspection query (14), shallow enough to stop abuse.
pub const MAX_DEPTH: usize = 20;
/// Fragments spreading fragments: GraphiQL's introspection goes 3 deep, the web app 2.
pub const MAX_FRAGMENT_NESTING: usize = 10;
/// A query costing this much or more is costly: it runs only in one of the slots of
/// `max_concurrent_costly`. A history page with every field costs 101 + 73 per submission
/// asked for, so `first: 14` or more is costly (the web app's history page asks for 100);
/// the result page costs 349, GraphiQL's introspection query 199.
pub const COSTLY_QUERY: usize = 1_000;
/// What a shed request is told to wait: costly queries take well under a second.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// The limits of one schema, shared by its requests.
pub struct QueryLimits {
    max_cost: usize,
    max_depth: usize,
    introspection: bool,
    /// Cost per minute per client address; `None`: no limit.
    reads: Option<RateLimiter>,
    /// Slots for costly queries; `None`: no limit.
    costly: Option<CostlyQueries>,
    /// Counts the refusals.
    metrics: Metrics,
}

impl QueryLimits {
    pub fn new(config: &QueryLimitsConfig, metrics: Metrics) -> Self {
        QueryLimits {
            metrics,
            max_cost: config.max_cost.max(1),
            max_depth: MAX_DEPTH,
            introspection: config.introspection,
            reads: RateLimiter::per_minute(config.read_cost_per_minute),
            costly: CostlyQueries::new(config.max_concurrent_costly, COSTLY_QUERY),
        }
    }

    pub fn introspection(&self) -> bool {
        self.introspection
    }

    /// The checks that need only the document, before validation.
    pub(crate) fn check_document(&self, doc: &ExecutableDocument) -> Result<(), ApiError> {
        if !self.introspection && uses_introspection(doc) {
            return Err(ApiError::IntrospectionDisabled);
        }
        let size = Expander::new(doc).operations()?;
        if size > self.max_cost {
            return Err(ApiError::QueryTooCostly {
                cost: size,
                limit: self.max_cost,
            });
        }
        Ok(())
    }

    /// Takes a read's cost from the client address's budget. Also for reads answered without
    /// running (prepared answers, see the HTTP transport): the budget counts what a client
    /// asks, whatever it costs the server this time.
    pub fn charge_read(&self, cost: usize, client: Option<ClientAddr>) -> Result<(), ApiError> {
        let (Some(limiter), Some(ClientAddr(ip))) = (&self.reads, client) else {
            return Ok(());
        };
        let units = u32::try_from(cost).unwrap_or(u32::MAX);
        limiter
            .check_cost(ClientKey::from(ip), units)
            .map_err(|limited| {
                self.metrics.rate_limited(Limit::Reads);
                tracing::debug!(
                    cost,
                    retry_after_secs = limited.retry_after_secs(),
                    "read rate-limited"
                );
                ApiError::ReadRateLimited {
                    retry_after_secs: limited.retry_after_secs(),
                    per_minute: limiter.burst(),
                }
            })
    }

    /// The checks of a valid document, with its depth and cost. Returns the slot a costly
    /// query holds while it runs.
    fn admit(
        &self,
        validated: &ValidationResult,
        operation: Option<OperationType>,
        client: Option<ClientAddr>,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if validated.depth > self.max_depth {
            return Err(ApiError::QueryTooDeep {
                what: "depth",
                depth: validated.depth,
                limit: self.max_depth,
            });
        }
        let cost = validated.complexity;
        if cost > self.max_cost {
            return Err(ApiError::QueryTooCostly {
                cost,
                limit: self.max_cost,
            });
        }
        // An operation the document does not have (a wrong name) fails when it runs; until
        // then it counts as a query.
        let slot = match (operation, &self.costly) {
            (Some(OperationType::Mutation | OperationType::Subscription), _) | (_, None) => None,
            (_, Some(costly)) => costly.admit(cost).inspect_err(|_| {
                self.metrics.rate_limited(Limit::CostlyQueries);
            })?,
        };
        // Taken after the slot, so a request shed for load costs the client nothing.
        if operation != Some(OperationType::Mutation) {
            self.charge_read(cost, client)?;
        }
        Ok(slot)
    }
}

/// At most `slots` costly queries at once; the others are refused at once, not queued: a
/// queue would hold their connections and memory, and a client told to retry in a second
/// loses less than one left waiting behind a backlog.
pub struct CostlyQueries {
    slots: Arc<Semaphore>,
    threshold: usize,
}

impl CostlyQueries {
    /// `None` when `slots` is 0 (no limit).
    pub fn new(slots: usize, threshold: usize) -> Option<Self> {
        (slots > 0).then(|| CostlyQueries {
            slots: Arc::new(Semaphore::new(slots)),
            threshold,
        })
    }

    /// A slot for a query of this cost: `None` when it is not costly, refused when none is
    /// free.
    pub fn admit(&self, cost: usize) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if cost < self.threshold {
            return Ok(None);
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Some(slot)),
            Err(_) => {
                tracing::info!(cost, "costly query shed: every slot is taken");
                Err(ApiError::Overloaded {
                    retry_after_secs: SHED_RETRY_AFTER_SECS,
                })
            }
        }
    }
}

/// Installs [`QueryLimits`] on a schema.
pub struct LimitsExtension(pub Arc<QueryLimits>);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLimits {
            limits: self.0.clone(),
            state: Mutex::default(),
        })
    }
}

/// One request's pass through the limits.
struct RequestLimits {
    limits: Arc<QueryLimits>,
    state: Mutex<RequestState>,
}

#[derive(Default)]
struct RequestState {
    operation: Option<OperationType>,
    /// A costly query's slot, from validation until it has run (or until the request is
    /// dropped: the extension goes with it).
    slot: Option<OwnedSemaphorePermit>,
}

impl RequestLimits {
    fn state(&self) -> MutexGuard<'_, RequestState> {
        // Each field is replaced whole; a panic cannot leave the state half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for RequestLimits {
    /// Parses the document here, once (the schema runs the document parsed here), to look at
    /// it before async-graphql walks it: its nesting check already follows every fragment
    /// spread without remembering any, as validation does after it.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let operation_name = request.operation_name.clone();
        // A document that does not parse is reported by the schema, which parses it again.
        if let Ok(doc) = request.parsed_query() {
            self.limits
                .check_document(doc)
                .map_err(ApiError::into_server_error)?;
            self.state().operation = operation_type(doc, operation_name.as_deref());
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let validated = next.run(ctx).await?;
        if let Some(learns) = ctx.data_opt::<super::LearnsValidation>() {
            learns.passed(ctx.schema_env);
        }
        let operation = self.state().operation;
        let client = ctx.data_opt::<ClientAddr>().copied();
        let slot = self
            .limits
            .admit(&validated, operation, client)
            .map_err(|refused| vec![refused.into_server_error()])?;
        self.state().slot = slot;
        if let Some(reads) = ctx.data_opt::<super::SnapshotReads>() {
            reads.set_cost(validated.complexity);
        }
        Ok(validated)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        // Freed as soon as the query has run, not when the response has been sent.
        self.state().slot = None;
        response
    }
}

/// The type of the operation that will run, when the document says.
fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(operation.node.ty),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| operation.node.ty)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .values()
            .next()
            .map(|operation| operation.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Whether any operation or fragment selects `__schema` or `__type` (`__typename` is fine).
fn uses_introspection(doc: &ExecutableDocument) -> bool {
    fn selects(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type")
                    || selects(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => selects(&inline.node.selection_set.node),
            // The fragment itself is looked at below.
            Selection::FragmentSpread(_) => false,
        })
    }
    doc.operations
        .iter()
        .any(|(_, operation)| selects(&operation.node.selection_set.node))
        || doc
            .fragments
            .values()
            .any(|fragment| selects(&fragment.node.selection_set.node))
}

/// Counts the fields of a document's operations with every fragment spread inlined, as
/// async-graphql's cost and depth visitors will walk them, without inlining: each fragment
/// is counted once and remembered. Every field costs at least 1, so this is a lower bound of
/// the cost. Recursion is bounded: selection sets by the parser's nesting limit, fragments
/// by [`MAX_FRAGMENT_NESTING`].
struct Expander<'a> {
    doc: &'a ExecutableDocument,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    sizes: HashMap<&'a str, usize>,
    /// The fragments being counted, outermost first.
    open: Vec<&'a str>,
}

impl<'a> Expander<'a> {
    fn new(doc: &'a ExecutableDocument) -> Self {
        Expander {
            doc,
            fragments: &doc.fragments,
            sizes: HashMap::new(),
            open: Vec::new(),
        }
    }

    /// The fields of every operation (async-graphql counts them all, not only the one that
    /// runs).
    fn operations(mut self) -> Result<usize, ApiError> {
        let doc = self.doc;
        let mut total = 0usize;
        for (_, operation) in doc.operations.iter() {
            total = total.saturating_add(self.selection_set(&operation.node.selection_set.node)?);
        }
        Ok(total)
    }

    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<usize, ApiError> {
        let mut total = 0usize;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(field) => {
                    1usize.saturating_add(self.selection_set(&field.node.selection_set.node)?)
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())?
                }
            };
            total = total.saturating_add(size);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str) -> Result<usize, ApiError> {
        if let Some(&size) = self.sizes.get(name) {
            return Ok(size);
        }
        if self.open.contains(&name) {
            return Err(ApiError::FragmentCycle(name.to_owned()));
        }
        if self.open.len() >= MAX_FRAGMENT_NESTING {
            return Err(ApiError::QueryTooDeep {
                what: "fragment spreads nested",
                depth: self.open.len() + 1,
                limit: MAX_FRAGMENT_NESTING,
            });
        }
        // An unknown fragment is reported by validation.
        let Some(fragment) = self.fragments.get(name) else {
            return Ok(0);
        };
        self.open.push(name);
        let size = self.selection_set(&fragment.node.selection_set.node);
        self.open.pop();
        let size = size?;
        self.sizes.insert(name, size);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// The cost and depth async-graphql computes for `query` on our schema (nothing runs).
    async fn measure(query: &str) -> ValidationResult {
        struct Measure(Arc<Mutex<Option<ValidationResult>>>);
        impl ExtensionFactory for Measure {
            fn create(&self) -> Arc<dyn Extension> {
                Arc::new(Measure(self.0.clone()))
            }
        }
        #[async_trait::async_trait]
        impl Extension for Measure {
            async fn validation(
                &self,
                ctx: &ExtensionContext<'_>,
                next: NextValidation<'_>,
            ) -> Result<ValidationResult, Vec<ServerError>> {
                let validated = next.run(ctx).await?;
                *self.0.lock().unwrap() = Some(validated);
                Err(vec![ServerError::new("measured", None)])
            }
        }
        let measured = Arc::new(Mutex::new(None));
        let schema = super::super::builder()
            .extension(Measure(measured.clone()))
            .finish();
        let response = schema.execute(query).await;
        let validated = *measured.lock().unwrap();
        validated.unwrap_or_else(|| panic!("invalid query: {:?}", response.errors))
    }

    fn doc(query: &str) -> ExecutableDocument {
        parse_query(query).expect("parses")
    }

    const SUBMISSION: &str = "id createdAt allocations { category { id slug name color \
                              displayOrder } percentage }";

    #[tokio::test]
    async fn costs_follow_page_lengths_aliases_and_nesting() {
        let cost = |q: String| async move { measure(&q).await.complexity };
        // A category: 1 + 5 fields; an allocation: its category and percentage; a
        // submission: id, createdAt and a list of 10 allocations.
        let submission = 1 + 1 + (1 + 10 * (6 + 1));
        assert_eq!(submission, 73);
        let history = format!("{{ mySubmissions(first: 100) {{ {SUBMISSION} }} }}");
        assert_eq!(cost(history).await, 100 + 1 + 100 * submission);
        let short = format!("{{ mySubmissions(first: 5) {{ {SUBMISSION} }} }}");
        assert_eq!(cost(short).await, 100 + 1 + 5 * submission);
        // `first` from a variable's default, then the argument's default (20).
        let by_variable = "query($n: Int = 7) { mySubmissions(first: $n) { id } }";
        assert_eq!(cost(by_variable.into()).await, 100 + 1 + 7);
        assert_eq!(cost("{ mySubmissions { id } }".into()).await, 100 + 1 + 20);
        // Aliases each count, and so do fragments once inlined.
        let flood: String = (0..240)
            .map(|i| {
                format!("a{i}: mySubmissions(first: 100) {{ id allocations {{ percentage }} }} ")
            })
            .collect();
        assert_eq!(cost(format!("{{ {flood}}}")).await, 240 * 1_301);
        let fragments = "{ ...S ...S a: mySubmissions(first: 1) { id } } \
                         fragment S on Query { mySubmissions(first: 1) { id } }";
        assert_eq!(cost(fragments.into()).await, 3 * (100 + 1 + 1));
    }

    #[tokio::test]
    async fn what_the_web_app_and_graphiql_cost() {
        // The result page: a submission and the aggregates.
        let result = format!(
            "query($id: ID!) {{ submission(id: $id) {{ {SUBMISSION} }} aggregates {{ version \
             totalSubmissions updatedAt categories {{ category {{ id slug name color \
             displayOrder }} averagePercentage }} }} }}"
        );
        let result = measure(&result).await;
        assert_eq!(result.complexity, (100 + 1 + 73) + (100 + 1 + 3 + 71));
        assert_eq!(result.complexity, 349);
        assert!(result.complexity < COSTLY_QUERY);
        let introspection = measure(INTROSPECTION).await;
        println!(
            "GraphiQL's introspection query costs {}, depth {}",
            introspection.complexity, introspection.depth
        );
        assert!(
            introspection.complexity < COSTLY_QUERY,
            "{}",
            introspection.complexity
        );
        assert!(introspection.depth <= MAX_DEPTH, "{}", introspection.depth);
    }

    #[test]
    fn counts_fields_with_fragments_inlined_and_refuses_cycles() {
        let size = |q: &str| Expander::new(&doc(q)).operations();
        assert_eq!(size("{ a b { c d } }"), Ok(4));
        assert_eq!(
            size("{ ...F ...F } fragment F on Query { a ...G ...G } fragment G on Query { b c }"),
            Ok(2 * (1 + 2 * 2))
        );
        // Both operations count, as async-graphql counts them.
        assert_eq!(size("query A { a } query B { b c }"), Ok(3));
        assert_eq!(
            size("{ ...F } fragment F on Query { a ...G } fragment G on Query { ...F }"),
            Err(ApiError::FragmentCycle("F".into()))
        );
        let mut chain = String::from("{ ...F0 } ");
        for i in 0..MAX_FRAGMENT_NESTING {
            chain.push_str(&format!("fragment F{i} on Query {{ ...F{} }} ", i + 1));
        }
        chain.push_str(&format!(
            "fragment F{MAX_FRAGMENT_NESTING} on Query {{ a }}"
        ));
        assert!(matches!(size(&chain), Err(ApiError::QueryTooDeep { .. })));
        // A fragment bomb is counted without being expanded, and saturates.
        let mut bomb = String::from("{ ...B0 } ");
        for i in 0..9 {
            bomb.push_str(&format!(
                "fragment B{i} on Query {{ {}}} ",
                format!("...B{} ", i + 1).repeat(200)
            ));
        }
        bomb.push_str("fragment B9 on Query { a }");
        assert_eq!(size(&bomb), Ok(usize::MAX));
    }

    #[test]
    fn spots_introspection_and_the_operation_that_runs() {
        assert!(uses_introspection(&doc("{ __schema { types { name } } }")));
        assert!(uses_introspection(&doc(
            "{ ... on Query { __type(name: \"A\") { name } } }"
        )));
        assert!(uses_introspection(&doc(
            "{ ...F } fragment F on Query { __schema { queryType { name } } }"
        )));
        assert!(!uses_introspection(&doc(
            "{ __typename categories { id } }"
        )));

        let two = doc("query A { a } mutation B { b }");
        assert_eq!(
            operation_type(&two, Some("B")),
            Some(OperationType::Mutation)
        );
        assert_eq!(operation_type(&two, Some("A")), Some(OperationType::Query));
        assert_eq!(operation_type(&two, None), None);
        assert_eq!(
            operation_type(&doc("subscription { s }"), None),
            Some(OperationType::Subscription)
        );
    }

    #[test]
    fn sheds_costly_queries_beyond_the_slots_and_lets_cheap_ones_through() {
        assert!(CostlyQueries::new(0, 10).is_none());
        let costly = CostlyQueries::new(2, 10).expect("a limit");
        assert!(costly.admit(9).expect("cheap").is_none());
        let first = costly.admit(10).expect("a slot");
        let second = costly.admit(5_000).expect("a slot");
        assert!(first.is_some() && second.is_some());
        let refused = costly.admit(10).expect_err("no slot left");
        assert_eq!(
            refused,
            ApiError::Overloaded {
                retry_after_secs: SHED_RETRY_AFTER_SECS
            }
        );
        assert!(costly.admit(1).expect("cheap ones still run").is_none());
        drop(first);
        assert!(costly.admit(10).expect("a slot came free").is_some());
    }

    fn validated(complexity: usize, depth: usize) -> ValidationResult {
        ValidationResult {
            cache_control: Default::default(),
            complexity,
            depth,
        }
    }

    #[test]
    fn admits_by_depth_cost_slot_and_budget_in_that_order() {
        let limits = QueryLimits::new(
            &QueryLimitsConfig {
                max_cost: 2_000,
                read_cost_per_minute: 1_500,
                max_concurrent_costly: 1,
                introspection: true,
                prepared_reads: false,
            },
            Metrics::default(),
        );
        let client = Some(ClientAddr("192.0.2.1".parse().unwrap()));
        let query = Some(OperationType::Query);
        assert!(matches!(
            limits.admit(&validated(10, MAX_DEPTH + 1), query, client),
            Err(ApiError::QueryTooDeep {
                depth: 21,
                limit: 20,
                ..
            })
        ));
        assert_eq!(
            limits
                .admit(&validated(2_001, 3), query, client)
                .unwrap_err(),
            ApiError::QueryTooCostly {
                cost: 2_001,
                limit: 2_000
            }
        );
        // A costly query takes the slot and 1,200 of the budget.
        let slot = limits.admit(&validated(1_200, 3), query, client).unwrap();
        assert!(slot.is_some());
        // Shed while it runs, which costs nothing…
        assert!(matches!(
            limits.admit(&validated(1_000, 3), query, client),
            Err(ApiError::Overloaded { .. })
        ));
        // …so 300 are left for cheap reads; mutations spend none.
        assert!(limits.admit(&validated(300, 3), query, client).is_ok());
        let mutation = Some(OperationType::Mutation);
        assert!(limits.admit(&validated(900, 3), mutation, client).is_ok());
        assert!(matches!(
            limits.admit(&validated(10, 3), query, client),
            Err(ApiError::ReadRateLimited {
                per_minute: 1_500,
                ..
            })
        ));
        // Without an address (an embedded caller) there is no budget to spend.
        assert!(limits.admit(&validated(10, 3), query, None).is_ok());
        drop(slot);
    }

    const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;
}
