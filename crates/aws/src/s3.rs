//! The [`Store`] on S3, or any S3-compatible server (MinIO, SeaweedFS, LocalStack).

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use sshca_core::error::StoreError;
use sshca_core::store::{Condition, Object, Store};

/// The S3 implementation. Build the client once per process (see [`crate::Aws`]) and share it.
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

/// Creates the bucket like the template's: versioned (an overwritten record keeps its old version),
/// encrypted at rest, no public access. A server without one of these is told about, not refused.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use aws_sdk_s3::types::{
        BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
    };
    match s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(err) if matches!(err.code(), Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")) => return Ok(()),
        Err(err) => return Err(format!("could not create bucket {bucket:?}: {}", aws_sdk_s3::error::DisplayErrorContext(err))),
    }
    let unsupported = |what: &str, err: &dyn ProvideErrorMetadata| {
        eprintln!(
            "warning: bucket {bucket:?} is created, but its server did not take {what} ({}): set it up yourself",
            err.code().unwrap_or("error")
        );
    };
    let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    if let Err(err) = s3.put_bucket_versioning().bucket(bucket).versioning_configuration(versioning).send().await {
        unsupported("versioning", &err);
    }
    let by_default =
        ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build().map_err(|err| err.to_string())?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build())
        .build()
        .map_err(|err| err.to_string())?;
    if let Err(err) = s3.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(encryption).send().await {
        unsupported("default encryption", &err);
    }
    let private = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .block_public_policy(true)
        .ignore_public_acls(true)
        .restrict_public_buckets(true)
        .build();
    if let Err(err) = s3.put_public_access_block().bucket(bucket).public_access_block_configuration(private).send().await {
        unsupported("the public access block", &err);
    }
    Ok(())
}
