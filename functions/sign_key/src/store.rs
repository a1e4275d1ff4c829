//! Object storage behind a small trait: S3 (or any S3-compatible server: MinIO, SeaweedFS) in
//! production, an in-memory map in unit tests.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

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

/// The S3 implementation. Build the client once per process (see [`crate::aws`]) and share it.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    fn classify<E, R>(&self, key: &str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code().map(str::to_owned);
        match code.as_deref() {
            Some("PreconditionFailed") | Some("ConditionalRequestConflict") => StoreError::PreconditionFailed,
            Some("NoSuchBucket") => StoreError::BucketMissing(self.bucket.clone()),
            Some("AccessDenied") => StoreError::AccessDenied { bucket: self.bucket.clone(), key: key.to_owned() },
            _ => StoreError::Failed { key: key.to_owned(), message: aws_sdk_s3::error::DisplayErrorContext(&err).to_string() },
        }
    }
}

#[async_trait]
impl Store for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let result = self.client.get_object().bucket(&self.bucket).key(key).send().await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                if err.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                    return Ok(None);
                }
                // This object, not the bucket: archived (InvalidObjectState), encrypted with a
                // customer key (InvalidRequest) or under a KMS key the caller may not use (KMS.*).
                let code = err.code().unwrap_or_default();
                if matches!(code, "InvalidObjectState" | "InvalidRequest" | "InvalidArgument") || code.starts_with("KMS.") {
                    return Err(StoreError::Unreadable {
                        key: key.to_owned(),
                        why: aws_sdk_s3::error::DisplayErrorContext(&err).to_string(),
                    });
                }
                return Err(self.classify(key, err));
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let body = output
            .body
            .collect()
            .await
            .map_err(|err| StoreError::Failed { key: key.to_owned(), message: format!("reading the body: {err}") })?;
        Ok(Some(Object { body: body.into_bytes().to_vec(), etag }))
    }

    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<String, StoreError> {
        let mut request = self.client.put_object().bucket(&self.bucket).key(key).body(ByteStream::from(body));
        request = match &condition {
            Condition::Always => request,
            Condition::IfAbsent => request.if_none_match("*"),
            Condition::IfMatch(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(output.e_tag().unwrap_or_default().to_owned()),
            // AWS answers If-Match on a missing key with 404, SeaweedFS with 412: the same lost race.
            Err(err) if matches!(condition, Condition::IfMatch(_)) && matches!(err.code(), Some("NoSuchKey") | Some("NotFound")) => {
                Err(StoreError::PreconditionFailed)
            }
            Err(err) => Err(self.classify(key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| self.classify(prefix, err))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        }
        Ok(keys)
    }

    async fn list_after(&self, prefix: &str, start_after: &str, max: usize) -> Result<Vec<String>, StoreError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .start_after(start_after)
            .max_keys(i32::try_from(max).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| self.classify(prefix, err))?;
        Ok(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).take(max).collect())
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|err| StoreError::Failed { key: key.to_owned(), message: format!("presigning: {err}") })?;
        let request =
            self.client.get_object().bucket(&self.bucket).key(key).presigned(config).await.map_err(|err| self.classify(key, err))?;
        Ok(request.uri().to_string())
    }

    async fn history(&self, prefix: &str) -> Result<Vec<(String, usize, bool)>, StoreError> {
        let mut versions: std::collections::BTreeMap<String, (usize, bool)> = std::collections::BTreeMap::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let request = self.client.list_object_versions().bucket(&self.bucket).prefix(prefix);
            let page = match request.set_key_marker(key_marker.take()).set_version_id_marker(version_marker.take()).send().await {
                Ok(page) => page,
                // a store without versions (or without this API) has no history to show
                Err(err) if matches!(err.code(), Some("NotImplemented") | Some("MethodNotAllowed")) => return Ok(Vec::new()),
                Err(err) => return Err(self.classify(prefix, err)),
            };
            for version in page.versions() {
                versions.entry(version.key().unwrap_or_default().to_owned()).or_default().0 += 1;
            }
            for marker in page.delete_markers() {
                if marker.is_latest() == Some(true) {
                    versions.entry(marker.key().unwrap_or_default().to_owned()).or_default().1 = true;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        Ok(versions.into_iter().map(|(key, (count, deleted))| (key, count, deleted)).collect())
    }
}

#[cfg(test)]
pub(crate) mod memory {
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
