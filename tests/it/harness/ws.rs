//! A minimal GraphQL WebSocket client for tests, speaking either protocol. Protocol messages
//! stay JSON (tests check their exact shape); results are read into types.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::gql::{AggregateSnapshot, AggregatesUpdatedData, GqlResponse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the graphql-ws library).
    TransportWs,
    /// Legacy `graphql-ws` (subscriptions-transport-ws).
    LegacyGraphqlWs,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::LegacyGraphqlWs => "graphql-ws",
        }
    }
}

pub struct Subscription {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Protocol,
}

impl Subscription {
    /// Opens a socket, or `None` when the server refuses it.
    pub async fn try_connect(addr: std::net::SocketAddr, protocol: Protocol) -> Option<Self> {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await.ok()?;
        Some(Subscription { socket, protocol })
    }

    pub async fn connect(addr: std::net::SocketAddr, protocol: Protocol) -> Self {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol.name())
        );
        Subscription { socket, protocol }
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// The next protocol message (pings and pongs skipped), or `None` when the socket closed.
    pub async fn next_message(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + super::DEADLINE;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a websocket message before the deadline");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("json message"))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(
                        json!({ "type": "__closed", "code": frame.map(|f| u16::from(f.code)) }),
                    )
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => {
                    eprintln!("websocket error: {error}");
                    return None;
                }
                None => return None,
            }
        }
    }

    /// Reads (answering pings, as any client library does) for `period` without sending; `None`
    /// when nothing but pings came, else what came: a message, a close, or the end.
    pub async fn stay_idle(&mut self, period: std::time::Duration) -> Option<String> {
        let until = tokio::time::Instant::now() + period;
        loop {
            match tokio::time::timeout_at(until, self.socket.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Text(text))))
                    if serde_json::from_str::<Value>(&text).is_ok_and(|m| {
                        matches!(m["type"].as_str(), Some("ka" | "ping" | "pong"))
                    }) =>
                {
                    continue
                }
                Ok(other) => return Some(format!("{other:?}")),
            }
        }
    }

    /// Initialises the connection and subscribes to `query` under id "1".
    pub async fn start(addr: std::net::SocketAddr, protocol: Protocol, query: &str) -> Self {
        let mut sub = Subscription::connect(addr, protocol).await;
        sub.init().await;
        sub.subscribe("1", json!({ "query": query })).await;
        sub
    }

    /// Sends `connection_init` and waits for the acknowledgement.
    pub async fn init(&mut self) {
        self.send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        loop {
            let message = self.next_message().await.expect("ack");
            match message["type"].as_str() {
                Some("connection_ack") => break,
                Some("ka") => continue,
                other => panic!("expected connection_ack, got {other:?}: {message}"),
            }
        }
    }

    /// Starts the operation `payload` (`{"query": …}`) under `id`.
    pub async fn subscribe(&mut self, id: &str, payload: Value) {
        let start = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::LegacyGraphqlWs => "start",
        };
        self.send(json!({ "id": id, "type": start, "payload": payload }))
            .await;
    }

    /// Ends the operation `id` from the client's side.
    pub async fn unsubscribe(&mut self, id: &str) {
        let stop = match self.protocol {
            Protocol::TransportWs => "complete",
            Protocol::LegacyGraphqlWs => "stop",
        };
        self.send(json!({ "id": id, "type": stop })).await;
    }

    /// The next result message (`next`, legacy `data`) as `(id, payload)`; `complete` as
    /// `(id, Null)`; `None` at a close.
    pub async fn next_event(&mut self) -> Option<(String, Value)> {
        loop {
            let message = self.next_message().await?;
            let id = message["id"].as_str().unwrap_or_default().to_owned();
            match message["type"].as_str() {
                Some("next" | "data") => return Some((id, message["payload"].clone())),
                Some("complete") => return Some((id, Value::Null)),
                Some("ka" | "ping" | "pong") => continue,
                Some("__closed") => return None,
                _ => panic!("unexpected message: {message}"),
            }
        }
    }

    /// The data of the next result, read as `T`, failing on errors.
    pub async fn next_data<T: DeserializeOwned + std::fmt::Debug>(&mut self) -> T {
        let data_type = match self.protocol {
            Protocol::TransportWs => "next",
            Protocol::LegacyGraphqlWs => "data",
        };
        loop {
            let message = self.next_message().await.expect("socket open");
            match message["type"].as_str() {
                Some(t) if t == data_type => {
                    return GqlResponse::from_json(message["payload"].clone()).expect_data();
                }
                Some("ka") | Some("ping") | Some("pong") => continue,
                _ => panic!("unexpected message: {message}"),
            }
        }
    }

    /// The next `aggregatesUpdated` result.
    pub async fn next_snapshot(&mut self) -> AggregateSnapshot {
        self.next_data::<AggregatesUpdatedData>()
            .await
            .aggregates_updated
    }

    /// Waits for an `aggregatesUpdated` result that satisfies `done`, checking on the way that
    /// versions never go back.
    pub async fn wait_for(
        &mut self,
        mut done: impl FnMut(&AggregateSnapshot) -> bool,
    ) -> AggregateSnapshot {
        let mut last_version = i64::MIN;
        loop {
            let snapshot = self.next_snapshot().await;
            let version = snapshot.version;
            assert!(
                version > last_version,
                "version went from {last_version} to {version}"
            );
            last_version = version;
            if done(&snapshot) {
                return snapshot;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}
