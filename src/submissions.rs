//! Submissions: the write path (check the input, resolve the voter, store, wake the workers)
//! and the reads of stored submissions.
//!
//! Idempotency keys work as in the payment APIs: a key is scoped to its caller (a voter's own
//! keys; for anonymous callers, the key belongs to the voter its first call created), bound to
//! the first request's payload (another payload under the same key is refused), and a replay
//! returns the first response again, the new voter's token included.

mod group_commit;
mod idempotency;

use std::net::IpAddr;
use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{validate_allocation, AllocationError, Category, RawAllocation};
use crate::metrics::{Limit, Metrics, SubmissionResult};
use crate::rate_limit::{ClientKey, RateLimited, RateLimiter};
use crate::store::{
    KeyRecord, NewSubmission, Replay, Store, StoreError, StoredSubmission, SubmitOutcome, VoterRef,
};
use crate::voter_token::VoterToken;

pub use group_commit::GroupCommit;
use idempotency::IdempotencyKey;
pub use idempotency::{BadIdempotencyKey, SealError, MAX_IDEMPOTENCY_KEY_LEN};

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
    #[error(transparent)]
    BadIdempotencyKey(#[from] BadIdempotencyKey),
    /// The key's first request had another payload; nothing was written.
    #[error(
        "idempotencyKey was already used with other allocations; send a new key for a new \
         submission"
    )]
    IdempotencyKeyReused,
    /// The first response's voter token, stored sealed under the key, does not open.
    #[error(transparent)]
    SealedToken(#[from] SealError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubmitError {
    /// How the metrics count this refusal.
    fn counted_as(&self) -> SubmissionResult {
        match self {
            SubmitError::Invalid(_) | SubmitError::BadIdempotencyKey(_) => {
                SubmissionResult::Invalid
            }
            SubmitError::IdempotencyKeyReused => SubmissionResult::IdempotencyKeyReused,
            SubmitError::Auth(AuthError::Store(error)) | SubmitError::Store(error)
                if error.is_unavailable() =>
            {
                SubmissionResult::Unavailable
            }
            SubmitError::Auth(AuthError::Store(_))
            | SubmitError::Store(_)
            | SubmitError::SealedToken(_) => SubmissionResult::Failed,
            SubmitError::Auth(_) => SubmissionResult::Unauthenticated,
            SubmitError::RateLimited(_) => SubmissionResult::RateLimited,
        }
    }
}

pub struct Submitted {
    pub submission: StoredSubmission,
    /// Set when this call created the voter, or replays (by its idempotency key) the call
    /// that did.
    pub voter_token: Option<VoterToken>,
    /// Whether this answers an earlier call with the same idempotency key.
    pub replayed: bool,
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
    /// Writes new submissions in batches and wakes the workers once per batch.
    writer: GroupCommit,
    metrics: Metrics,
}

impl Submissions {
    pub fn new(
        store: Arc<dyn Store>,
        categories: Arc<Vec<Category>>,
        limiter: Option<RateLimiter>,
        writer: GroupCommit,
        metrics: Metrics,
    ) -> Self {
        Submissions {
            store,
            categories,
            limiter: limiter.map(Arc::new),
            writer,
            metrics,
        }
    }

    /// The voter behind the credentials: `None` for an anonymous caller. For reads by token;
    /// a submission's voter is looked up in its write batch instead (`VoterRef::ByToken`).
    async fn voter_of(&self, credentials: &Credentials) -> Result<Option<Uuid>, AuthError> {
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
        let result = self
            .submit_uncounted(credentials, client, raw, idempotency_key)
            .await;
        self.metrics.submission(match &result {
            Ok(submitted) if submitted.replayed => SubmissionResult::Replayed,
            Ok(_) => SubmissionResult::Accepted,
            Err(error) => error.counted_as(),
        });
        if matches!(result, Err(SubmitError::RateLimited(_))) {
            self.metrics.rate_limited(Limit::Submissions);
        }
        result
    }

    async fn submit_uncounted(
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
        let key = idempotency_key.map(IdempotencyKey::parse).transpose()?;
        if matches!(credentials, Credentials::Malformed) {
            return Err(AuthError::Malformed.into());
        }
        let allocation = validate_allocation(raw, &self.categories)?;
        // The payload a key is bound to: only a keyed submission needs it.
        let keyed = key.map(|key| {
            let payload_hash = idempotency::payload_hash(allocation.entries());
            (key, payload_hash)
        });
        let (voter, new_token) = match credentials {
            // Looked up by the store in the batch's transaction: a lookup of its own first
            // would cost a round trip per submission (measured: 30 % of the rate on
            // PostgreSQL, 20 % on SQLite, for one voter submitting again and again).
            Credentials::Bearer(token) => (
                VoterRef::ByToken {
                    token_hash: token.hash(),
                },
                None,
            ),
            Credentials::Malformed => return Err(AuthError::Malformed.into()),
            Credentials::Anonymous => {
                let token = VoterToken::generate();
                let voter = VoterRef::New {
                    // Time-ordered for the reason of `NewSubmission::id`.
                    id: Uuid::now_v7(),
                    token_hash: token.hash(),
                };
                (voter, Some(token))
            }
        };
        let record = match &keyed {
            Some((key, payload_hash)) => Some(KeyRecord {
                key_hash: key.lookup_hash(),
                payload_hash: payload_hash.clone(),
                sealed_token: match (&voter, &new_token) {
                    (VoterRef::New { id, .. }, Some(token)) => Some(key.seal(token, *id)?),
                    _ => None,
                },
            }),
            None => None,
        };
        let outcome = self
            .writer
            .submit(NewSubmission::new(voter, allocation, record))
            .await
            .map_err(|error| match error {
                StoreError::UnknownVoter => SubmitError::from(AuthError::Unknown),
                error => error.into(),
            })?;
        match (outcome, keyed) {
            (SubmitOutcome::Created(submission), _) => Ok(Submitted {
                submission,
                voter_token: new_token,
                replayed: false,
            }),
            (SubmitOutcome::Replayed(replay), Some((key, payload_hash))) => {
                Self::replayed(replay, &key, &payload_hash)
            }
            // The store replays only a submission that has a key.
            (SubmitOutcome::Replayed(_), None) => Err(StoreError::Corrupt(
                "a submission without an idempotency key was replayed".into(),
            )
            .into()),
        }
    }

    /// The first response to `key` again, if this request is the same as the first: the
    /// store found the replay in the caller's scope, so only the payload is left to check.
    fn replayed(
        replay: Replay,
        key: &IdempotencyKey,
        payload_hash: &str,
    ) -> Result<Submitted, SubmitError> {
        let Replay {
            submission,
            payload_hash: first_payload,
            sealed_token,
        } = replay;
        // Keys stored before payloads were hashed are bound to their submission's allocations.
        let first_payload =
            first_payload.unwrap_or_else(|| idempotency::payload_hash(&submission.allocations));
        if first_payload != payload_hash {
            return Err(SubmitError::IdempotencyKeyReused);
        }
        // Sealed for the voter the first call created; keys stored before tokens were sealed
        // replay without one.
        let voter_token = sealed_token
            .map(|sealed| key.open(&sealed, submission.voter_id))
            .transpose()?;
        Ok(Submitted {
            submission,
            voter_token,
            replayed: true,
        })
    }
}
