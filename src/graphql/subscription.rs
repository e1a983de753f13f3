use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_graphql::{Context, Subscription};
use futures_util::{Stream, StreamExt};

use super::types::AggregateSnapshotView;

pub struct SubscriptionRoot;

/// Counts the results of `aggregatesUpdated` the server computes (each one then runs the
/// selection set once), when a transport puts it in the request data: what sharing one
/// execution among the subscribers of the same operation saves is seen there, by tests and
/// by a metrics endpoint to come.
#[derive(Debug, Clone, Default)]
pub struct UpdatesComputed(Arc<AtomicU64>);

impl UpdatesComputed {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add_one(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The current snapshot at once, then every newer one. A slow client skips to the newest
    /// instead of queueing; versions only grow.
    async fn aggregates_updated(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = AggregateSnapshotView> {
        let services = super::services(ctx);
        let categories = services.categories.clone();
        let computed = ctx.data_opt::<UpdatesComputed>().cloned();
        services
            .aggregates
            .feed()
            .subscribe()
            .map(move |snapshot| {
                if let Some(computed) = &computed {
                    computed.add_one();
                }
                AggregateSnapshotView::new(&snapshot, &categories)
            })
            // Ends the stream on shutdown, so every client gets a proper `complete`.
            .take_until(services.shutdown.clone().cancelled_owned())
    }
}
