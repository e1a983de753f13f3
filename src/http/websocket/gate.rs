//! Who may open a WebSocket: pages of allowed origins only, and no more connections per
//! address or in all than configured. A refusal is an HTTP answer before the upgrade.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::rate_limit::ClientKey;
use crate::submissions::ClientAddr;

#[derive(Debug, Clone)]
pub struct WebSocketLimits {
    /// Largest message (and frame) a client may send.
    pub max_message_bytes: usize,
    /// Operations (subscriptions, queries) running at once on one socket.
    pub max_operations: usize,
    pub max_per_address: usize,
    pub max_total: usize,
    /// How long one write may wait for a client to read.
    pub write_timeout: Duration,
    /// How often the server pings; three intervals without a frame from the client close it.
    pub ping_interval: Duration,
    /// Origins (`https://example.org`) whose pages may connect besides the server's own; `*`
    /// allows any.
    pub allowed_origins: Vec<String>,
}

pub struct WebSocketGate {
    limits: WebSocketLimits,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_address: HashMap<ClientKey, usize>,
}

/// Holds a connection's place; gives it back when dropped.
pub struct Admitted {
    gate: Arc<WebSocketGate>,
    key: Option<ClientKey>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .gate
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(count) = open.per_address.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.per_address.remove(&key);
                }
            }
        }
    }
}

/// Why a WebSocket was not opened; answered as HTTP before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this origin may not open a WebSocket here")]
    Origin,
    #[error("too many WebSocket connections from your address")]
    TooManyFromAddress,
    #[error("too many WebSocket connections; try again later")]
    TooManyInAll,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::TooManyFromAddress => StatusCode::TOO_MANY_REQUESTS,
            Refusal::TooManyInAll => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.to_string()).into_response();
        if self != Refusal::Origin {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        response
    }
}

impl WebSocketGate {
    pub fn new(limits: WebSocketLimits) -> Arc<Self> {
        Arc::new(WebSocketGate {
            limits,
            open: Mutex::new(Open::default()),
        })
    }

    pub fn limits(&self) -> &WebSocketLimits {
        &self.limits
    }

    /// A browser names the page's origin; a page of another site must not be able to use a
    /// visitor's connection to this one. Clients that are not browsers send no `Origin`.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let same_site = origin
            .split_once("://")
            .is_some_and(|(_, authority)| !host.is_empty() && authority == host);
        let listed = self
            .limits
            .allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed == origin);
        if same_site || listed {
            Ok(())
        } else {
            tracing::info!(origin, "websocket refused: origin not allowed");
            Err(Refusal::Origin)
        }
    }

    /// Takes a place for a connection from `client`, or answers why not.
    pub fn admit(self: &Arc<Self>, client: Option<ClientAddr>) -> Result<Admitted, Refusal> {
        let key = client.map(|ClientAddr(ip): ClientAddr| ClientKey::from(ip));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.limits.max_total {
            return Err(Refusal::TooManyInAll);
        }
        if let Some(key) = key {
            let count = open.per_address.entry(key).or_insert(0);
            if *count >= self.limits.max_per_address {
                return Err(Refusal::TooManyFromAddress);
            }
            *count += 1;
        }
        open.total += 1;
        Ok(Admitted {
            gate: self.clone(),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn limits(per_address: usize, total: usize) -> WebSocketLimits {
        WebSocketLimits {
            max_message_bytes: 1024,
            max_operations: 4,
            max_per_address: per_address,
            max_total: total,
            write_timeout: Duration::from_secs(1),
            ping_interval: Duration::from_secs(20),
            allowed_origins: vec!["https://app.example".into()],
        }
    }

    fn from(last: u8) -> Option<ClientAddr> {
        Some(ClientAddr(IpAddr::from([10, 0, 0, last])))
    }

    #[test]
    fn counts_per_address_and_in_all_and_gives_places_back() {
        let gate = WebSocketGate::new(limits(2, 3));
        let a1 = gate.admit(from(1)).expect("first");
        let _a2 = gate.admit(from(1)).expect("second");
        assert_eq!(gate.admit(from(1)).err(), Some(Refusal::TooManyFromAddress));
        let _b1 = gate.admit(from(2)).expect("another address");
        assert_eq!(gate.admit(from(3)).err(), Some(Refusal::TooManyInAll));
        drop(a1);
        assert!(gate.admit(from(1)).is_ok());
    }

    #[test]
    fn lets_in_the_own_site_listed_origins_and_non_browsers_only() {
        let gate = WebSocketGate::new(limits(2, 3));
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("vote.example:8080"));
            if let Some(origin) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            }
            h
        };
        assert!(gate.check_origin(&headers(None)).is_ok());
        assert!(gate
            .check_origin(&headers(Some("http://vote.example:8080")))
            .is_ok());
        assert!(gate
            .check_origin(&headers(Some("https://app.example")))
            .is_ok());
        assert!(gate
            .check_origin(&headers(Some("https://evil.example")))
            .is_err());
        assert!(gate.check_origin(&headers(Some("null"))).is_err());
    }
}
