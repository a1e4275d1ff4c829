//! `sshca_client`: how a client (`get_key request`, `sshca sign`, `sshca renew-host`) asks
//! sshca's `sign_key` for a certificate. It proves the caller's AWS identity ([`proof`]: a
//! GetCallerIdentity request signed with the caller's own credentials, bound to the request and to
//! the deployment), then invokes the function ([`invoke`]). AWS failures become one line naming
//! the fix ([`explain`]).

pub mod explain;
pub mod invoke;
pub mod proof;

pub use invoke::Lambda;
pub use proof::prove;
