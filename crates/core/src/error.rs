//! The errors of storage and CA keys, and how they reach a caller as an [`IssueError`] (the wire
//! contract's errors, in `sshca_proto`). Each message names the problem and what to do about it.

use thiserror::Error;

pub use sshca_proto::error::IssueError;

/// Errors of the storage layer (S3 or compatible).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the conditional write lost a race (HTTP 412)")]
    PreconditionFailed,
    #[error("{key} already holds something this write did not put there: a write-once record was pre-planted or overwritten; `sshca audit` and the bucket's object versions show what")]
    Taken { key: String },
    #[error("bucket {0:?} does not exist: create it, or point SSHCA_BUCKET / --bucket at the right one")]
    BucketMissing(String),
    #[error("access to s3://{bucket}/{key} was denied: grant the caller s3:GetObject/s3:PutObject on it")]
    AccessDenied { bucket: String, key: String },
    #[error("S3 request for {key:?} failed: {message}")]
    Failed { key: String, message: String },
    /// The object exists but cannot be fetched (archived, or encrypted under a key the caller
    /// cannot use): a record nobody can read, to be named and skipped.
    #[error("{key} exists but cannot be read ({why}): restore it to the STANDARD storage class and the bucket's default encryption, or remove it")]
    Unreadable { key: String, why: String },
}

impl StoreError {
    /// Whether this failure is the object's own (it cannot be fetched or is refused to the
    /// caller), not the server's: a log reader names such an object and goes on.
    pub fn is_unreadable_object(&self) -> bool {
        matches!(self, StoreError::Unreadable { .. } | StoreError::AccessDenied { .. })
    }
}

impl From<StoreError> for IssueError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::BucketMissing(_) | StoreError::AccessDenied { .. } => IssueError::Configuration(err.to_string()),
            _ => IssueError::Unavailable(err.to_string()),
        }
    }
}

/// Errors of a CA key (KMS or sealed Ed25519).
#[derive(Debug, Error)]
pub enum CaError {
    #[error("KMS key {key_id:?} not found: create it with `sshca init ENV --create-keys` or fix the key id in the environment's policy")]
    KeyNotFound { key_id: String },
    #[error("KMS key {key_id:?} has usage {usage}: a CA key must be an asymmetric SIGN_VERIFY key (ECC_NIST_P256, ECC_NIST_P384, RSA_3072, RSA_4096)")]
    NotSignVerify { key_id: String, usage: String },
    #[error("KMS key {key_id:?} has key spec {spec}, which sshca cannot sign SSH certificates with: use ECC_NIST_P256, ECC_NIST_P384, RSA_3072, RSA_4096 or ECC_NIST_EDWARDS25519")]
    UnsupportedSpec { key_id: String, spec: String },
    #[error("KMS key {key_id:?} is not a key of environment {environment:?}: {why}. A policy may name only keys made for it: create them with `sshca init {environment} --create-keys` (or `sshca rotate`), or, if this key really is the {role} CA of {environment}, tag it: aws kms tag-resource --key-id {key_id} --tags TagKey=sshca:environment,TagValue={environment} TagKey=sshca:role,TagValue={role}")]
    NotOurs { key_id: String, why: String, environment: String, role: String },
    #[error("KMS key {key_id:?} is disabled or pending deletion: enable it in KMS")]
    Disabled { key_id: String },
    #[error("sealed Ed25519 CA key {object:?} cannot be used: {message}")]
    Sealed { object: String, message: String },
    #[error("KMS request failed: {0}")]
    Kms(String),
    #[error("KMS returned a signature sshca cannot use: {0}")]
    BadSignature(String),
}

impl From<CaError> for IssueError {
    fn from(err: CaError) -> Self {
        match err {
            CaError::Kms(_) => IssueError::Unavailable(err.to_string()),
            _ => IssueError::Configuration(err.to_string()),
        }
    }
}
