//! How resolvers reach the database: through per-request loaders, and never with more pooled
//! connections than reads may take.
//!
//! - Each request gets its own [`DataLoader`]s (async-graphql's batching, with a cache that
//!   lives as long as the request). Every alias of `mySubmissions` in a request is answered by
//!   one load of the longest page asked for, and every `submission(id)` by one batch that
//!   reads its distinct ids one after another on a single connection: however many aliases a
//!   request has, its reads use one connection per kind of field at a time.
//! - Reads share [`ReadPermits`], fewer than the pool's connections: whatever the reads do, a
//!   few connections stay free for submissions and the outbox worker.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::error::ApiError;
use super::Services;
use crate::store::StoredSubmission;
use crate::submissions::{Credentials, Submissions};

/// How long a read waits for a permit before giving up with OVERLOADED. Reads hold permits for
/// at most a statement timeout or so, so waiting longer means the database is overwhelmed.
const PERMIT_WAIT: Duration = Duration::from_secs(5);

/// What a client waiting for a read permit in vain is told to wait before trying again.
const RETRY_AFTER_SECS: u64 = 1;

/// Permits for database reads made for GraphQL requests, fewer than the pool has connections.
///
/// A semaphore in front of the pool rather than a second pool: the store stays one pool, and
/// reads wait here (with a deadline) instead of in the pool's queue, where they would take
/// every connection that comes free before a write could. Writes (submissions, the worker's
/// folds) never take a permit, so the reserved connections are always theirs.
#[derive(Clone)]
pub struct ReadPermits {
    semaphore: Arc<Semaphore>,
    wait: Duration,
}

impl ReadPermits {
    /// A quarter of the pool (at least one connection) is kept for writes. A pool of one
    /// connection cannot keep any: reads then get it too.
    pub fn for_pool(pool_size: usize) -> Self {
        let reserved = (pool_size / 4).max(1);
        let reads = pool_size.saturating_sub(reserved).max(1);
        if reads >= pool_size {
            tracing::warn!(
                pool_size,
                "database pool too small to keep connections for writes; use 2 or more"
            );
        }
        Self::new(reads, PERMIT_WAIT)
    }

    pub fn new(permits: usize, wait: Duration) -> Self {
        ReadPermits {
            semaphore: Arc::new(Semaphore::new(permits)),
            wait,
        }
    }

    /// Reads that may run at once.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Waits for a permit, at most `wait`; hold it while using the store.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(self.wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => {
                // Never closed; if it ever were, it would be a bug, not the client's fault.
                tracing::error!(error = %closed, "read permits closed");
                Err(ApiError::Internal)
            }
            Err(_) => {
                tracing::warn!(wait = ?self.wait, "no read permit came free in time");
                Err(ApiError::Overloaded {
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
        }
    }
}

/// The caller's own submissions, newest first, by page length.
pub struct CallerPages {
    submissions: Submissions,
    credentials: Credentials,
    reads: ReadPermits,
}

impl Loader<i32> for CallerPages {
    type Value = Vec<StoredSubmission>;
    type Error = ApiError;

    /// One read of the longest page asked for; each shorter page is its beginning.
    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Self::Value>, Self::Error> {
        let Some(&longest) = keys.iter().max() else {
            return Ok(HashMap::new());
        };
        let _permit = self.reads.acquire().await?;
        let page = self
            .submissions
            .of_caller(&self.credentials, i64::from(longest))
            .await?;
        Ok(keys
            .iter()
            .map(|&first| {
                let len = usize::try_from(first).unwrap_or(0);
                (first, page.iter().take(len).cloned().collect())
            })
            .collect())
    }
}

/// Submissions by id.
pub struct SubmissionsById {
    submissions: Submissions,
    reads: ReadPermits,
}

impl Loader<Uuid> for SubmissionsById {
    type Value = StoredSubmission;
    type Error = ApiError;

    /// The ids one after another under one permit: the store reads one id at a time, and a
    /// request should not take a connection per alias.
    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let _permit = self.reads.acquire().await?;
        let mut found = HashMap::with_capacity(ids.len());
        for &id in ids {
            if let Some(submission) = self.submissions.find(id).await? {
                found.insert(id, submission);
            }
        }
        Ok(found)
    }
}

/// The loaders of one request, in its data.
pub struct Loaders {
    pub pages: DataLoader<CallerPages, HashMapCache>,
    pub by_id: DataLoader<SubmissionsById, HashMapCache>,
}

impl Loaders {
    pub fn new(services: &Services, credentials: Credentials) -> Self {
        let pages = CallerPages {
            submissions: services.submissions.clone(),
            credentials,
            reads: services.reads.clone(),
        };
        let by_id = SubmissionsById {
            submissions: services.submissions.clone(),
            reads: services.reads.clone(),
        };
        Loaders {
            pages: DataLoader::with_cache(pages, tokio::spawn, HashMapCache::default()),
            by_id: DataLoader::with_cache(by_id, tokio::spawn, HashMapCache::default()),
        }
    }
}

/// Gives every request (over HTTP or WebSocket) loaders of its own, for the caller it names.
pub struct RequestLoaders;

impl ExtensionFactory for RequestLoaders {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLoaders)
    }
}

#[async_trait::async_trait]
impl Extension for RequestLoaders {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = match ctx.data_opt::<Services>() {
            Some(services) => {
                // The transport puts the caller's credentials in the request's data (over
                // WebSocket there are none: anonymous).
                let credentials = request
                    .data
                    .get(&TypeId::of::<Credentials>())
                    .and_then(|data| data.downcast_ref::<Credentials>())
                    .cloned()
                    .unwrap_or_default();
                let loaders = Loaders::new(services, credentials);
                request.data(loaders)
            }
            None => request,
        };
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ErrorCode;

    #[tokio::test]
    async fn keeps_a_quarter_of_the_pool_for_writes() {
        assert_eq!(ReadPermits::for_pool(16).available(), 12);
        assert_eq!(ReadPermits::for_pool(4).available(), 3);
        assert_eq!(ReadPermits::for_pool(2).available(), 1);
        assert_eq!(ReadPermits::for_pool(1).available(), 1);
    }

    #[tokio::test]
    async fn a_read_waits_for_a_permit_then_gives_up() {
        let permits = ReadPermits::new(1, Duration::from_millis(50));
        let held = permits.acquire().await.expect("a free permit");
        let refused = permits.acquire().await.expect_err("none free");
        assert_eq!(refused.code(), ErrorCode::Overloaded);
        drop(held);
        assert!(permits.acquire().await.is_ok());
    }
}
