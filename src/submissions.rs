//! The write path: check the input, resolve the voter, store the submission, wake the worker.

use std::net::IpAddr;

use uuid::Uuid;

use crate::app::App;
use crate::domain::{validate_allocation, AllocationError, RawAllocation};
use crate::rate_limit::{ClientKey, RateLimited};
use crate::store::{NewSubmission, StoreError, StoredSubmission, SubmitOutcome, VoterRef};
use crate::voter_token::VoterToken;

/// Longest idempotency key accepted; a UUID or ULID fits many times over.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// Who is calling, as the `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Bearer(VoterToken),
    /// A header was sent but is not a well-formed bearer token.
    Malformed,
}

/// The network address a request came from (the TCP peer; forwarding headers are not
/// trusted), as the transport saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the voter token is malformed; send `Authorization: Bearer <voterToken>`")]
    Malformed,
    #[error("the voter token is unknown")]
    Unknown,
    #[error("this needs a voter token: send `Authorization: Bearer <voterToken>`")]
    Missing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] AllocationError),
    #[error("idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters")]
    BadIdempotencyKey,
    #[error("idempotencyKey was already used by another voter")]
    IdempotencyKeyTaken,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Submitted {
    pub submission: StoredSubmission,
    /// Set only when this call created the voter.
    pub voter_token: Option<VoterToken>,
}

/// The voter behind the credentials: `None` for an anonymous caller.
pub async fn voter_of(app: &App, credentials: &Credentials) -> Result<Option<Uuid>, AuthError> {
    match credentials {
        Credentials::Anonymous => Ok(None),
        Credentials::Malformed => Err(AuthError::Malformed),
        Credentials::Bearer(token) => app
            .store
            .voter_by_token_hash(&token.hash())
            .await?
            .map(Some)
            .ok_or(AuthError::Unknown),
    }
}

/// Stores a valid allocation. Nothing is written unless every check passes.
///
/// `client` is where the call came from; the rate limit applies when it is known (every
/// network transport passes it) and the limit is on.
pub async fn submit(
    app: &App,
    credentials: &Credentials,
    client: Option<ClientAddr>,
    raw: &[RawAllocation<'_>],
    idempotency_key: Option<String>,
) -> Result<Submitted, SubmitError> {
    // First, before any work: every attempt takes a token, whether it turns out invalid, a
    // replay of an idempotency key, or new. Refunding replays would need a database read
    // before the check, which is the cost the limit is there to cap; a client retrying after
    // a network failure sends one replay, well within any sensible burst.
    if let (Some(limiter), Some(ClientAddr(ip))) = (&app.submit_limiter, client) {
        limiter.check(ClientKey::from(ip)).inspect_err(|limited| {
            tracing::debug!(
                retry_after_secs = limited.retry_after_secs(),
                "submission rate-limited"
            );
        })?;
    }
    if let Some(key) = &idempotency_key {
        if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(SubmitError::BadIdempotencyKey);
        }
    }
    if matches!(credentials, Credentials::Malformed) {
        return Err(AuthError::Malformed.into());
    }
    let allocation = validate_allocation(raw, &app.categories)?;
    let existing_voter = voter_of(app, credentials).await?;

    let (voter, new_token) = match existing_voter {
        Some(id) => (VoterRef::Existing(id), None),
        None => {
            let token = VoterToken::generate();
            let voter = VoterRef::New {
                id: Uuid::new_v4(),
                token_hash: token.hash(),
            };
            (voter, Some(token))
        }
    };
    let outcome = app
        .store
        .submit(NewSubmission::new(voter, allocation, idempotency_key))
        .await?;
    match outcome {
        SubmitOutcome::Created(submission) => {
            app.wake_workers().await;
            Ok(Submitted {
                submission,
                voter_token: new_token,
            })
        }
        SubmitOutcome::Replayed(submission) => {
            if existing_voter.is_some_and(|voter| voter != submission.voter_id) {
                return Err(SubmitError::IdempotencyKeyTaken);
            }
            Ok(Submitted {
                submission,
                voter_token: None,
            })
        }
    }
}
