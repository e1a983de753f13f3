//! Subscribers of the same operation share one execution, as Hasura multiplexes live queries:
//! the subscription runs once per distinct (document, operation name, variables), each of its
//! results is serialized once, and every socket that asked for it writes the same bytes.
//!
//! A cohort publishes on a `watch` channel, which keeps one value: a member that reads slowly
//! skips to the newest result, as with the per-socket stream, and a member costs one
//! receiver. The cohort ends when its stream ends (shutdown, or a request that does not run)
//! or when its last member leaves; either way it leaves the registry.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_graphql::{Executor, Request, Response};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use crate::graphql::{SnapshotReads, UpdatesComputed};

/// One result of a shared operation, serialized once.
#[derive(Debug, Clone)]
pub struct Published {
    /// The GraphQL response as JSON: the payload of `next` (legacy: `data`).
    pub body: Arc<str>,
    /// The operation's cost as validation found it (0 when it did not validate): each member
    /// pays it from its own read budget once, as a subscription run for it alone would.
    pub cost: usize,
    /// Counts the cohort's results from 1: a member that sees 3 after 1 skipped one.
    pub seq: u64,
}

/// What a member's stream yields.
#[derive(Debug, Clone)]
pub enum Event {
    Next(Published),
    /// The operation is over: the member answers `complete`.
    End,
}

/// A member's view of its cohort: the newest result at once, then each newer one, then
/// [`Event::End`].
pub type Member = Pin<Box<dyn Stream<Item = Event> + Send>>;

type Channel = Arc<watch::Sender<Option<Published>>>;
type Registry = Arc<Mutex<HashMap<String, Channel>>>;

/// The running shared operations of one schema, by the hash of what they ask.
pub struct Cohorts<E> {
    executor: E,
    computed: UpdatesComputed,
    live: Registry,
}

impl<E: Executor> Cohorts<E> {
    /// `computed` goes into each shared request's data, as into each socket's.
    pub fn new(executor: E, computed: UpdatesComputed) -> Self {
        Cohorts {
            executor,
            computed,
            live: Arc::default(),
        }
    }

    /// Joins the cohort running the operation `key` names, starting it with `request` when
    /// none runs. The request carries no client address: its cost is charged to each member
    /// instead (see [`Published::cost`]).
    pub fn join(&self, key: String, request: Request) -> Member {
        let mut live = lock(&self.live);
        if let Some(channel) = live.get(&key) {
            return member(channel.subscribe());
        }
        let channel: Channel = Arc::new(watch::channel(None).0);
        let receiver = channel.subscribe();
        live.insert(key.clone(), channel.clone());
        drop(live);
        let reads = SnapshotReads::default();
        let request = request.data(reads.clone()).data(self.computed.clone());
        let stream = self.executor.execute_stream(request, None);
        tokio::spawn(run(stream, channel, reads, key, self.live.clone()));
        member(receiver)
    }

    /// What counts the results computed, for the requests the socket runs itself.
    pub fn computed(&self) -> &UpdatesComputed {
        &self.computed
    }

    /// How many operations run shared.
    #[cfg(test)]
    fn running(&self) -> usize {
        lock(&self.live).len()
    }
}

fn lock(live: &Registry) -> MutexGuard<'_, HashMap<String, Channel>> {
    // Entries are inserted and removed whole; a panic cannot leave one half-written.
    live.lock().unwrap_or_else(PoisonError::into_inner)
}

fn member(receiver: watch::Receiver<Option<Published>>) -> Member {
    Box::pin(
        WatchStream::new(receiver)
            // Nothing yet: the first result is on its way.
            .filter_map(|published| std::future::ready(published.map(Event::Next)))
            .chain(futures_util::stream::once(std::future::ready(Event::End))),
    )
}

/// Drives one cohort's execution until its stream ends or nobody listens.
async fn run(
    mut stream: BoxStream<'static, Response>,
    channel: Channel,
    reads: SnapshotReads,
    key: String,
    live: Registry,
) {
    let mut seq = 0;
    loop {
        tokio::select! {
            // First: a result nobody will read is not computed.
            biased;
            () = channel.closed() => {
                // Members join under the registry's lock: one may have come since.
                let mut live = lock(&live);
                if channel.receiver_count() == 0 {
                    forget(&mut live, &key, &channel);
                    return;
                }
            }
            response = stream.next() => {
                let Some(response) = response else { break };
                let body = match serde_json::to_string(&response) {
                    Ok(body) => Arc::from(body),
                    Err(error) => {
                        tracing::error!(%error, "a shared subscription result could not be encoded");
                        break;
                    }
                };
                seq += 1;
                channel.send_replace(Some(Published { body, cost: reads.cost(), seq }));
            }
        }
    }
    forget(&mut lock(&live), &key, &channel);
    // Dropping the channel now ends every member's stream after the last result.
}

