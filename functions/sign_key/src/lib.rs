//! `sign_key`: the Lambda function of sshca. [`lambda`] is its face (events in, responses out);
//! the issuer is `sshca_core`'s, on `sshca_aws`'s S3, KMS and STS.

pub mod lambda;
