//! The `sign_key` Lambda function: builds the AWS clients once per container and serves
//! invocations with [`sign_key::lambda::handle`].

use std::sync::Arc;

use lambda_runtime::service_fn;
use sshca_aws::Aws;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    sign_key::lambda::init_logging();
    let bucket = std::env::var("SSHCA_BUCKET")
        .map_err(|_| "SSHCA_BUCKET is not set: set it to the bucket that holds the CA's policy, serials and audit trail")?;
    let audit_bucket = std::env::var("SSHCA_AUDIT_BUCKET").ok().filter(|b| !b.is_empty());
    let issuer = Aws::from_env().await.issuer(&bucket, audit_bucket.as_deref());
    let issuer = Arc::new(issuer.with_serial_block(sign_key::lambda::SERIAL_BLOCK, sign_key::lambda::container_name()));
    lambda_runtime::run(service_fn(move |event| {
        let issuer = issuer.clone();
        async move { sign_key::lambda::handle(&issuer, event).await }
    }))
    .await
}
