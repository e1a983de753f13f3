//! GraphQL subscriptions over WebSocket (`graphql-transport-ws` and legacy `graphql-ws`).
//! The protocols carry queries and mutations too; they get the same request data as over
//! HTTP except `Authorization`, so a mutation here is anonymous.
//!
//! async-graphql speaks the protocols; this wrapper adds what a server facing the internet
//! needs and async-graphql-axum's `GraphQLWebSocket` lacks: a handshake that answers with the
//! very sub-protocol the server then speaks, an Origin check, caps on connections (per address
//! and in all), on message size and on operations per socket, WebSocket pings (any frame from
//! the client, a Pong included, proves it alive), a deadline for `connection_init`, a write
//! timeout so a client that stops reading is dropped, at shutdown a `complete` for every
//! running operation before the close frame, and graphql-transport-ws's close with 4409 for
//! a second operation under the id of a running one (async-graphql replaces the first); on
//! legacy graphql-ws such a second operation replaces the first wherever each runs.
//!
//! Subscriptions to the snapshot alone do not reach async-graphql's protocol: every socket
//! that asks the same joins one shared execution of it (see [`cohorts`]), and writes each
//! result's bytes as they were serialized once for all.

mod cohorts;
mod gate;
mod operations;
mod share;

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_stream::StreamMap;

pub use cohorts::Cohorts;
use cohorts::{Event, Member};
pub use gate::{WebSocketGate, WebSocketLimits};
use operations::{Inbound, Operations, Replacement, Runs, CLOSE_DUPLICATE_ID};
use share::Shareable;

use super::HttpState;
use crate::graphql::PersistedQueries;
use crate::metrics::Metrics;
use crate::submissions::ClientAddr;

/// A client from which nothing at all (not even a Pong) came for this many ping intervals is
/// gone.
const SILENT_PINGS: u32 = 3;
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for running operations to send their `complete`.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// graphql-transport-ws: "Connection initialisation timeout".
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLOSE_GOING_AWAY: u16 = 1001;
/// What a socket reads into at first: tungstenite's default (128 KiB) is zeroed whole when
/// the connection opens, which made an idle subscriber cost the server some 140 KiB. Client
/// messages are small; a larger one grows the buffer as it needs.
const READ_BUFFER_BYTES: usize = 4 * 1024;

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
    state: Arc<HttpState>,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let gate = state.websocket.clone();
    if let Err(refusal) = gate.check_origin(headers) {
        return refusal.into_response();
    }
    let admitted = match gate.admit(client) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let protocol = protocol(headers);
    let open = state.connections.token();
    let limits = gate.limits().clone();
    upgrade
        // Only the protocol chosen above: offered several, axum would otherwise answer with
        // the first of the server's list, which need not be the one spoken.
        .protocols([protocol.sec_websocket_protocol()])
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let counted = OpenSocket::counted(&state.metrics);
            serve(state, socket, protocol, client, &limits).await;
            drop(counted);
            drop(admitted);
            drop(open);
        })
}

/// Counts an open WebSocket until dropped, however its loop ends.
struct OpenSocket(Metrics);

impl OpenSocket {
    fn counted(metrics: &Metrics) -> Self {
        metrics.websocket_opened();
        OpenSocket(metrics.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.websocket_closed();
    }
}

/// What the client's messages ask of the socket's own loop, besides the protocol.
enum Control {
    /// Join the cohort of this subscription (a whole request: boxed, to keep the channel's
    /// slots small).
    Join(Box<Shareable>),
    /// The client ended this operation (which the protocol may run instead).
    Leave(String),
    /// This operation's id now names one the protocol runs: stop the shared one, without a
    /// `complete` (legacy graphql-ws replaces an operation given again under its id).
    Quit(String),
    /// Close the socket with this code and reason.
    Close(u16, String),
}

/// What reads the client's messages on their way to the protocol: the socket's operations,
/// whether `connection_init` came, the persisted documents (a start by hash alone), and the
/// channels to the socket's loop.
struct Intake {
    operations: Arc<Mutex<Operations>>,
    initialised: Arc<AtomicBool>,
    persisted: PersistedQueries,
    controls: UnboundedSender<Control>,
    refusals: UnboundedSender<String>,
}

impl Intake {
    /// What of the client's `message` the protocol gets, if anything; what else it asks for
    /// goes to the socket's loop.
    async fn admit(&self, message: Vec<u8>) -> Option<Vec<u8>> {
        let inbound = self.operations().inbound(&message);
        // Before `connection_init` the protocol closes the socket for any operation: let it.
        let starts = matches!(inbound, Inbound::Pass | Inbound::Replace(_))
            && self.initialised.load(Ordering::Acquire);
        let shared = if starts {
            share::shareable(&message, &self.persisted).await
        } else {
            None
        };
        let mut operations = self.operations();
        match inbound {
            Inbound::Pass => {
                let Some(shared) = shared else {
                    return Some(message);
                };
                operations.shared(&shared.id);
                self.control(Control::Join(Box::new(shared)));
                None
            }
            Inbound::Replace(id) => {
                let runs = if shared.is_some() {
                    Runs::Shared
                } else {
                    Runs::Protocol
                };
                let replacement = operations.replace(&id, runs);
                if replacement == Replacement::LeaveCohort {
                    self.control(Control::Quit(id));
                }
                let Some(shared) = shared else {
                    return Some(message);
                };
                self.control(Control::Join(Box::new(shared)));
                match replacement {
                    Replacement::StopInProtocol(stop) => Some(stop),
                    _ => None,
                }
            }
            Inbound::Ended(id) => {
                self.control(Control::Leave(id));
                Some(message)
            }
            Inbound::Refuse(refusal) => {
                let _ = self.refusals.send(refusal);
                None
            }
            Inbound::Duplicate(reason) => {
                self.control(Control::Close(CLOSE_DUPLICATE_ID, reason));
                None
            }
        }
    }

