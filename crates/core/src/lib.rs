//! `sshca_core`: the domain of sshca, a serverless SSH certificate authority, with no AWS in it.
//!
//! An [`Environment`] is one CA: its [`Store`] (policy, serials, certificates, the KRL), its audit
//! store, its CA keys ([`CaKeys`], [`Signer`]) and the [`identity::IdentityProvider`]s whose
//! proofs it accepts. The [`Issuer`] turns a [`SignRequest`] into a certificate: the provider
//! names the caller, the policy's access rules ([`access`], [`decide`]) decide what it may get, a
//! serial is leased ([`serial`]), the CA signs, and the audit record is durable before the
//! certificate is handed out. [`revoke`], [`books`] and [`admin`] work on the same environment.
//! Where the stores, keys and providers really live (S3, KMS, STS) is `sshca_aws`'s business;
//! [`store::memory`] keeps everything in memory for tests.

pub mod access;
pub mod admin;
pub mod approval;
pub mod audit;
pub mod books;
pub mod ca;
pub mod caller;
mod certificate;
pub mod decide;
pub mod environment;
pub mod error;
pub mod holdings;
pub mod identity;
pub mod issuer;
pub mod layout;
pub mod notify;
pub mod pattern;
pub mod policy;
mod recent;
pub mod revocation_log;
pub mod revoke;
pub mod serial;
pub mod store;
#[cfg(test)]
mod testing;

/// The wire contract, the KRL codec and time helpers, shared with the clients and servers
/// (`sshca_proto`).
pub use sshca_proto::{krl, request, time};

pub use ca::{CaKeys, Signer};
pub use environment::Environment;
pub use error::IssueError;
pub use issuer::{Caller, Issuer};
pub use policy::{CaKeyRef, Policy};
pub use request::{CertKind, SignRequest, SignResponse};
pub use store::Store;
