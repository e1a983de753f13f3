//! Submissions: the write path (check the input, resolve the voter, store, wake the workers)
//! and the reads of stored submissions.

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{validate_allocation, AllocationError, Category, RawAllocation};
use crate::rate_limit::{ClientKey, RateLimited, RateLimiter};
use crate::store::{NewSubmission, Store, StoreError, StoredSubmission, SubmitOutcome, VoterRef};
use crate::voter_token::VoterToken;
use crate::worker::WorkerWaker;

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

/// What submitting and reading submissions needs.
#[derive(Clone)]
pub struct Submissions {
    store: Arc<dyn Store>,
    /// Loaded once at start: categories change only by migration.
    categories: Arc<Vec<Category>>,
    /// Per client address; `None` when the limit is off. Per process: with several servers a
    /// client gets the limit once per server.
    limiter: Option<Arc<RateLimiter>>,
    waker: WorkerWaker,
}

impl Submissions {
    pub fn new(
        store: Arc<dyn Store>,
        categories: Arc<Vec<Category>>,
        limiter: Option<RateLimiter>,
        waker: WorkerWaker,
    ) -> Self {
        Submissions {
            store,
            categories,
            limiter: limiter.map(Arc::new),
            waker,
        }
    }

    /// The voter behind the credentials: `None` for an anonymous caller.
    pub async fn voter_of(&self, credentials: &Credentials) -> Result<Option<Uuid>, AuthError> {
        match credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Malformed => Err(AuthError::Malformed),
            Credentials::Bearer(token) => self
                .store
                .voter_by_token_hash(&token.hash())
                .await?
                .map(Some)
                .ok_or(AuthError::Unknown),
        }
    }

    /// One submission by id.
    pub async fn find(&self, id: Uuid) -> Result<Option<StoredSubmission>, StoreError> {
        self.store.submission(id).await
    }

    /// The caller's own submissions, newest first; they must present a voter token.
    pub async fn of_caller(
        &self,
        credentials: &Credentials,
        limit: i64,
    ) -> Result<Vec<StoredSubmission>, AuthError> {
        let voter = self
            .voter_of(credentials)
            .await?
            .ok_or(AuthError::Missing)?;
        Ok(self.store.submissions_of_voter(voter, limit).await?)
    }

    /// Stores a valid allocation. Nothing is written unless every check passes.
    ///
    /// `client` is where the call came from; the rate limit applies when it is known (every
    /// network transport passes it) and the limit is on.
    pub async fn submit(
        &self,
        credentials: &Credentials,
        client: Option<ClientAddr>,
        raw: &[RawAllocation<'_>],
        idempotency_key: Option<String>,
    ) -> Result<Submitted, SubmitError> {
        // First, before any work: every attempt takes a token, whether it turns out invalid,
        // a replay of an idempotency key, or new. Refunding replays would need a database
        // read before the check, which is the cost the limit is there to cap; a client
        // retrying after a network failure sends one replay, well within any sensible burst.
        if let (Some(limiter), Some(ClientAddr(ip))) = (&self.limiter, client) {
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
        let allocation = validate_allocation(raw, &self.categories)?;
        let existing_voter = self.voter_of(credentials).await?;

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
        let outcome = self
            .store
            .submit(NewSubmission::new(voter, allocation, idempotency_key))
            .await?;
        match outcome {
            SubmitOutcome::Created(submission) => {
                self.waker.wake();
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
}
