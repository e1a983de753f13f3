use async_graphql::{Context, Subscription};
use futures_util::{Stream, StreamExt};

use super::types::AggregateSnapshotView;

pub struct SubscriptionRoot;

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
        services
            .aggregates
            .feed()
            .subscribe()
            .map(move |snapshot| AggregateSnapshotView::new(&snapshot, &categories))
            // Ends the stream on shutdown, so every client gets a proper `complete`.
            .take_until(services.shutdown.clone().cancelled_owned())
    }
}
