//! Object storage behind a small trait: S3 (or any S3-compatible server: MinIO, SeaweedFS) in
//! production, an in-memory map in unit tests.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{IssueError, StoreError};

/// An object read back with the entity tag that a later conditional write can name.
#[derive(Debug, Clone)]
pub struct Object {
    pub body: Vec<u8>,
    pub etag: String,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// Only if no object exists under the key (`If-None-Match: *`): write-once records.
    IfAbsent,
    /// Only if the object still has this entity tag (`If-Match`): compare-and-swap.
    IfMatch(String),
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `Ok(None)` when there is no object under `key`.
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    /// Returns the new object's entity tag; `StoreError::PreconditionFailed` when the condition
    /// does not hold.
    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<String, StoreError>;
    /// Keys under `prefix`, in the store's (lexicographic) order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// At most `max` keys under `prefix` that sort after `start_after`, in order: one request
    /// however many keys the prefix holds.
    async fn list_after(&self, prefix: &str, start_after: &str, max: usize) -> Result<Vec<String>, StoreError>;
    /// A URL that lets its holder GET the object until it expires.
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError>;
    /// For each key under `prefix` the store kept versions of: how many versions it has, and
    /// whether a delete marker hides it. Empty where the store keeps no versions.
    async fn history(&self, prefix: &str) -> Result<Vec<(String, usize, bool)>, StoreError>;
}

/// Writes `body` under `key` once. An object already there counts as this write only when it
/// holds exactly `body` (an earlier attempt whose answer was lost); anything else there is
/// [`StoreError::Taken`]: someone else wrote first, and it must not pass for ours.
pub async fn put_once(store: &dyn Store, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
    match store.put(key, body.clone(), Condition::IfAbsent).await {
        Ok(_) => Ok(()),
        Err(StoreError::PreconditionFailed) => match store.get(key).await? {
            Some(existing) if existing.body == body => Ok(()),
            _ => Err(StoreError::Taken { key: key.to_owned() }),
        },
        Err(err) => Err(err),
    }
}

/// Runs `attempt` (numbered from 0) until it returns `Some`, after a jittered, growing pause
/// each time it returns `None`: a lost compare-and-swap (someone else wrote first), to be read
/// and tried again. `Ok(None)` once `max` attempts all lost. The one retry loop of every
/// conditional write that may lose a race: the serial counter, revocation versions, the KRL and
/// the policy.
pub async fn retry_on_conflict<T, E, F, Fut>(max: u32, mut attempt: F) -> Result<Option<T>, E>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, E>>,
{
    let mut backoff = Duration::from_millis(4);
    for n in 0..max {
        if let Some(done) = attempt(n).await? {
            return Ok(Some(done));
        }
        let pause = rand::Rng::gen_range(&mut rand::thread_rng(), Duration::ZERO..=backoff);
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_millis(250));
    }
    Ok(None)
}

/// Every object under `prefix` with its body, or with why it could not be fetched. An object that
/// exists but cannot be read (archived to Glacier, encrypted under a key the caller may not use,
/// refused to it) is kept with its error for the caller to name and skip: one such object must not
/// stop a whole log. Any other failure (the server is unreachable) fails the read.
pub async fn read_all(store: &dyn Store, prefix: &str) -> Result<Vec<(String, Result<Vec<u8>, StoreError>)>, StoreError> {
    let mut objects = Vec::new();
    for key in store.list(prefix).await? {
        match store.get(&key).await {
            Ok(Some(object)) => objects.push((key, Ok(object.body))),
            Ok(None) => {}
            Err(err) if err.is_unreadable_object() => objects.push((key, Err(err))),
            Err(err) => return Err(err),
        }
    }
    Ok(objects)
}

/// Refuses a server that ignores `If-None-Match: *` (MinIO before late 2024 did): there every
/// write-once record and the serial counter's first write could be overwritten unnoticed. Writes
/// `probe` twice as a create-only write; the second must be refused (412). Costs one or two
/// writes, once per process.
pub async fn refuse_ignored_conditions(store: &dyn Store, probe: &str) -> Result<(), IssueError> {
    for attempt in 0..2 {
        let body = format!("sshca probe of conditional creates {}\n", uuid::Uuid::new_v4()).into_bytes();
        match store.put(probe, body, Condition::IfAbsent).await {
            Err(StoreError::PreconditionFailed) => return Ok(()),
            Err(err) => return Err(err.into()),
            Ok(_) if attempt == 0 => {}
            Ok(_) => break,
        }
    }
    Err(IssueError::Configuration(format!(
        "this S3 server ignores conditional creates (If-None-Match: * on PutObject wrote over {probe}), so audit records and the serial counter could be overwritten there: use AWS S3 or a server that honours them (MinIO from RELEASE.2024-11, SeaweedFS)"
    )))
}

pub mod memory {
    //! An in-memory [`Store`] with the same conditional-write semantics, for unit tests.
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct MemoryStore {
        objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
        next_tag: std::sync::atomic::AtomicU64,
        failing: std::sync::atomic::AtomicBool,
        unreadable: Mutex<std::collections::BTreeSet<String>>,
        gets: std::sync::atomic::AtomicUsize,
    }

    impl MemoryStore {
        pub fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }

        /// Removes an object, as someone with delete rights on the bucket could.
        pub fn delete(&self, key: &str) {
            self.objects.lock().unwrap().remove(key);
        }

        /// How many GETs were asked so far.
        pub fn gets(&self) -> usize {
            self.gets.load(std::sync::atomic::Ordering::SeqCst)
        }

        /// Makes `key` exist but fail to be fetched, as an object archived to Glacier does.
        pub fn make_unreadable(&self, key: &str) {
            self.unreadable.lock().unwrap().insert(key.to_owned());
        }

        /// Makes every write fail as an unreachable server would (or work again).
        pub fn fail_writes(&self, failing: bool) {
            self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl Store for MemoryStore {
        async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.unreadable.lock().unwrap().contains(key) {
                return Err(StoreError::Unreadable { key: key.to_owned(), why: "InvalidObjectState: archived".into() });
            }
            Ok(self.objects.lock().unwrap().get(key).map(|(body, tag)| Object { body: body.clone(), etag: tag.to_string() }))
        }

        async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<String, StoreError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StoreError::Failed { key: key.to_owned(), message: "connection refused".into() });
            }
            let mut objects = self.objects.lock().unwrap();
            let current = objects.get(key).map(|(_, tag)| tag.to_string());
            let allowed = match &condition {
                Condition::Always => true,
                Condition::IfAbsent => current.is_none(),
                Condition::IfMatch(etag) => current.as_deref() == Some(etag.as_str()),
            };
            if !allowed {
                return Err(StoreError::PreconditionFailed);
            }
            let tag = self.next_tag.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            objects.insert(key.to_owned(), (body, tag));
            Ok(tag.to_string())
        }

        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            Ok(self.keys().into_iter().filter(|k| k.starts_with(prefix)).collect())
        }

        async fn list_after(&self, prefix: &str, start_after: &str, max: usize) -> Result<Vec<String>, StoreError> {
            let keys = self.list(prefix).await?;
            Ok(keys.into_iter().filter(|k| k.as_str() > start_after).take(max).collect())
        }

        async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError> {
            Ok(format!("memory://{key}?expires_in={}", expires_in.as_secs()))
        }

        async fn history(&self, _: &str) -> Result<Vec<(String, usize, bool)>, StoreError> {
            Ok(Vec::new())
        }
    }
}
