//! A per-container cache whose entries are trusted for a short time: policies, revoked keys and
//! the keys last written to the key cache are read again once their time is up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A per-container map whose entries are trusted for a short time.
pub(crate) struct Recent<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> Recent<V> {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        self.get_within(key, self.ttl)
    }

    /// The entry if it is younger than `max_age` (and than the cache's own time).
    pub(crate) fn get_within(&self, key: &str, max_age: Duration) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl.min(max_age)).map(|(_, value)| value.clone())
    }

    pub(crate) fn insert(&self, key: String, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // keys may be callers' session names: what has expired goes, so the map stays as small as a ttl's traffic
        let ttl = self.ttl;
        entries.retain(|_, (at, _)| at.elapsed() < ttl);
        entries.insert(key, (Instant::now(), value));
    }
}
