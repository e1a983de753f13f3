//! Redis cache: one hash per deployment holding the snapshot and its version.

use async_trait::async_trait;
use fred::prelude::{Client, ClientLike, HashesInterface, KeysInterface, LuaInterface};

use super::{CacheError, SnapshotCache};
use crate::domain::Snapshot;

/// Writes only when the stored version is older, so a slow worker can never put an old
/// snapshot over a newer one.
const PUT_IF_NEWER: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'snapshot', ARGV[2])
return 1
"#;

pub struct RedisCache {
    client: Client,
    key: String,
}

impl RedisCache {
    pub fn new(client: Client, key_prefix: &str) -> Self {
        RedisCache {
            client,
            key: format!("{key_prefix}aggregates:snapshot"),
        }
    }
}

#[async_trait]
impl SnapshotCache for RedisCache {
    async fn get(&self) -> Result<Option<Snapshot>, CacheError> {
        let raw: Option<String> = self.client.hget(&self.key, "snapshot").await?;
        Ok(raw.map(|json| serde_json::from_str(&json)).transpose()?)
    }

    async fn put_if_newer(&self, snapshot: &Snapshot) -> Result<bool, CacheError> {
        let json = serde_json::to_string(snapshot)?;
        let stored: i64 = self
            .client
            .eval(
                PUT_IF_NEWER,
                vec![self.key.clone()],
                vec![snapshot.version.to_string(), json],
            )
            .await?;
        Ok(stored == 1)
    }

    async fn invalidate(&self) -> Result<(), CacheError> {
        let _: i64 = self.client.del(&self.key).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self.client.ping(None).await?;
        Ok(())
    }
}
