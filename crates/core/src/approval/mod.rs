//! Just-in-time access: a rule with an [`Approval`](crate::access::Approval) signs nothing at
//! first. The requester's ask is recorded as a [`request`] waiting for approval; approvers record
//! their [`verdict`]s on it, each bound to the request's content (its digest); once enough
//! distinct approvers approved and none denied, the requester's next ask [`claim`]s it and gets
//! the one certificate it yields. Every record is write-once in the audit store, under
//! `audit/<env>/requests/<id>/`.

pub mod claim;
pub mod request;
pub mod verdict;

use ssh_key::{HashAlg, PublicKey};

use crate::access::AccessRule;
use crate::error::IssueError;
use crate::identity::Identity;
use crate::layout;
use crate::notify::Notice;
use crate::policy::Plan;
use crate::request::SignRequest;
use crate::store::Store;
use request::AccessRequest;

/// The prefix of every access request of `environment`.
pub fn requests(environment: &str) -> String {
    format!("{}requests/", layout::audit_trail(environment))
}

/// Where request `id`'s records live (`id` is a checked UUID: see `request::check_request_id`).
fn request_prefix(environment: &str, id: &str) -> String {
    format!("{}{id}/", requests(environment))
}

/// The request `id` itself.
pub fn request_record(environment: &str, id: &str) -> String {
    format!("{}request.json", request_prefix(environment, id))
}

/// The verdicts on request `id`.
pub fn verdicts(environment: &str, id: &str) -> String {
    format!("{}verdicts/", request_prefix(environment, id))
}

/// The claim of request `id`: created once, by the one ask that gets its certificate.
pub fn claim_record(environment: &str, id: &str) -> String {
    format!("{}claim.json", request_prefix(environment, id))
}

/// The id of the request a key under [`requests`] belongs to.
pub fn request_id_of<'a>(environment: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(&requests(environment))?;
    rest.split_once('/').map(|(id, _)| id)
}

/// What a request under its rule may get now.
#[derive(Debug)]
pub enum Gate {
    /// Its rule requires no approval: issue as asked.
    Open,
    /// Recorded as waiting for approval: nothing is signed.
    Wait(AccessRequest),
    /// An approved request, claimed by this ask: issue it, within what was approved.
    Claimed { request: AccessRequest, approvers: Vec<String> },
    /// Self-approved under a break-glass rule: issue at once, on record.
    BreakGlass,
}

/// The gate `request` (from `identity`, under `rule`, planned as `plan`) passes: a rule with an
/// approval records a first ask as pending, lets an approved one be claimed once by the same
/// requester with the same key, or lets a break-glass rule's requester through.
#[allow(clippy::too_many_arguments)]
pub async fn gate(
    audit: &dyn Store,
    rule: Option<&AccessRule>,
    identity: Option<&Identity>,
    request: &SignRequest,
    plan: &mut Plan,
    public_key: &PublicKey,
    invocation: &str,
    now: u64,
) -> Result<Gate, IssueError> {
    let (Some(rule), Some(identity)) = (rule, identity) else { return open(request) };
    let Some(approval) = &rule.approval else { return open(request) };
    let fingerprint = public_key.fingerprint(HashAlg::Sha256).to_string();
    if request.break_glass {
        if !rule.break_glass {
            return Err(IssueError::AccessDenied(format!(
                "{}'s access rule allows no break glass: ask for approval instead",
                identity.name
            )));
        }
        // what get_key says for its user, however it is respelled
        let said = request.reason.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(['.', '!']).to_lowercase();
        if said == sshca_proto::request::DEFAULT_REQUEST_REASON {
            return Err(IssueError::InvalidRequest(format!(
                "break glass needs the incident's reason, not get_key's default {:?}: get_key request --break-glass -r 'INC-1234: what is broken'",
                sshca_proto::request::DEFAULT_REQUEST_REASON
            )));
        }
        // short: never longer than an approval would give
        plan.valid_before = plan.valid_before.min(now + approval.max_ttl);
        return Ok(Gate::BreakGlass);
    }
    let Some(id) = &request.access_request else {
        let access_request = AccessRequest {
            id: uuid::Uuid::new_v4().to_string(),
            environment: request.environment.clone(),
            requester: identity.name.clone(),
            requester_subject: identity.subject.clone(),
            requester_person: crate::access::person(identity, rule.session_name_set_by_aws),
            username: request.username.clone(),
            public_key: public_key.to_openssh().map_err(|err| IssueError::InvalidPublicKey(err.to_string()))?,
            public_key_fingerprint: fingerprint,
            principals: plan.principals.clone(),
            valid_for: plan.valid_before.saturating_sub(now).min(approval.max_ttl),
            reason: request.reason.clone(),
            created_at: now,
            expires_at: now + approval.expires_in,
            approval: approval.clone(),
        };
        request::open(audit, &access_request).await?;
        return Ok(Gate::Wait(access_request));
    };
    let access_request = request::load(audit, &request.environment, id).await?;
    if plan.principals != access_request.principals {
        return Err(IssueError::AccessDenied(format!(
            "access request {id} was approved for the principals {}: ask for exactly those",
            access_request.principals.join(", ")
        )));
    }
    let tally = claim::claim(audit, &access_request, approval, identity, &fingerprint, invocation, now).await?;
    // never longer than approved, never starting later than now
    plan.valid_after = plan.valid_after.min(now);
    plan.valid_before = plan.valid_before.min(now + access_request.valid_for.min(approval.max_ttl));
    Ok(Gate::Claimed { request: access_request, approvers: tally.approvers })
}

