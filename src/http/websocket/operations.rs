//! The operations a client has running on one socket, read from the protocol messages of both
//! directions: the server caps how many may run at once, and at shutdown waits until each has
//! been completed before it closes the socket.

use std::collections::HashSet;

use async_graphql::http::WebSocketProtocols;
use serde::Deserialize;
use serde_json::json;

use crate::metrics::Metrics;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    id: Option<&'a str>,
}

/// What to do with a message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Hand it to the protocol.
    Pass,
    /// A new operation beyond the cap: answer it with this error message instead.
    Refuse(String),
    /// Hand it to the protocol: the client ends operation `id` (which may run elsewhere than
    /// in the protocol, shared).
    Ended(String),
    /// A new operation under the id of a running one, which graphql-transport-ws forbids:
    /// close the socket with [`CLOSE_DUPLICATE_ID`] and this reason.
    Duplicate(String),
}

/// graphql-transport-ws's close code for a second operation under a running id.
pub const CLOSE_DUPLICATE_ID: u16 = 4409;

pub struct Operations {
    protocol: WebSocketProtocols,
    limit: usize,
    running: HashSet<String>,
    /// Counts the running operations of every socket (`subscriptions_active`).
    metrics: Metrics,
}

impl Operations {
    pub fn new(protocol: WebSocketProtocols, limit: usize, metrics: Metrics) -> Self {
        Operations {
            protocol,
            limit,
            running: HashSet::new(),
            metrics,
        }
    }

    fn start(&mut self, id: &str) {
        if self.running.insert(id.to_owned()) {
            self.metrics.subscription_started();
        }
    }

    fn end(&mut self, id: &str) {
        if self.running.remove(id) {
            self.metrics.subscription_ended();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Reads a message from the client. Anything unreadable passes: the protocol answers it.
    pub fn inbound(&mut self, message: &[u8]) -> Inbound {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(message) else {
            return Inbound::Pass;
        };
        match (envelope.kind, envelope.id) {
            ("subscribe" | "start", Some(id)) => {
                if self.running.contains(id) {
                    return match self.protocol {
                        // The protocol's rule, which async-graphql does not keep (it replaces
                        // the running operation): without it, an operation running shared and
                        // a new one under its id in the protocol would both answer to the id.
                        WebSocketProtocols::GraphQLWS => {
                            Inbound::Duplicate(format!("Subscriber for {id} already exists"))
                        }
                        // The legacy protocol has no such rule: the new operation replaces the
                        // old, in the protocol and among the shared ones alike.
                        WebSocketProtocols::SubscriptionsTransportWS => Inbound::Pass,
                    };
                }
                if self.running.len() >= self.limit {
                    return Inbound::Refuse(self.refusal(id));
                }
                self.start(id);
                Inbound::Pass
            }
            ("complete" | "stop", Some(id)) => {
                self.end(id);
                Inbound::Ended(id.to_owned())
            }
            _ => Inbound::Pass,
        }
    }

    /// Reads a message to the client: `complete` and `error` end an operation.
    pub fn outbound(&mut self, message: &str) {
        if let Ok(Envelope {
            kind: "complete" | "error",
            id: Some(id),
        }) = serde_json::from_str::<Envelope>(message)
        {
            self.end(id);
        }
    }

    /// The protocol's error message for operation `id`, which ends it without running it.
    fn refusal(&self, id: &str) -> String {
        let message = format!(
            "too many operations on this connection (at most {}); complete one first",
            self.limit
        );
        let error = json!({ "message": message, "extensions": { "code": "TOO_MANY_OPERATIONS" } });
        match self.protocol {
            WebSocketProtocols::GraphQLWS => {
                json!({ "id": id, "type": "error", "payload": [error] })
            }
            WebSocketProtocols::SubscriptionsTransportWS => {
                json!({ "id": id, "type": "error", "payload": error })
            }
        }
        .to_string()
    }
}

/// A closed socket's operations are over.
impl Drop for Operations {
    fn drop(&mut self) {
        for _ in self.running.drain() {
            self.metrics.subscription_ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribe(id: &str) -> Vec<u8> {
        json!({ "id": id, "type": "subscribe", "payload": { "query": "{ x }" } })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn caps_running_operations_and_frees_them_on_complete() {
        let mut ops = Operations::new(WebSocketProtocols::GraphQLWS, 2, Metrics::default());
        assert_eq!(ops.inbound(&subscribe("1")), Inbound::Pass);
        assert_eq!(ops.inbound(&subscribe("2")), Inbound::Pass);
        let Inbound::Refuse(refusal) = ops.inbound(&subscribe("3")) else {
            panic!("the third operation is refused");
        };
        let refusal: serde_json::Value = serde_json::from_str(&refusal).unwrap();
        assert_eq!(refusal["id"], "3");
        assert_eq!(refusal["type"], "error");
        assert_eq!(
            refusal["payload"][0]["extensions"]["code"],
            "TOO_MANY_OPERATIONS"
        );
        // The server completes one, the client stops another: room for two again.
        ops.outbound(r#"{"id":"1","type":"complete"}"#);
        assert_eq!(ops.inbound(&subscribe("3")), Inbound::Pass);
        assert_eq!(
            ops.inbound(br#"{"id":"2","type":"complete"}"#),
            Inbound::Ended("2".into())
        );
        ops.outbound(r#"{"id":"3","type":"complete"}"#);
        assert!(ops.is_empty());
        assert_eq!(ops.inbound(b"not json"), Inbound::Pass);
    }

    #[test]
    fn a_running_id_given_again_closes_graphql_transport_ws_only() {
        let mut ops = Operations::new(WebSocketProtocols::GraphQLWS, 5, Metrics::default());
        assert_eq!(ops.inbound(&subscribe("1")), Inbound::Pass);
        assert_eq!(
            ops.inbound(&subscribe("1")),
            Inbound::Duplicate("Subscriber for 1 already exists".into())
        );
        // Once completed, the id is free again.
        ops.outbound(r#"{"id":"1","type":"complete"}"#);
        assert_eq!(ops.inbound(&subscribe("1")), Inbound::Pass);

        let mut legacy = Operations::new(
            WebSocketProtocols::SubscriptionsTransportWS,
            5,
            Metrics::default(),
        );
        let start = br#"{"id":"1","type":"start","payload":{"query":"{ x }"}}"#;
        assert_eq!(legacy.inbound(start), Inbound::Pass);
        assert_eq!(legacy.inbound(start), Inbound::Pass);
    }
}
