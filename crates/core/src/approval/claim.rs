//! The claim: the one ask that gets an approved request's certificate. Created once
//! (`If-None-Match`), before a serial is taken: of two asks at once, exactly one wins.

use serde::{Deserialize, Serialize};

use super::request::AccessRequest;
use super::verdict::{tally, Tally};
use crate::access::Approval;
use crate::error::{IssueError, StoreError};
use crate::identity::Identity;
use crate::store::{put_once, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRecord {
    pub request_id: String,
    pub claimed_by: String,
    /// The invocation that claimed it (unique: two claims never write the same record).
    pub invocation: String,
    pub at: u64,
}

/// Claims `request` for `claimer` asking with the key `fingerprint`: refused unless the claimer is
/// the requester with the same key, the request has not expired, it is approved under `approval`
/// (the rule's approval now) and nobody claimed it before. The approvers, for the record.
pub async fn claim(
    audit: &dyn Store,
    request: &AccessRequest,
    approval: &Approval,
    claimer: &Identity,
    fingerprint: &str,
    invocation: &str,
    now: u64,
) -> Result<Tally, IssueError> {
    let id = &request.id;
    if !request.is_requester(claimer) || claimer.subject != request.requester_subject {
        return Err(IssueError::AccessDenied(format!("access request {id} is {}'s: only they may claim it", request.requester)));
    }
    if fingerprint != request.public_key_fingerprint {
        return Err(IssueError::AccessDenied(format!(
            "access request {id} was approved for another key ({})",
            request.public_key_fingerprint
        )));
    }
    if now >= request.expires_at {
        return Err(IssueError::AccessDenied(format!("access request {id} expired: ask again")));
    }
    let tally = tally(audit, request, approval).await?;
    if !tally.deniers.is_empty() {
        return Err(IssueError::AccessDenied(format!("access request {id} was denied by {}", tally.deniers.join(", "))));
    }
    if !tally.approved(approval) {
        return Err(IssueError::AccessDenied(format!(
            "access request {id} has {} of the {} approvals it needs: wait, or ask an approver to run `{}`",
            tally.approvers.len(),
            approval.count,
            request.approve_command()
        )));
    }
    let record = ClaimRecord { request_id: id.clone(), claimed_by: claimer.name.clone(), invocation: invocation.to_owned(), at: now };
    let body = serde_json::to_vec_pretty(&record).expect("a claim serializes");
    match put_once(audit, &super::claim_record(&request.environment, id), body).await {
        Ok(()) => Ok(tally),
        Err(StoreError::Taken { .. }) => {
            Err(IssueError::AccessDenied(format!("access request {id} was claimed already: an approval yields one certificate")))
        }
        Err(err) => Err(IssueError::Unavailable(format!("the claim could not be recorded, so nothing is signed: {err}"))),
    }
}
