//! GraphQL subscriptions over WebSocket (`graphql-transport-ws` and legacy `graphql-ws`).
//! The protocols carry queries and mutations too; they get the same request data as over
//! HTTP except `Authorization`, so a mutation here is anonymous.
//!
//! async-graphql speaks the protocols; this wrapper adds what a server in production needs and
//! async-graphql-axum's `GraphQLWebSocket` lacks: WebSocket pings so idle proxies keep the
//! socket, a deadline for `connection_init`, a proper close frame when the server shuts down,
//! and a handshake that answers with the very sub-protocol the server then speaks.

use std::str::FromStr;
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use super::HttpState;
use crate::submissions::ClientAddr;

const PING_EVERY: Duration = Duration::from_secs(20);
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// graphql-transport-ws: "Connection initialisation timeout".
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_GOING_AWAY: u16 = 1001;

/// The first protocol the client offers that we speak; the legacy one when it names none.
fn protocol(headers: &HeaderMap) -> WebSocketProtocols {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .unwrap_or(WebSocketProtocols::SubscriptionsTransportWS)
}

/// `client` is the peer address: async-graphql executes queries and mutations sent over the
/// socket too, so a `submitAllocation` there must meet the same rate limit as over POST.
pub fn upgrade(
    state: HttpState,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let protocol = protocol(headers);
    let open = state.connections.token();
    upgrade
        // Only the protocol chosen above: offered several, axum would otherwise answer with
        // the first of the server's list, which need not be the one spoken.
        .protocols([protocol.sec_websocket_protocol()])
        .on_upgrade(move |socket| async move {
            serve(state, socket, protocol, client).await;
            drop(open);
        })
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn serve(
    state: HttpState,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    client: Option<ClientAddr>,
) {
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| futures_util::future::ready(message.is_ok()))
        .filter_map(|message| {
            futures_util::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let (initialised_tx, mut initialised_rx) = tokio::sync::oneshot::channel::<()>();
    let mut connection_data = Data::default();
    if let Some(client) = client {
        connection_data.insert(client);
    }
    let mut messages = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .connection_data(connection_data)
        .on_connection_init(move |_payload| {
            let _ = initialised_tx.send(());
            futures_util::future::ready(Ok(Data::default()))
        })
        .keepalive_timeout(PING_EVERY * 3);

    let shutdown = state.shutdown.clone();
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut initialised = false;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);

    loop {
        let outgoing = tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => Message::Text(text.into()),
                Some(WsMessage::Close(code, reason)) => close(code, &reason),
                None => break,
            },
            result = &mut initialised_rx, if !initialised => {
                initialised = result.is_ok();
                continue;
            }
            _ = &mut init_deadline, if !initialised => close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout"),
            _ = ping.tick() => Message::Ping(Vec::new().into()),
            _ = shutdown.cancelled() => close(CLOSE_GOING_AWAY, "server shutting down"),
        };
        let closing = matches!(outgoing, Message::Close(_));
        if sink.send(outgoing).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
