//! Verdicts: an approver's approval or denial of one request, bound to its digest, one per
//! approver (write-once under a name taken from the approver's unique subject, so a second
//! verdict of the same approver is refused), and how a request's verdicts tally up.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::request::AccessRequest;
use crate::access::Approval;
use crate::error::{IssueError, StoreError};
use crate::identity::Identity;
use crate::store::{put_once, Store};
use sshca_proto::approval::Verdict;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictRecord {
    pub request_id: String,
    /// The digest of the request the approver saw.
    pub digest: String,
    pub approve: bool,
    pub approver: String,
    pub approver_subject: String,
    pub approver_principal_id: String,
    /// Who approved, as approvals count people ([`crate::access::person`]).
    pub approver_person: String,
    /// The approver was a session of a role (then it counts only as one of the bound roles).
    pub approver_session: bool,
    pub note: String,
    /// Unix seconds.
    pub at: u64,
}

/// Where `person`'s verdict on request `id` goes: one per person.
fn record_key(environment: &str, id: &str, person: &str) -> String {
    let name: String = Sha256::digest(person.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}{name}.json", super::verdicts(environment, id))
}

/// Where a request stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// The distinct approvers whose approvals count, by name.
    pub approvers: Vec<String>,
    /// Who denied it.
    pub deniers: Vec<String>,
}

impl Tally {
    pub fn approved(&self, approval: &Approval) -> bool {
        self.deniers.is_empty() && self.approvers.len() >= approval.count as usize
    }
}

/// Records `approver`'s verdict on `request`, which it must be allowed to give (`approval`, the
/// rule's approval now): never the requester's own, never on an expired request, once.
pub async fn record(
    audit: &dyn Store,
    request: &AccessRequest,
    approval: &Approval,
    approver: &Identity,
    verdict: &Verdict,
    note: &str,
    now: u64,
) -> Result<VerdictRecord, IssueError> {
    let (approve, digest) = (verdict.approve, verdict.digest.as_str());
    if digest != request.digest() {
        return Err(IssueError::AccessDenied(format!(
            "the verdict is about other content than access request {} holds: look at it again with `sshca requests {}`",
            request.id, request.environment
        )));
    }
    let person = crate::access::person(approver, approval.session_name_set_by_aws);
    if request.is_requester(approver) || person == request.requester_person {
        return Err(IssueError::AccessDenied(format!(
            "{} asked for access request {}: someone else must approve it",
            approver.name, request.id
        )));
    }
    if !approval.admits(approver) {
        return Err(IssueError::AccessDenied(format!(
            "{} may not give a verdict on access request {}: its approvers are {}",
            approver.name,
            request.id,
            approval.by.join(", ")
        )));
    }
    if now >= request.expires_at {
        return Err(IssueError::AccessDenied(format!("access request {} expired: the requester must ask again", request.id)));
    }
    let record = VerdictRecord {
        request_id: request.id.clone(),
        digest: digest.to_owned(),
        approve,
        approver: approver.name.clone(),
        approver_subject: approver.subject.clone(),
        approver_principal_id: approver.principal_id.clone(),
        approver_person: person.clone(),
        approver_session: approver.session.is_some(),
        note: note.to_owned(),
        at: now,
    };
    let body = serde_json::to_vec_pretty(&record).expect("a verdict serializes");
    match put_once(audit, &record_key(&request.environment, &request.id, &person), body).await {
        Ok(()) => Ok(record),
        Err(StoreError::Taken { .. }) => {
            Err(IssueError::AccessDenied(format!("{} already gave a verdict on access request {}: once each", approver.name, request.id)))
        }
        Err(err) => Err(IssueError::Unavailable(format!("the verdict could not be recorded: {err}"))),
    }
}

/// The verdicts on `request` that count under `approval` (the rule's approval now): those about
/// its digest, by admitted approvers other than the requester, one per person, under the name
/// their approver's person gives (a record under another name counts for nobody).
pub async fn tally(audit: &dyn Store, request: &AccessRequest, approval: &Approval) -> Result<Tally, IssueError> {
    let digest = request.digest();
    let mut tally = Tally::default();
    for key in audit.list(&super::verdicts(&request.environment, &request.id)).await? {
        let object = match audit.get(&key).await {
            Ok(Some(object)) => object,
            Ok(None) => continue,
            Err(err) if err.is_unreadable_object() => continue,
            Err(err) => return Err(err.into()),
        };
        let Ok(verdict) = serde_json::from_slice::<VerdictRecord>(&object.body) else { continue };
        let counts = key == record_key(&request.environment, &request.id, &verdict.approver_person)
            && verdict.request_id == request.id
            && verdict.digest == digest
            && verdict.approver_person != request.requester_person
            && verdict.approver_subject != request.requester_subject
            && verdict.approver != request.requester
            && approval.admits_named(&verdict.approver, &verdict.approver_principal_id, verdict.approver_session);
        if !counts {
            continue;
        }
        if verdict.approve {
            tally.approvers.push(verdict.approver);
        } else {
            tally.deniers.push(verdict.approver);
        }
    }
    tally.approvers.sort();
    tally.approvers.dedup();
    Ok(tally)
}
