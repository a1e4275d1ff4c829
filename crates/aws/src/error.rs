//! AWS failures, named as what the caller can do about them.

use sshca_core::error::{CaError, IssueError};

/// A KMS failure on `key_id`, named as what the caller can do about it.
pub(crate) fn kms_error<E, R>(key_id: &str, err: aws_sdk_kms::error::SdkError<E, R>) -> CaError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    match err.code() {
        Some("NotFoundException") => CaError::KeyNotFound { key_id: key_id.to_owned() },
        Some("DisabledException") | Some("KMSInvalidStateException") => CaError::Disabled { key_id: key_id.to_owned() },
        Some("InvalidKeyUsageException") => CaError::NotSignVerify { key_id: key_id.to_owned(), usage: "ENCRYPT_DECRYPT".into() },
        _ => CaError::Kms(aws_sdk_kms::error::DisplayErrorContext(&err).to_string()),
    }
}

/// A lookup the function needs before it signs (`action`, e.g. `iam:GetUser`) failed: nothing is
/// signed without `what`, and the request may be tried again.
pub(crate) fn lookup_failed(what: &str, action: &str, err: impl std::error::Error + Send + Sync + 'static) -> IssueError {
    IssueError::Unavailable(format!(
        "{what} could not be read ({action}: {}): nothing is signed without it; try again, or check the function's {action} permission",
        aws_sdk_kms::error::DisplayErrorContext(err)
    ))
}