fn open(request: &SignRequest) -> Result<Gate, IssueError> {
    if request.break_glass || request.access_request.is_some() {
        return Err(IssueError::InvalidRequest(
            "this request's access rule requires no approval: ask without --break-glass or a request id".into(),
        ));
    }
    Ok(Gate::Open)
}

/// The notice of a request recorded as waiting.
pub fn requested(request: &AccessRequest) -> Notice {
    Notice {
        event: "requested",
        environment: request.environment.clone(),
        request_id: Some(request.id.clone()),
        requester: request.requester.clone(),
        approvers: request.approval.by.clone(),
        principals: request.principals.clone(),
        valid_for: request.valid_for,
        reason: request.reason.clone(),
        command: Some(request.approve_command()),
    }
}

/// Records the verdict `request` carries, from `approver`, and where its access request stands.
pub async fn give_verdict(
    audit: &dyn Store,
    approver: &Identity,
    request: &SignRequest,
    now: u64,
) -> Result<(sshca_proto::approval::Recorded, Notice), IssueError> {
    let verdict = request.verdict.as_ref().ok_or_else(|| IssueError::InvalidRequest("the request carries no verdict".into()))?;
    let access_request = request::load(audit, &request.environment, &verdict.request_id).await?;
    if audit.get(&claim_record(&request.environment, &access_request.id)).await?.is_some() {
        return Err(IssueError::AccessDenied(format!(
            "access request {} was claimed already: a verdict changes nothing now",
            access_request.id
        )));
    }
    let approval = &access_request.approval;
    verdict::record(audit, &access_request, approval, approver, verdict, &request.reason, now).await?;
    let tally = verdict::tally(audit, &access_request, approval).await?;
    let recorded = sshca_proto::approval::Recorded {
        request_id: access_request.id.clone(),
        approve: verdict.approve,
        approvals: tally.approvers.len() as u32,
        count: approval.count,
        denied: !tally.deniers.is_empty(),
    };
    let notice = Notice {
        event: if verdict.approve { "approved" } else { "denied" },
        approvers: if verdict.approve { tally.approvers } else { vec![approver.name.clone()] },
        command: None,
        reason: format!("{} (verdict: {})", access_request.reason, request.reason),
        ..requested(&access_request)
    };
    Ok((recorded, notice))
}

/// The notice of a certificate issued through `gate` (recorded as `entry`): under approval, or
/// break glass; none for a rule without approval.
pub fn issued(gate: &Gate, entry: &crate::audit::AuditEntry) -> Option<Notice> {
    let (event, request_id, approvers) = match gate {
        Gate::Claimed { request, approvers } => ("issued", Some(request.id.clone()), approvers.clone()),
        Gate::BreakGlass => ("break-glass", None, Vec::new()),
        Gate::Open | Gate::Wait(_) => return None,
    };
    Some(Notice {
        event,
        environment: entry.environment.clone(),
        request_id,
        requester: entry.caller_identity.clone().unwrap_or_default(),
        approvers,
        principals: entry.principals.clone(),
        valid_for: entry.valid_before.saturating_sub(entry.valid_after),
        reason: entry.reason.clone(),
        command: None,
    })
}

/// An access request and where it stands.
#[derive(Debug, Clone)]
pub struct Standing {
    pub request: AccessRequest,
    pub tally: verdict::Tally,
    pub claimed: bool,
}

impl Standing {
    /// `pending`, `approved`, `denied`, `claimed` or `expired` (at `now`).
    pub fn status(&self, now: u64) -> &'static str {
        if self.claimed {
            "claimed"
        } else if !self.tally.deniers.is_empty() {
            "denied"
        } else if now >= self.request.expires_at {
            "expired"
        } else if self.tally.approved(&self.request.approval) {
            "approved"
        } else {
            "pending"
        }
    }
}

