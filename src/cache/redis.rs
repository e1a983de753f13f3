//! Redis cache: one hash per deployment holding the snapshot and its version.

use async_trait::async_trait;
use fred::prelude::{ClientLike, HashesInterface, KeysInterface, LuaInterface};

use super::{CacheError, SnapshotCache};
use crate::domain::Snapshot;
use crate::redis::Redis;

/// `Snapshot::supersedes` as one atomic step: within a generation only a newer version is
/// written, so a slow worker can never put an old snapshot over a newer one; another
/// generation is written whatever its version (the database was recreated or restored), but
/// "no summary yet" (an empty generation) never replaces a summary.
const PUT_IF_NEWER: &str = r#"
local generation = redis.call('HGET', KEYS[1], 'generation') or ''
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if generation == ARGV[3] then
  if current >= tonumber(ARGV[1]) then
    return 0
  end
elseif ARGV[3] == '' then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'generation', ARGV[3], 'snapshot', ARGV[2])
return 1
"#;

pub struct RedisCache {
    redis: Redis,
    key: String,
}

impl RedisCache {
    pub fn new(redis: Redis, key_prefix: &str) -> Self {
        RedisCache {
            redis,
            key: format!("{key_prefix}aggregates:snapshot"),
        }
    }
}

#[async_trait]
impl SnapshotCache for RedisCache {
    async fn get(&self) -> Result<Option<Snapshot>, CacheError> {
        let key = &self.key;
        let raw: Option<String> = self
            .redis
            .run(|c| async move { c.hget(key, "snapshot").await })
            .await?;
        Ok(raw.map(|json| serde_json::from_str(&json)).transpose()?)
    }

    async fn put_if_newer(&self, snapshot: &Snapshot) -> Result<bool, CacheError> {
        let json = serde_json::to_string(snapshot)?;
        let keys = vec![self.key.clone()];
        let args = vec![
            snapshot.version.to_string(),
            json,
            snapshot.generation.clone(),
        ];
        let stored: i64 = self
            .redis
            .run(|c| async move { c.eval(PUT_IF_NEWER, keys, args).await })
            .await?;
        Ok(stored == 1)
    }

    async fn invalidate(&self) -> Result<(), CacheError> {
        let key = &self.key;
        let _: i64 = self.redis.run(|c| async move { c.del(key).await }).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let _: String = self
            .redis
            .run(|c| async move { c.ping(None).await })
            .await?;
        Ok(())
    }
}
