//! `sign_key`: the issuing core of sshca, a serverless SSH certificate authority.
//!
//! A [`SignRequest`] carries its caller's proof of identity (a signed STS GetCallerIdentity,
//! [`identity`]); the environment's [`Policy`] (stored in S3) and its access rules ([`access`])
//! decide what that identity may get. The request is then given a
//! serial from the environment's counter (leased in blocks with S3 conditional writes), signed by the environment's CA
//! key (held in KMS, never exported), recorded in the audit trail, stored, and answered with a
//! presigned download link ([`SignResponse`]). The Lambda function (`main.rs`) and `sshca sign
//! --local` run the very same [`Issuer::issue`].
//!
//! Storage and signing sit behind the [`Store`] and [`Signer`] traits; [`aws::Aws`] builds the
//! real S3 and KMS implementations.

pub mod access;
pub mod admin;
pub mod audit;
pub mod aws;
pub mod books;
pub mod ca;
pub mod decide;
pub mod error;
pub mod identity;
pub mod issuer;
pub mod key_ownership;
pub mod lambda;
pub mod layout;
pub mod pattern;
pub mod policy;
pub mod revocation_log;
pub mod revoke;
pub mod serial;
pub mod signings;
pub mod store;
pub mod sts;
#[cfg(test)]
mod testing;

/// The wire contract and the KRL codec, shared with the clients and servers (`sshca_proto`).
pub use sshca_proto::{krl, request};

pub use ca::{CaKeys, Signer};
pub use error::IssueError;
pub use issuer::{Caller, Issuer};
pub use policy::{CaKeyRef, Policy};
pub use request::{CertKind, SignRequest, SignResponse};
pub use store::{S3Store, Store};
