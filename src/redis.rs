//! The process's Redis: one multiplexed client for commands, one connection for its
//! subscription, and a circuit breaker that makes a missing Redis cost nothing.
//!
//! Redis is optional for correctness (the database holds the truth), so every command fails
//! fast: a short timeout each, no queueing while disconnected, and after a few failures in a
//! row no command is sent at all for a while. Callers fall back (reads to the summary, pushes
//! to this process only) and the clients reconnect in the background.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use failsafe::backoff::{self, Constant};
use failsafe::failure_policy::{self, ConsecutiveFailures};
use failsafe::StateMachine;
use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, Options, ReconnectPolicy};
use fred::types::config::UnresponsiveConfig;

/// Failures in a row that open the circuit.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open circuit refuses commands before it lets one through to try.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// How long start-up waits for Redis before going on without it.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis is unavailable (circuit open)")]
    Unavailable,
    #[error("redis command failed")]
    Command(#[source] fred::error::Error),
}

/// Whether the breaker is closed, for readiness and logs.
#[derive(Default, Clone)]
struct Health {
    degraded: Arc<AtomicBool>,
}

impl failsafe::Instrument for Health {
    fn on_call_rejected(&self) {}

    fn on_open(&self) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(?OPEN_FOR, "redis failing: circuit open, serving without it");
        }
    }

    fn on_half_open(&self) {}

    fn on_closed(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("redis answers again: circuit closed");
        }
    }
}

type Breaker = StateMachine<ConsecutiveFailures<Constant>, Health>;

/// The command client with its fail-fast options and breaker; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    options: Options,
    breaker: Breaker,
    health: Health,
}

impl Redis {
    /// Builds both clients and starts connecting. Waits a moment for the first connection,
    /// then goes on without it: the clients keep trying in the background.
    pub async fn connect(
        url: &str,
        command_timeout: Duration,
    ) -> Result<(Redis, SubscriberClient), fred::error::Error> {
        let mut config = fred::prelude::Config::from_url(url)?;
        // Retry the first connection like any later one instead of failing start-up.
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                // A connection that stops answering (a cut cable, not a refused port) is
                // closed and reconnected instead of holding commands until their timeout.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(2)),
                    interval: Duration::from_millis(500),
                };
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client.connect();
        subscriber.connect();
        if tokio::time::timeout(FIRST_CONNECT_WAIT, client.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!("redis does not answer yet; starting without it");
        }
        let health = Health::default();
        let breaker = failsafe::Config::new()
            .failure_policy(failure_policy::consecutive_failures(
                FAILURES_TO_OPEN,
                backoff::constant(OPEN_FOR),
            ))
            .instrument(health.clone())
            .build();
        let options = Options {
            timeout: Some(command_timeout),
            // While disconnected, fail at once rather than queue until a reconnect.
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        };
        let redis = Redis {
            client,
            options,
            breaker,
            health,
        };
        Ok((redis, subscriber))
    }

    /// Runs one command with the fail-fast options, unless the circuit is open.
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(fred::clients::WithOptions<Client>) -> Fut,
        Fut: Future<Output = Result<T, fred::error::Error>>,
    {
        if !self.breaker.is_call_permitted() {
            return Err(RedisError::Unavailable);
        }
        match command(self.client.with_options(&self.options)).await {
            Ok(value) => {
                self.breaker.on_success();
                Ok(value)
            }
            Err(error) => {
                self.breaker.on_error();
                Err(RedisError::Command(error))
            }
        }
    }

    /// Whether Redis is being skipped because it failed.
    pub fn degraded(&self) -> bool {
        self.health.degraded.load(Ordering::Relaxed) || !self.client.is_connected()
    }
}