fn forget(live: &mut HashMap<String, Channel>, key: &str, channel: &Channel) {
    if live.get(key).is_some_and(|c| Arc::ptr_eq(c, channel)) {
        live.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_graphql::{EmptyMutation, Object, Schema, Subscription};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn n(&self) -> i32 {
            0
        }
    }

    struct Feed;

    #[Subscription]
    impl Feed {
        async fn values(
            &self,
            ctx: &async_graphql::Context<'_>,
        ) -> impl Stream<Item = i64> + use<> {
            let computed = ctx.data_opt::<UpdatesComputed>().cloned();
            let values = ctx.data_unchecked::<Arc<watch::Sender<Option<i64>>>>();
            WatchStream::new(values.subscribe())
                .filter_map(std::future::ready)
                .take_while(|v| std::future::ready(*v >= 0))
                .map(move |v| {
                    if let Some(computed) = &computed {
                        computed.add_one();
                    }
                    v
                })
        }
    }

    type TestSchema = Schema<Query, EmptyMutation, Feed>;

    fn cohorts() -> (Cohorts<TestSchema>, Arc<watch::Sender<Option<i64>>>) {
        let values = Arc::new(watch::channel(Some(1)).0);
        let schema = Schema::build(Query, EmptyMutation, Feed)
            .data(values.clone())
            .finish();
        (Cohorts::new(schema, UpdatesComputed::default()), values)
    }

    async fn next_body(member: &mut Member) -> Option<String> {
        let event = tokio::time::timeout(Duration::from_secs(5), member.next())
            .await
            .expect("an event in time");
        match event {
            Some(Event::Next(published)) => Some(published.body.to_string()),
            Some(Event::End) | None => None,
        }
    }

    async fn until_no_cohort(cohorts: &Cohorts<TestSchema>) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while cohorts.running() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the cohort is gone");
    }

    #[tokio::test]
    async fn members_share_one_execution_and_the_last_one_out_ends_it() {
        let (cohorts, values) = cohorts();
        let request = || Request::new("subscription { values }");
        let mut a = cohorts.join("k".into(), request());
        let mut b = cohorts.join("k".into(), request());
        assert_eq!(cohorts.running(), 1);
        assert_eq!(
            next_body(&mut a).await.as_deref(),
            Some(r#"{"data":{"values":1}}"#)
        );
        assert_eq!(
            next_body(&mut b).await.as_deref(),
            Some(r#"{"data":{"values":1}}"#)
        );
        values.send_replace(Some(2));
        assert_eq!(
            next_body(&mut a).await.as_deref(),
            Some(r#"{"data":{"values":2}}"#)
        );
        assert_eq!(
            next_body(&mut b).await.as_deref(),
            Some(r#"{"data":{"values":2}}"#)
        );
        assert_eq!(cohorts.computed.get(), 2, "one execution per value");
        // A newcomer gets the newest at once.
        let mut c = cohorts.join("k".into(), request());
        assert_eq!(
            next_body(&mut c).await.as_deref(),
            Some(r#"{"data":{"values":2}}"#)
        );
        drop((a, b));
        values.send_replace(Some(3));
        assert_eq!(
            next_body(&mut c).await.as_deref(),
            Some(r#"{"data":{"values":3}}"#)
        );
        drop(c);
        until_no_cohort(&cohorts).await;
        assert_eq!(cohorts.computed.get(), 3);
    }

    #[tokio::test]
    async fn a_slow_member_skips_to_the_newest_and_the_end_follows_the_last_result() {
        let (cohorts, values) = cohorts();
        let mut slow = cohorts.join("k".into(), Request::new("subscription { values }"));
        assert_eq!(
            next_body(&mut slow).await.as_deref(),
            Some(r#"{"data":{"values":1}}"#)
        );
        for v in 2..=5 {
            values.send_replace(Some(v));
            // Let the cohort publish each one.
            tokio::time::timeout(Duration::from_secs(5), async {
                while cohorts.computed.get() < u64::try_from(v).unwrap() {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        }
        assert_eq!(
            next_body(&mut slow).await.as_deref(),
            Some(r#"{"data":{"values":5}}"#)
        );
        // The stream ends: the member sees the end, and the cohort is gone.
        values.send_replace(Some(-1));
        assert_eq!(next_body(&mut slow).await, None);
        until_no_cohort(&cohorts).await;
    }

    #[tokio::test]
    async fn a_request_that_does_not_run_gives_its_errors_then_ends() {
        let (cohorts, _values) = cohorts();
        let mut member = cohorts.join("bad".into(), Request::new("subscription { nope }"));
        let body = next_body(&mut member).await.expect("the errors");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"));
        assert_eq!(next_body(&mut member).await, None);
        until_no_cohort(&cohorts).await;
    }
}
