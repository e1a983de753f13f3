//! In-process bus for the embedded default: publishing is a direct call.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Bus, BusError, BusHandler};
use crate::domain::Snapshot;

pub struct MemoryBus {
    handler: Arc<dyn BusHandler>,
}

impl MemoryBus {
    pub fn new(handler: Arc<dyn BusHandler>) -> Self {
        MemoryBus { handler }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish_snapshot(&self, snapshot: &Snapshot) -> Result<(), BusError> {
        self.handler.snapshot_published(snapshot.clone());
        Ok(())
    }

    async fn nudge_workers(&self) -> Result<(), BusError> {
        self.handler.outbox_nudged();
        Ok(())
    }
}
