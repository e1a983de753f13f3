//! A small map of the transport's, by hash, read on every request and changed rarely.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

/// Read without a lock (the runtime's workers would otherwise take turns at one mutex on the
/// hot path); a change copies the map, whose values are small or behind pointers, and swaps it
/// in. Past `bound` keys, a new key finds it emptied first: what was kept is learnt again, and
/// a client that sends endless new keys pays the full price of each of them anyway.
pub struct BoundedSwapMap<V> {
    entries: ArcSwap<HashMap<String, V>>,
    bound: usize,
}

impl<V: Clone> BoundedSwapMap<V> {
    pub fn new(bound: usize) -> Self {
        BoundedSwapMap {
            entries: ArcSwap::default(),
            bound,
        }
    }

    /// The map as it is now.
    pub fn load(&self) -> Guard<Arc<HashMap<String, V>>> {
        self.entries.load()
    }

    /// Sets `key` to what `change` makes of its value (`None` when it has none).
    pub fn update(&self, key: &str, change: impl Fn(Option<&V>) -> V) {
        self.entries.rcu(|entries| {
            let mut entries = if entries.len() >= self.bound && !entries.contains_key(key) {
                HashMap::new()
            } else {
                HashMap::clone(entries)
            };
            let value = change(entries.get(key));
            entries.insert(key.to_owned(), value);
            entries
        });
    }
}
