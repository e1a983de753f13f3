use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_graphql::{Context, Subscription};
use futures_util::stream::BoxStream;
use futures_util::{future, Stream, StreamExt};

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
        let snapshots = services.aggregates.feed().subscribe();
        let views: BoxStream<'static, AggregateSnapshotView> = if super::query::selects_details(ctx)
        {
            // Each version's distributions are read once per process (see `Aggregates`), and
            // shared by every subscriber. The read may find a newer version than the one
            // heard of; what it finds is sent, and nothing older after it.
            let aggregates = services.aggregates.clone();
            let reads = services.reads.clone();
            let mut sent: Option<(String, i64)> = None;
            snapshots
                .then(move |snapshot| {
                    let (aggregates, reads) = (aggregates.clone(), reads.clone());
                    async move {
                        let _permit = reads.acquire().await.ok()?;
                        match aggregates.read_detailed(&snapshot).await {
                            Ok(detailed) => Some(detailed),
                            Err(error) => {
                                // The next version tries again.
                                tracing::warn!(%error, "distributions for a pushed version unreadable");
                                None
                            }
                        }
                    }
                })
                .filter_map(move |detailed| {
                    let fresh = detailed.filter(|d| {
                        let s = &d.snapshot;
                        let newer = sent
                            .as_ref()
                            .is_none_or(|(generation, version)| {
                                *generation != s.generation || s.version > *version
                            });
                        if newer {
                            sent = Some((s.generation.clone(), s.version));
                        }
                        newer
                    });
                    let categories = categories.clone();
                    let computed = computed.clone();
                    future::ready(fresh.map(|detailed| {
                        if let Some(computed) = &computed {
                            computed.add_one();
                        }
                        AggregateSnapshotView::detailed(&detailed, &categories)
                    }))
                })
                .boxed()
        } else {
            snapshots
                .map(move |snapshot| {
                    if let Some(computed) = &computed {
                        computed.add_one();
                    }
                    AggregateSnapshotView::new(&snapshot, &categories)
                })
                .boxed()
        };
        // Ends the stream on shutdown, so every client gets a proper `complete`.
        views.take_until(services.shutdown.clone().cancelled_owned())
    }
}
