//! The proof of identity a request carries, as the wire contract has it: a caller's
//! SigV4-signed `sts:GetCallerIdentity`, bound to the deployment ([`AUDIENCE_HEADER`]) and to the
//! request itself ([`REQUEST_HASH_HEADER`], [`request_hash`]). Clients make it; the function checks
//! it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::request::SignRequest;

/// Names the deployment the proof is for: the `access.audience` of the environment's policy.
pub const AUDIENCE_HEADER: &str = "x-sshca-audience";
/// The SHA-256 (hex) of the canonical signing request.
pub const REQUEST_HASH_HEADER: &str = "x-sshca-request-hash";
/// The only request a proof may sign.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
pub const GET_CALLER_IDENTITY_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// A proof older than this is refused (STS itself accepts signatures for 15 minutes).
pub const MAX_PROOF_AGE_SECONDS: u64 = 300;

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

/// The SHA-256 (hex) of the canonical form of `request`: its JSON without the `identity` field,
/// keys sorted, no whitespace, absent optional fields left out.
pub fn request_hash(request: &SignRequest) -> String {
    let value = serde_json::to_value(request).expect("a request serializes");
    let sorted: BTreeMap<String, serde_json::Value> = match value {
        serde_json::Value::Object(fields) => fields.into_iter().filter(|(name, _)| name != "identity").collect(),
        _ => unreachable!("a request serializes to an object"),
    };
    let canonical = serde_json::to_vec(&sorted).expect("a map serializes");
    hex(&Sha256::digest(canonical))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_hash_covers_every_field_but_the_proof() {
        let request = SignRequest { environment: "e".into(), username: "u".into(), reason: "r".into(), ..Default::default() };
        let proof =
            IdentityProof { headers: BTreeMap::from([("host".to_owned(), "sts".to_owned())]), body: GET_CALLER_IDENTITY_BODY.into() };
        let with_proof = SignRequest { identity: Some(proof), ..request.clone() };
        assert_eq!(request_hash(&request), request_hash(&with_proof));
        let other_key = SignRequest { public_key: Some("ssh-ed25519 AAAA".into()), ..request.clone() };
        assert_ne!(request_hash(&request), request_hash(&other_key));
        let other_nonce = SignRequest { nonce: Some("n".into()), ..request.clone() };
        assert_ne!(request_hash(&request), request_hash(&other_nonce));
    }
}
