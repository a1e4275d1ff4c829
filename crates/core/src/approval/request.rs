//! A request waiting for approval: who asked (proven), for which key, which principals, how long
//! and why. Written once when the requester first asks; its digest is what verdicts approve.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access::Approval;
use crate::error::IssueError;
use crate::identity::Identity;
use crate::store::{put_once, Store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    pub id: String,
    pub environment: String,
    /// The proven requester's name and unique subject.
    pub requester: String,
    pub requester_subject: String,
    /// Who the requester is as approvals count people ([`crate::access::person`], by the
    /// requester's own rule): nobody approves for themselves under another name.
    pub requester_person: String,
    pub username: String,
    /// The key to certify (OpenSSH line) and its SHA-256 fingerprint.
    pub public_key: String,
    pub public_key_fingerprint: String,
    pub principals: Vec<String>,
    /// The validity asked for (seconds), at most the approval's `max_ttl`.
    pub valid_for: u64,
    pub reason: String,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    /// The rule's approval as it was when the request was made.
    pub approval: Approval,
}

impl AccessRequest {
    /// The SHA-256 (hex) of the record as written: what an approver approves.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a request serializes");
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `identity` is the requester.
    pub fn is_requester(&self, identity: &Identity) -> bool {
        identity.subject == self.requester_subject || identity.name == self.requester
    }

    /// The command an approver runs.
    pub fn approve_command(&self) -> String {
        format!("sshca approve {} {} --digest {}", self.environment, self.id, self.digest())
    }
}

/// Records `request` (write-once).
pub async fn open(audit: &dyn Store, request: &AccessRequest) -> Result<(), IssueError> {
    let body = serde_json::to_vec_pretty(request).expect("a request serializes");
    put_once(audit, &super::request_record(&request.environment, &request.id), body)
        .await
        .map_err(|err| IssueError::Unavailable(format!("the access request could not be recorded, so nobody could approve it: {err}")))
}

/// The request `id` of `environment`.
pub async fn load(audit: &dyn Store, environment: &str, id: &str) -> Result<AccessRequest, IssueError> {
    let object = audit.get(&super::request_record(environment, id)).await?;
    let object = object.ok_or_else(|| {
        IssueError::InvalidRequest(format!(
            "environment {environment:?} has no access request {id}: `sshca requests {environment}` lists them"
        ))
    })?;
    let request: AccessRequest = serde_json::from_slice(&object.body).map_err(|err| {
        IssueError::Configuration(format!("the record of access request {id} cannot be read ({err}): it was not written by sshca"))
    })?;
    if request.id != id || request.environment != environment {
        return Err(IssueError::Configuration(format!(
            "the record of access request {id} names another request: it was not written by sshca"
        )));
    }
    Ok(request)
}