    fn operations(&self) -> MutexGuard<'_, Operations> {
        self.operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `control` to the socket's loop, which outlives every message read.
    fn control(&self, control: Control) {
        let _ = self.controls.send(control);
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn serve(
    state: Arc<HttpState>,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    client: Option<ClientAddr>,
    limits: &WebSocketLimits,
) {
    let started = Instant::now();
    let last_heard = Arc::new(AtomicU64::new(0));
    let operations = Arc::new(Mutex::new(Operations::new(
        protocol,
        limits.max_operations,
        state.metrics.clone(),
    )));
    let initialised = Arc::new(AtomicBool::new(false));
    let (refusals_tx, mut refusals) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Each control answers one message the client sent, so the client bounds the channel
    // (as the refusals'), which lives as long as this socket's loop below.
    let (controls_tx, mut controls) = tokio::sync::mpsc::unbounded_channel::<Control>();
    let (mut sink, stream) = socket.split();
    let intake = Arc::new(Intake {
        operations: operations.clone(),
        initialised: initialised.clone(),
        persisted: state.persisted.clone(),
        controls: controls_tx,
        refusals: refusals_tx,
    });
    let last_heard_in = last_heard.clone();
    // Boxed: the protocol reads a stream it can move, and a persisted document may be looked
    // up (awaited) before a start by its hash is handed on.
    let input = Box::pin(
        stream
            .take_while(|message| futures_util::future::ready(message.is_ok()))
            .filter_map(move |message| {
                // Any frame proves the client alive, Pongs to our pings included.
                last_heard_in.store(elapsed_ms(started), Ordering::Relaxed);
                let intake = intake.clone();
                async move {
                    let bytes = match message {
                        Ok(Message::Text(text)) => text.as_str().as_bytes().to_vec(),
                        Ok(Message::Binary(bytes)) => bytes.to_vec(),
                        _ => return None,
                    };
                    intake.admit(bytes).await
                }
            }),
    );
    let (initialised_tx, mut initialised_rx) = tokio::sync::oneshot::channel::<()>();
    let mut connection_data = Data::default();
    if let Some(client) = client {
        connection_data.insert(client);
    }
    connection_data.insert(state.cohorts.computed().clone());
    let init_seen = initialised.clone();
    let mut messages = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .connection_data(connection_data)
        .on_connection_init(move |_payload| {
            // Set before the protocol reads the next message (it runs this at once).
            init_seen.store(true, Ordering::Release);
            let _ = initialised_tx.send(());
            futures_util::future::ready(Ok(Data::default()))
        });

    // The shared subscriptions of this socket, by id; those that have not paid their cost yet.
    let mut members: StreamMap<String, Member> = StreamMap::new();
    let mut unpaid: HashSet<String> = HashSet::new();
    // The last result each shared subscription got, to count the ones a slow reader skipped.
    let mut seen: HashMap<String, u64> = HashMap::new();
    // Messages to send before anything else (a refused member's `complete`).
    let mut queued: VecDeque<String> = VecDeque::new();
    // One waiter for the whole connection: a new one each time round the loop would take the
    // token's lock twice per message, on a token every socket shares.
    let shutting_down = state.shutdown.cancelled();
    tokio::pin!(shutting_down);
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let drain_deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain_deadline);
    let mut initialised = false;
    let mut draining = false;
    let ping_every = limits.ping_interval;
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);

