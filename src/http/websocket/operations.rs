//! The operations a client has running on one socket, read from the protocol messages of both
//! directions: the server caps how many may run at once, and at shutdown waits until each has
//! been completed before it closes the socket.

use std::collections::{HashMap, HashSet};

use async_graphql::http::WebSocketProtocols;
use serde::Deserialize;
use serde_json::json;

use crate::error_code::ErrorCode;
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
    /// Legacy graphql-ws: a new operation under the id of a running one, which it replaces
    /// without a word to the client, wherever either runs (see [`Operations::replace`]).
    Replace(String),
}

/// Where a running operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// In async-graphql's protocol, for this socket alone.
    Protocol,
    /// In a cohort, shared with other sockets.
    Shared,
}

/// How to replace a running operation (legacy graphql-ws), given where the old one runs and
/// where the new one will.
#[derive(Debug, PartialEq, Eq)]
pub enum Replacement {
    /// Both in the same place: that place replaces it (the protocol's map of streams, or the
    /// socket's map of cohort members, keyed by id).
    InPlace,
    /// The old one is shared, the new one goes to the protocol: leave the cohort quietly.
    LeaveCohort,
    /// The old one runs in the protocol, the new one is shared: send the protocol this `stop`
    /// instead of the `start`; the `complete` it answers is not passed on.
    StopInProtocol(Vec<u8>),
}

/// graphql-transport-ws's close code for a second operation under a running id.
pub const CLOSE_DUPLICATE_ID: u16 = 4409;

pub struct Operations {
    protocol: WebSocketProtocols,
    limit: usize,
    running: HashMap<String, Runs>,
    /// Operations the protocol was told to stop because a shared one replaced them: the
    /// client did not end them, and must not see their `complete`.
    stopped_quietly: HashSet<String>,
    /// Counts the running operations of every socket (`subscriptions_active`).
    metrics: Metrics,
}

impl Operations {
    pub fn new(protocol: WebSocketProtocols, limit: usize, metrics: Metrics) -> Self {
        Operations {
            protocol,
            limit,
            running: HashMap::new(),
            stopped_quietly: HashSet::new(),
            metrics,
        }
    }

    fn start(&mut self, id: &str) {
        if self.running.insert(id.to_owned(), Runs::Protocol).is_none() {
            self.metrics.subscription_started();
        }
    }

    fn end(&mut self, id: &str) {
        if self.running.remove(id).is_some() {
            self.metrics.subscription_ended();
        }
    }

    /// Operation `id`, just started, runs shared rather than in the protocol.
    pub fn shared(&mut self, id: &str) {
        if let Some(runs) = self.running.get_mut(id) {
            *runs = Runs::Shared;
        }
    }

    /// The running operation `id` is replaced by one that runs as `new` says (legacy
    /// graphql-ws, after [`Inbound::Replace`]). That protocol's reference server drops the old
    /// operation without telling the client, and async-graphql does the same within its own
    /// map; but an old one running shared and a new one in the protocol (or the reverse)
    /// would both go on answering to the id.
    pub fn replace(&mut self, id: &str, new: Runs) -> Replacement {
        let Some(old) = self.running.insert(id.to_owned(), new) else {
            return Replacement::InPlace;
        };
        match (old, new) {
            (Runs::Shared, Runs::Protocol) => Replacement::LeaveCohort,
            (Runs::Protocol, Runs::Shared) => {
                self.stopped_quietly.insert(id.to_owned());
                let stop = json!({ "id": id, "type": "stop" });
                Replacement::StopInProtocol(stop.to_string().into_bytes())
            }
            _ => Replacement::InPlace,
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
                if self.running.contains_key(id) {
                    return match self.protocol {
                        // The protocol's rule, which async-graphql does not keep (it replaces
                        // the running operation): without it, an operation running shared and
                        // a new one under its id in the protocol would both answer to the id.
                        WebSocketProtocols::GraphQLWS => {
                            Inbound::Duplicate(format!("Subscriber for {id} already exists"))
                        }
                        // The legacy protocol has no such rule: the new operation replaces the
                        // old.
                        WebSocketProtocols::SubscriptionsTransportWS => {
                            Inbound::Replace(id.to_owned())
                        }
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

    /// Reads a message from the protocol to the client; whether to pass it on (not the
    /// `complete` of an operation stopped by [`Self::replace`]).
    pub fn protocol_says(&mut self, message: &str) -> bool {
        if !self.stopped_quietly.is_empty() {
            if let Ok(Envelope {
                kind: "complete",
                id: Some(id),
            }) = serde_json::from_str::<Envelope>(message)
            {
                if self.stopped_quietly.remove(id) {
                    return false;
                }
            }
        }
        self.outbound(message);
        true
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
        let code = ErrorCode::TooManyOperations.as_str();
        let error = json!({ "message": message, "extensions": { "code": code } });
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
        assert_eq!(legacy.inbound(start), Inbound::Replace("1".into()));
    }

    #[test]
    fn a_legacy_replacement_stops_the_old_operation_where_it_runs() {
        let mut ops = Operations::new(
            WebSocketProtocols::SubscriptionsTransportWS,
            5,
            Metrics::default(),
        );
        let start = |id: &str| {
            json!({ "id": id, "type": "start", "payload": { "query": "{ x }" } })
                .to_string()
                .into_bytes()
        };
        assert_eq!(ops.inbound(&start("1")), Inbound::Pass);
        assert_eq!(ops.replace("1", Runs::Protocol), Replacement::InPlace);
        // Shared after the protocol: the protocol is told to stop, and its `complete` kept
        // from the client, once; the id runs on (shared).
        let Replacement::StopInProtocol(stop) = ops.replace("1", Runs::Shared) else {
            panic!("the protocol's operation is stopped");
        };
        let stop: serde_json::Value = serde_json::from_slice(&stop).unwrap();
        assert_eq!(stop, json!({ "id": "1", "type": "stop" }));
        assert!(!ops.protocol_says(r#"{"type":"complete","id":"1"}"#));
        assert!(!ops.is_empty());
        assert!(ops.protocol_says(r#"{"type":"data","id":"1","payload":{}}"#));
        // Back to the protocol: the cohort is left; later completes pass and end the id.
        assert_eq!(ops.replace("1", Runs::Protocol), Replacement::LeaveCohort);
        assert_eq!(ops.replace("1", Runs::Protocol), Replacement::InPlace);
        assert!(ops.protocol_says(r#"{"type":"complete","id":"1"}"#));
        assert!(ops.is_empty());
    }
}
