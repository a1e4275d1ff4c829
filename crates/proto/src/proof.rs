//! The proof of identity a request carries, as the wire contract has it: one [`Proof`] variant
//! per identity provider. The AWS one is a caller's SigV4-signed `sts:GetCallerIdentity`, bound to
//! the deployment ([`AUDIENCE_HEADER`]) and to the request itself ([`REQUEST_HASH_HEADER`],
//! [`crate::request::request_hash`]). Clients make it; the function checks it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Names the deployment the proof is for: the `access.audience` of the environment's policy.
pub const AUDIENCE_HEADER: &str = "x-sshca-audience";
/// The SHA-256 (hex) of the canonical signing request.
pub const REQUEST_HASH_HEADER: &str = "x-sshca-request-hash";
/// The only request a proof may sign.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
pub const GET_CALLER_IDENTITY_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// A proof older than this is refused (STS itself accepts signatures for 15 minutes).
pub const MAX_PROOF_AGE_SECONDS: u64 = 300;

/// A proof of identity, in the request's `identity` field. Each variant's JSON has its own fields,
/// so the variant is told by its shape (an AWS proof is `{"headers", "body"}`, as before there was
/// more than one provider).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Proof {
    Aws(IdentityProof),
}

/// Read as the one proof there is, so that a malformed proof is told what is wrong with it
/// ("unknown field", "missing field") rather than that it fits no variant. A second provider's
/// proof is told apart here, by a field only it has.
impl<'de> Deserialize<'de> for Proof {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IdentityProof::deserialize(deserializer).map(Proof::Aws)
    }
}

impl Proof {
    /// The provider that checks it.
    pub fn provider(&self) -> &'static str {
        match self {
            Proof::Aws(_) => AWS_PROVIDER,
        }
    }
}

/// The name of the AWS STS provider: of its proofs, and of access rules that name no provider.
pub const AWS_PROVIDER: &str = "aws";

/// The signed GetCallerIdentity request, as the caller sends it in the `identity` field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProof {
    /// Every header the signature covers (`host`, `x-amz-date`, the two binding headers…) and
    /// `authorization`, by name.
    pub headers: BTreeMap<String, String>,
    /// Must be exactly [`GET_CALLER_IDENTITY_BODY`].
    pub body: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
