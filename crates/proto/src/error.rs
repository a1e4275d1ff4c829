//! The errors of an issuance as the wire contract names them: each variant has a stable
//! `errorType` that the function returns and clients match on, and a message that names the
//! problem and what to do about it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IssueError {
    /// The request itself is malformed (a field is missing, has a bad value or bad syntax).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The public key to certify cannot be used.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The caller's identity is unproven, its proof is not valid, or no access rule lets it ask.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The request is well formed but the environment's policy does not allow it.
    #[error("not allowed by policy: {0}")]
    PolicyViolation(String),
    #[error("unknown environment {0:?}: create it with `sshca init {0}` (or check the bucket name)")]
    UnknownEnvironment(String),
    #[error("no public key for user {user:?} in environment {environment:?}: pass one with `-p KEY.pub` (it is then kept for next time)")]
    NoCachedKey { user: String, environment: String },
    /// The environment's configuration or CA key is unusable: an admin must fix it.
    #[error("configuration problem: {0}")]
    Configuration(String),
    /// S3 or KMS could not be reached or failed; the request can be retried.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl IssueError {
    /// A stable name for the kind of error, used as the Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            IssueError::InvalidRequest(_) => "InvalidRequest",
            IssueError::InvalidPublicKey(_) => "InvalidPublicKey",
            IssueError::AccessDenied(_) => "AccessDenied",
            IssueError::PolicyViolation(_) => "PolicyViolation",
            IssueError::UnknownEnvironment(_) => "UnknownEnvironment",
            IssueError::NoCachedKey { .. } => "NoCachedKey",
            IssueError::Configuration(_) => "Configuration",
            IssueError::Unavailable(_) => "Unavailable",
        }
    }
}

/// A refusal as the function answers it (a Lambda function error, or the body of an HTTP error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

impl From<&IssueError> for ErrorBody {
    fn from(err: &IssueError) -> Self {
        ErrorBody { error_type: err.error_type().to_owned(), error_message: err.to_string() }
    }
}