/// Every access request of `environment` with its verdicts and claim, oldest first; records
/// that are not sshca's are left out.
pub async fn list(audit: &dyn Store, environment: &str) -> Result<Vec<Standing>, IssueError> {
    let keys = audit.list(&requests(environment)).await?;
    let mut ids: Vec<&str> = keys.iter().filter_map(|key| request_id_of(environment, key)).collect();
    ids.dedup();
    let mut standings = Vec::new();
    for id in ids {
        if crate::request::check_request_id(id).is_err() {
            continue;
        }
        let Ok(request) = request::load(audit, environment, id).await else { continue };
        let tally = verdict::tally(audit, &request, &request.approval).await?;
        let claimed = keys.contains(&claim_record(environment, id));
        standings.push(Standing { request, tally, claimed });
    }
    standings.sort_by_key(|standing| standing.request.created_at);
    Ok(standings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Approval, Grant};
    use crate::store::memory::MemoryStore;
    use crate::testing::aws_identity;

    fn user(name: &str) -> Identity {
        let id = format!("AIDA{}", name.to_ascii_uppercase());
        Identity { subject: id.clone(), principal_id: id, ..aws_identity(&format!("arn:aws:iam::111111111111:user/{name}")) }
    }

    fn rule() -> AccessRule {
        let mut rule = AccessRule::new("arn:aws:iam::111111111111:user/jane", Grant::User);
        rule.approval = Some(Approval {
            by: vec!["arn:aws:iam::111111111111:user/*".into()],
            by_role_ids: Vec::new(),
            session_name_set_by_aws: false,
            count: 2,
            max_ttl: 3600,
            expires_in: 600,
        });
        rule
    }

    fn plan() -> Plan {
        Plan {
            principals: vec!["jane".into()],
            valid_after: 990,
            valid_before: 1000 + 7200,
            extensions: Default::default(),
            critical_options: Default::default(),
            url_expires_at: 0,
        }
    }

    fn key() -> PublicKey {
        PublicKey::from_openssh("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl").unwrap()
    }

    fn ask(claim: Option<&str>) -> SignRequest {
        SignRequest { environment: "prod".into(), reason: "INC-1".into(), access_request: claim.map(str::to_owned), ..Default::default() }
    }

    #[tokio::test]
    async fn break_glass_needs_a_reason_of_its_own() {
        let audit = MemoryStore::default();
        let rule = AccessRule { break_glass: true, ..rule() };
        let jane = user("jane");
        for default in [sshca_proto::request::DEFAULT_REQUEST_REASON, " Get_key  REQUEST. "] {
            let asked = SignRequest { break_glass: true, reason: default.into(), ..ask(None) };
            let refusal = gate(&audit, Some(&rule), Some(&jane), &asked, &mut plan(), &key(), "i1", 1000).await.unwrap_err().to_string();
            assert!(refusal.contains("the incident's reason"), "{default:?}: {refusal}");
        }
        let mut short = plan();
        let typed = SignRequest { break_glass: true, ..ask(None) };
        assert!(matches!(gate(&audit, Some(&rule), Some(&jane), &typed, &mut short, &key(), "i2", 1000).await.unwrap(), Gate::BreakGlass));
        assert_eq!(short.valid_before, 1000 + 3600, "no longer than an approval would give");
    }

    #[tokio::test]
    async fn only_distinct_admitted_verdicts_on_the_content_count_and_an_approval_yields_one_claim() {
        let audit = MemoryStore::default();
        let (jane, bob, carol) = (user("jane"), user("bob"), user("carol"));
        let rule = rule();
        let Gate::Wait(request) = gate(&audit, Some(&rule), Some(&jane), &ask(None), &mut plan(), &key(), "i1", 1000).await.unwrap() else {
            panic!("a first ask waits")
        };
        assert_eq!(request.valid_for, 3600, "never more than the approval's max_ttl");
        let approval = rule.approval.as_ref().unwrap();
        let digest = request.digest();
        let said = |approve: bool, digest: &str| sshca_proto::approval::Verdict {
            request_id: request.id.clone(),
            digest: digest.to_owned(),
            approve,
        };
        assert!(verdict::record(&audit, &request, approval, &jane, &said(true, &digest), "ok", 1001)
            .await
            .unwrap_err()
            .to_string()
            .contains("someone else"));
        assert!(verdict::record(&audit, &request, approval, &bob, &said(true, &"0".repeat(64)), "ok", 1001)
            .await
            .unwrap_err()
            .to_string()
            .contains("other content"));
        verdict::record(&audit, &request, approval, &bob, &said(true, &digest), "ok", 1001).await.unwrap();
        // the same verdict again is the same record (a retry whose answer was lost); another is refused
        verdict::record(&audit, &request, approval, &bob, &said(true, &digest), "ok", 1001).await.unwrap();
        assert!(verdict::record(&audit, &request, approval, &bob, &said(false, &digest), "no", 1001)
            .await
            .unwrap_err()
            .to_string()
            .contains("already gave"));
        // a verdict planted under a name that is not its approver's, or by the requester, counts for nobody
        let planted = |approver: &Identity| verdict::VerdictRecord {
            request_id: request.id.clone(),
            digest: digest.clone(),
            approve: true,
            approver: approver.name.clone(),
            approver_subject: approver.subject.clone(),
            approver_principal_id: approver.principal_id.clone(),
            approver_person: crate::access::person(approver, false),
            approver_session: false,
            note: String::new(),
            at: 1001,
        };
        let put = |key: String, record: verdict::VerdictRecord| {
            let audit = &audit;
            async move { audit.put(&key, serde_json::to_vec(&record).unwrap(), crate::store::Condition::IfAbsent).await.unwrap() }
        };
        put(format!("{}planted.json", verdicts("prod", &request.id)), planted(&carol)).await;
        put(format!("{}jane.json", verdicts("prod", &request.id)), planted(&jane)).await;
        let claim = |id: &str, invocation: &str| {
            let (audit, rule, jane, id, invocation) = (&audit, &rule, &jane, id.to_owned(), invocation.to_owned());
            async move { gate(audit, Some(rule), Some(jane), &ask(Some(&id)), &mut plan(), &key(), &invocation, 1002).await }
        };
        assert!(claim(&request.id, "i2").await.unwrap_err().to_string().contains("has 1 of the 2 approvals"));
        verdict::record(&audit, &request, approval, &carol, &said(true, &digest), "ok", 1001).await.unwrap();
        let Gate::Claimed { approvers, .. } = claim(&request.id, "i3").await.unwrap() else { panic!("approved: claimed") };
        assert_eq!(approvers, [bob.name.clone(), carol.name.clone()]);
        assert!(claim(&request.id, "i4").await.unwrap_err().to_string().contains("claimed already"));
        let standing = &list(&audit, "prod").await.unwrap()[0];
        assert_eq!(standing.status(1003), "claimed");
    }

    #[tokio::test]
    async fn approvers_count_as_people_whatever_role_or_session_name_they_use() {
        let session = |role: &str, name: &str| aws_identity(&format!("arn:aws:sts::111111111111:assumed-role/{role}/{name}"));
        let jane = session("AWSReservedSSO_Users_0123", "jane");
        let mut rule = AccessRule::new("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Users_0123/*", Grant::User);
        rule.session_name_set_by_aws = true;
        let approval = |session_name_set_by_aws: bool| Approval {
            by: vec!["arn:aws:sts::111111111111:assumed-role/*".into()],
            by_role_ids: vec!["AROAAWSReservedSSO_Approvers".into(), "AROALeads".into()],
            session_name_set_by_aws,
            count: 2,
            max_ttl: 3600,
            expires_in: 600,
        };
        for (by_sso, approvers, refused) in [
            // Jane through another permission set is still Jane
            (true, vec![session("AWSReservedSSO_Approvers_0123", "jane")], "someone else"),
            // one role whose sessions its callers name: one approver, however many names
            (false, vec![session("Leads", "a"), session("Leads", "b")], "already gave"),
        ] {
            let audit = MemoryStore::default();
            rule.approval = Some(approval(by_sso));
            let Gate::Wait(request) = gate(&audit, Some(&rule), Some(&jane), &ask(None), &mut plan(), &key(), "i1", 1000).await.unwrap()
            else {
                panic!("a first ask waits")
            };
            let said = sshca_proto::approval::Verdict { request_id: request.id.clone(), digest: request.digest(), approve: true };
            let mut outcomes = Vec::new();
            for approver in &approvers {
                outcomes
                    .push(verdict::record(&audit, &request, rule.approval.as_ref().unwrap(), approver, &said, &approver.name, 1001).await);
            }
            let err = outcomes.into_iter().find_map(Result::err).expect("one verdict is refused").to_string();
            assert!(err.contains(refused), "{err}");
            assert!(verdict::tally(&audit, &request, rule.approval.as_ref().unwrap()).await.unwrap().approvers.len() <= 1);
        }
    }
}