    loop {
        let outgoing = if let Some(text) = queued.pop_front() {
            Message::Text(text.into())
        } else {
            tokio::select! {
                message = messages.next() => match message {
                    Some(WsMessage::Text(text)) => {
                        let pass = operations
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .protocol_says(&text);
                        if !pass {
                            continue;
                        }
                        Message::Text(text.into())
                    }
                    Some(WsMessage::Close(code, reason)) => close(code, &reason),
                    None => break,
                },
                Some(refusal) = refusals.recv() => Message::Text(refusal.into()),
                Some(control) = controls.recv() => match control {
                    Control::Join(shared) => {
                        let Shareable { id, key, request } = *shared;
                        // A running id given again (legacy protocol only: graphql-transport-ws
                        // closes the socket first) replaces its operation, as in the protocol.
                        members.insert(id.clone(), state.cohorts.join(key, request));
                        seen.remove(&id);
                        unpaid.insert(id);
                        continue;
                    }
                    Control::Close(code, reason) => close(code, &reason),
                    Control::Quit(id) => {
                        members.remove(&id);
                        unpaid.remove(&id);
                        seen.remove(&id);
                        continue;
                    }
                    Control::Leave(id) => {
                        seen.remove(&id);
                        if members.remove(&id).is_none() {
                            continue;
                        }
                        unpaid.remove(&id);
                        Message::Text(share::complete(&id).into())
                    }
                },
                Some((id, event)) = members.next() => match event {
                    Event::Next(published) => {
                        // A member pays the operation's cost from its own read budget once,
                        // at its first result, as the schema charges a subscription at start.
                        let refused = (unpaid.remove(&id) && published.cost > 0)
                            .then(|| state.limits.charge_read(published.cost, client).err())
                            .flatten();
                        match refused {
                            None => {
                                // Updated in place: a socket meets this for every result.
                                let last = match seen.get_mut(&id) {
                                    Some(last) => Some(std::mem::replace(last, published.seq)),
                                    None => seen.insert(id.clone(), published.seq),
                                };
                                let skipped =
                                    last.map_or(0, |last| published.seq.saturating_sub(last + 1));
                                state.metrics.pushed(skipped);
                                Message::Text(share::next(protocol, &id, &published.body).into())
                            }
                            Some(refused) => {
                                members.remove(&id);
                                queued.push_back(ended(&operations, &id));
                                Message::Text(share::next(protocol, &id, &share::refusal(refused)).into())
                            }
                        }
                    }
                    Event::End => {
                        unpaid.remove(&id);
                        seen.remove(&id);
                        Message::Text(ended(&operations, &id).into())
                    }
                },
                result = &mut initialised_rx, if !initialised => {
                    initialised = result.is_ok();
                    continue;
                }
                _ = &mut init_deadline, if !initialised => close(CLOSE_INIT_TIMEOUT, "Connection initialisation timeout"),
                _ = ping.tick() => {
                    let silent = elapsed_ms(started).saturating_sub(last_heard.load(Ordering::Relaxed));
                    if Duration::from_millis(silent) >= ping_every * SILENT_PINGS {
                        close(CLOSE_GOING_AWAY, "no answer to pings")
                    } else {
                        Message::Ping(Vec::new().into())
                    }
                }
                // Subscriptions end with the shutdown token, and the protocol (or their
                // cohort) then sends their `complete`s: wait for those (up to a deadline)
                // before the close frame.
                _ = &mut shutting_down, if !draining => {
                    draining = true;
                    drain_deadline.as_mut().reset(Instant::now() + DRAIN_TIMEOUT);
                    if !idle(&operations) {
                        continue;
                    }
                    close(CLOSE_GOING_AWAY, "server shutting down")
                }
                _ = &mut drain_deadline, if draining => close(CLOSE_GOING_AWAY, "server shutting down"),
            }
        };
        let closing = matches!(outgoing, Message::Close(_));
        match tokio::time::timeout(limits.write_timeout, sink.send(outgoing)).await {
            Ok(Ok(())) => {}
            // Gone: nobody else waits for this socket.
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::info!(?client, "websocket dropped: the client stopped reading");
                return;
            }
        }
        if closing {
            break;
        }
        if draining && queued.is_empty() && idle(&operations) {
            let _ = tokio::time::timeout(
                limits.write_timeout,
                sink.send(close(CLOSE_GOING_AWAY, "server shutting down")),
            )
            .await;
            break;
        }
    }
    let _ = tokio::time::timeout(limits.write_timeout, sink.close()).await;
}

/// The `complete` of operation `id`, which is no longer running.
fn ended(operations: &Mutex<Operations>, id: &str) -> String {
    let complete = share::complete(id);
    operations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .outbound(&complete);
    complete
}

fn idle(operations: &Mutex<Operations>) -> bool {
    operations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
