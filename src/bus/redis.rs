//! Redis pub/sub: one subscriber connection per process, two channels.

use std::sync::Arc;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::task::JoinHandle;

use super::{Bus, BusError, BusHandler};
use crate::domain::Snapshot;
use crate::redis::Redis;

/// Pause between attempts to subscribe while Redis is away at start-up.
const SUBSCRIBE_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

pub struct RedisBus {
    publisher: Redis,
    subscriber: SubscriberClient,
    snapshots_channel: String,
    outbox_channel: String,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisBus {
    /// Subscribes once for this process (in the background, as soon as Redis answers) and
    /// starts handing messages to `handler`.
    pub fn start(
        publisher: Redis,
        subscriber: SubscriberClient,
        key_prefix: &str,
        handler: Arc<dyn BusHandler>,
    ) -> Self {
        let snapshots_channel = format!("{key_prefix}aggregates");
        let outbox_channel = format!("{key_prefix}outbox");

        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let on_message = {
            let handler = handler.clone();
            let snapshots_channel = snapshots_channel.clone();
            tokio::spawn(async move {
                loop {
                    let message = match messages.recv().await {
                        Ok(message) => message,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "pub/sub messages dropped; resyncing");
                            handler.resubscribed();
                            continue;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    };
                    if &*message.channel == snapshots_channel.as_str() {
                        let parsed = message
                            .value
                            .as_str()
                            .map(|json| serde_json::from_str::<Snapshot>(&json));
                        match parsed {
                            Some(Ok(snapshot)) => handler.snapshot_published(snapshot),
                            _ => tracing::warn!("unreadable snapshot on the bus; ignored"),
                        }
                    } else {
                        handler.outbox_nudged();
                    }
                }
            })
        };
        let on_reconnect = {
            let handler = handler.clone();
            tokio::spawn(async move {
                while reconnects.recv().await.is_ok() {
                    handler.resubscribed();
                }
            })
        };
        let first_subscribe = {
            let subscriber = subscriber.clone();
            let channels = vec![snapshots_channel.clone(), outbox_channel.clone()];
            tokio::spawn(async move {
                loop {
                    let _ = subscriber.wait_for_connect().await;
                    match subscriber.subscribe(channels.clone()).await {
                        Ok(()) => break,
                        Err(error) => tracing::debug!(%error, "subscribe failed; retrying"),
                    }
                    tokio::time::sleep(SUBSCRIBE_RETRY).await;
                }
                // Whatever was published before the subscription took is read now.
                handler.resubscribed();
                // From here on it re-subscribes by itself after every reconnect.
                let _ = subscriber.manage_subscriptions().await;
            })
        };

        RedisBus {
            publisher,
            subscriber,
            snapshots_channel,
            outbox_channel,
            tasks: vec![on_message, on_reconnect, first_subscribe],
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let subscriber = self.subscriber.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = subscriber.quit().await;
            });
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish_snapshot(&self, snapshot: &Snapshot) -> Result<(), BusError> {
        let json = serde_json::to_string(snapshot)?;
        let channel = &self.snapshots_channel;
        let _: i64 = self
            .publisher
            .run(|c| async move { c.publish(channel, json).await })
            .await?;
        Ok(())
    }

    async fn nudge_workers(&self) -> Result<(), BusError> {
        let channel = &self.outbox_channel;
        let _: i64 = self
            .publisher
            .run(|c| async move { c.publish(channel, "").await })
            .await?;
        Ok(())
    }
}
