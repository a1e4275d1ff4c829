//! `sshca verify`: an fsck of a CA's books. Every certificate object has its issued record and
//! every issued record its certificate; every serial handed out lies in a recorded lease and is
//! named once; the counter is above every lease; every audit record can be read and was written
//! once (no overwritten versions, no delete markers, where the bucket keeps versions); the
//! published KRL is the one the revocation log makes; the CA keys are the environment's own.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::approval;
use crate::audit::{AuditEntry, Event};
use crate::environment::Environment;
use crate::krl;
use crate::layout;
use crate::request::{self, CertKind};
use crate::revoke;
use crate::serial;
use crate::IssueError;

/// One thing wrong with the books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable name for the kind of finding.
    pub check: &'static str,
    pub what: String,
}

/// What the books hold besides the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub issued: usize,
    pub void: usize,
    pub certificates: usize,
    pub leases: usize,
    /// Leased serials that no record names: their signer ended before using them.
    pub gaps: u64,
}

fn finding(check: &'static str, what: String) -> Finding {
    Finding { check, what }
}

/// Checks `environment`'s books: each check below, in turn, adding what it finds.
pub async fn verify(env: &Environment, environment: &str) -> Result<(Summary, Vec<Finding>), IssueError> {
    request::check_environment(environment)?;
    let mut books = Books { env, environment, findings: Vec::new(), summary: Summary::default() };
    let records = books.issuance_records().await?;
    let named = books.serials_named_once(&records);
    books.certificates_match_records(&records).await?;
    books.serials_inside_leases(&named).await?;
    books.krl_matches_the_log().await?;
    books.ca_keys_are_ours().await?;
    books.records_written_once().await?;
    books.approved_issuances_hold(&records).await?;
    Ok((books.summary, books.findings))
}

/// One environment's books as a check reads them, and what the checks found so far.
struct Books<'a> {
    env: &'a Environment,
    environment: &'a str,
    findings: Vec<Finding>,
    summary: Summary,
}

impl Books<'_> {
    fn found(&mut self, check: &'static str, what: String) {
        self.findings.push(finding(check, what));
    }

    /// The issuance records, read one by one: an unreadable one is a finding of its own.
    async fn issuance_records(&mut self) -> Result<Vec<(String, AuditEntry)>, IssueError> {
        let (audit, environment) = (self.env.audit_store().as_ref(), self.environment);
        let mut records = Vec::new();
        for key in audit.list(&layout::audit_trail(environment)).await? {
            if !layout::is_dated_record(environment, &key) {
                continue;
            }
            match audit.get(&key).await {
                Ok(Some(object)) => match serde_json::from_slice::<AuditEntry>(&object.body) {
                    Ok(entry) if entry.environment == environment => records.push((key, entry)),
                    _ => self.found("unreadable-record", format!("{key} is not an audit record of {environment}")),
                },
                Ok(None) => {}
                Err(err) if err.is_unreadable_object() => self.found("unreadable-record", err.to_string()),
                Err(err) => return Err(err.into()),
            }
        }
        for (_, entry) in &records {
            match entry.event {
                Event::Issued => self.summary.issued += 1,
                Event::Void => self.summary.void += 1,
            }
        }
        Ok(records)
    }

    /// Every certificate issued for an access request has the request, enough distinct approvers
    /// among its verdicts and the one claim; each request yields at most one certificate.
    async fn approved_issuances_hold(&mut self, records: &[(String, AuditEntry)]) -> Result<(), IssueError> {
        let audit = self.env.audit_store().as_ref();
        let mut claimed: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (key, entry) in records.iter().filter(|(_, entry)| entry.event == Event::Issued) {
            let Some(id) = entry.access_request.as_deref() else { continue };
            claimed.entry(id).or_default().push(entry.serial);
            if request::check_request_id(id).is_err() {
                self.found("approval-missing", format!("{key} names no access request sshca could have made ({id:?})"));
                continue;
            }
            let access_request = match approval::request::load(audit, self.environment, id).await {
                Ok(access_request) => access_request,
                Err(err) => {
                    self.found(
                        "approval-missing",
                        format!("serial {} was issued for access request {id}, whose record is wanting: {err}", entry.serial),
                    );
                    continue;
                }
            };
            let tally = approval::verdict::tally(audit, &access_request, &access_request.approval).await?;
            if !tally.approved(&access_request.approval) {
                self.found(
                    "approval-missing",
                    format!(
                        "serial {} was issued for access request {id}, which has {} of {} approvals and {} denials",
                        entry.serial,
                        tally.approvers.len(),
                        access_request.approval.count,
                        tally.deniers.len()
                    ),
                );
            }
            if audit.get(&approval::claim_record(self.environment, id)).await?.is_none() {
                self.found("approval-missing", format!("serial {} was issued for access request {id}, which has no claim", entry.serial));
            }
        }
        for (id, serials) in claimed.into_iter().filter(|(_, serials)| serials.len() > 1) {
            self.found("approval-twice", format!("access request {id} yielded {} certificates: serials {serials:?}", serials.len()));
        }
        Ok(())
    }

    /// No serial is named by two records; returns which records name each serial.
    fn serials_named_once(&mut self, records: &[(String, AuditEntry)]) -> BTreeMap<u64, Vec<String>> {
        let mut named: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (key, entry) in records {
            named.entry(entry.serial).or_default().push(key.clone());
        }
        for (serial, keys) in &named {
            if keys.len() > 1 {
                self.found("serial-twice", format!("serial {serial} is named by {} records: {}", keys.len(), keys.join(", ")));
            }
        }
        named
    }

    /// Certificate objects against issued records, byte for byte.
    async fn certificates_match_records(&mut self, records: &[(String, AuditEntry)]) -> Result<(), IssueError> {
        let (store, environment) = (self.env.store().as_ref(), self.environment);
        let mut certificates: BTreeMap<(String, u64), String> = BTreeMap::new();
        for key in store.list(&layout::certificates(environment)).await? {
            if let Some(named) = layout::certificate_of(environment, &key) {
                certificates.insert(named, key);
            }
        }
        self.summary.certificates = certificates.len();
        for ((user, serial), key) in &certificates {
            let holding = records.iter().find(|(_, e)| e.serial == *serial && &e.username == user && e.certificate.is_some());
            let Some((record, entry)) = holding.or_else(|| records.iter().find(|(_, e)| e.serial == *serial && &e.username == user)) else {
                self.found("certificate-without-record", format!("{key} has no audit record"));
                continue;
            };
            let Some(recorded) = &entry.certificate else { continue };
            let held = match store.get(key).await {
                Ok(object) => object.map(|object| object.body),
                Err(err) if err.is_unreadable_object() => None,
                Err(err) => return Err(err.into()),
            };
            if held.as_deref() != Some(format!("{recorded}\n").as_bytes()) {
                self.found(
                    "certificate-differs",
                    format!("{key} does not hold the certificate its record {record} names: it was replaced or damaged"),
                );
            }
        }
        for (key, entry) in records.iter().filter(|(_, e)| e.event == Event::Issued) {
            if !certificates.contains_key(&(entry.username.clone(), entry.serial)) {
                self.found("record-without-certificate", format!("{key} names a certificate object that is not there"));
            }
        }
        Ok(())
    }

    /// Serials against leases and the counter: leases as intervals (a planted one may claim any
    /// range).
    async fn serials_inside_leases(&mut self, named: &BTreeMap<u64, Vec<String>>) -> Result<(), IssueError> {
        let environment = self.environment;
        let (leases, not_leases) = serial::lease_records(self.env.audit_store().as_ref(), environment).await?;
        for key in not_leases {
            self.found("unreadable-record", format!("{key} is not a lease record of {environment}"));
        }
        self.summary.leases = leases.len();
        for pair in leases.windows(2) {
            if pair[1].first <= pair[0].last {
                self.found("leases-overlap", format!("the leases from {} and from {} overlap", pair[0].first, pair[1].first));
            }
        }
        let lease_of =
            |serial: u64| leases.partition_point(|lease| lease.first <= serial).checked_sub(1).filter(|&i| leases[i].last >= serial);
        let mut used_in_leases = 0u64;
        for serial in named.keys() {
            match lease_of(*serial) {
                Some(_) => used_in_leases += 1,
                None => self.found("serial-outside-lease", format!("serial {serial} was handed out outside any recorded lease")),
            }
        }
        self.summary.gaps = leases.iter().map(|lease| lease.last - lease.first + 1).sum::<u64>().saturating_sub(used_in_leases);
        if let Some(highest) = leases.iter().map(|lease| lease.last).max() {
            let next = serial::issued_below(self.env.store().as_ref(), environment).await?;
            if next <= highest {
                self.found(
                    "counter-behind",
                    format!("the serial counter is at {next}, not above the highest lease ({highest}): the next issuance rebuilds it, or restore it from its versions"),
                );
            }
        }
        Ok(())
    }

    /// The published KRL against the revocation log.
    async fn krl_matches_the_log(&mut self) -> Result<(), IssueError> {
        let (env, environment) = (self.env, self.environment);
        let log = revoke::read_log(env.audit_store().as_ref(), environment).await?;
        for key in &log.unreadable {
            self.found("unreadable-record", format!("{key} is not a revocation record of {environment}"));
        }
        let key = revoke::krl_key(environment);
        let Some(published) = env.store().get(&key).await? else { return Ok(()) };
        match krl::decode(&published.body) {
            Ok(contents) => {
                let made = revoke::encode_krl(env, environment, &log.state, contents.generated_at).await?;
                let vanished = contents.not_in(&krl::decode(&made).expect("sshca's own KRL decodes"));
                if vanished > 0 {
                    self.found(
                        "krl-revokes-unrecorded",
                        format!("{key} makes {vanished} revocation(s) (serials and key ids counted per CA key) that no revocation record holds (a record deleted or hidden by a delete marker, or a KRL planted): restore the record from the audit bucket's versions, or drop them with `sshca krl {environment} --publish --allow-shrink`"),
                    );
                } else if made != published.body {
                    self.found(
                        "krl-differs",
                        format!("{key} is not the KRL the revocation log makes: the next `sshca revoke` republishes it"),
                    );
                }
            }
            Err(why) => self.found(
                "krl-differs",
                format!("{key} is not a KRL sshca publishes ({why}): `sshca krl {environment} --publish` replaces it"),
            ),
        }
        Ok(())
    }

    /// The CA keys are the environment's own.
    async fn ca_keys_are_ours(&mut self) -> Result<(), IssueError> {
        for kind in [CertKind::User, CertKind::Host] {
            if let Err(err) = self.env.trusted_ca_keys(self.environment, kind).await {
                if self.env.policy(self.environment).await?.trusted_cas(kind).is_empty() {
                    continue;
                }
                self.found("ca-key", format!("{} CA: {err}", kind.as_str()));
            }
        }
        Ok(())
    }

    /// No record written more than once, or deleted, where the bucket keeps versions.
    async fn records_written_once(&mut self) -> Result<(), IssueError> {
        for (key, versions, deleted) in self.env.audit_store().history(&layout::audit_trail(self.environment)).await? {
            if deleted {
                self.found("record-deleted", format!("{key} was deleted (a delete marker hides it)"));
            } else if versions > 1 {
                self.found("record-overwritten", format!("{key} was written {versions} times"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ssh_key::rand_core::OsRng;
    use ssh_key::{Algorithm, PrivateKey};

    use super::*;
    use crate::issuer::Caller;
    use crate::request::SignRequest;
    use crate::store::memory::MemoryStore;
    use crate::store::{Condition, Store};
    use crate::testing::setup;

    fn checks(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|finding| finding.check).collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn clean_books_then_each_tampering_named() {
        let audit = Arc::new(MemoryStore::default());
        let (store, issuer) = setup(audit.clone()).await;
        // the counter of `setup` says 9 serials were handed out; start these books afresh
        store.delete(&layout::serial_counter("staging"));
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap().public_key().to_openssh().unwrap();
        let request = SignRequest {
            environment: "staging".into(),
            username: "jane".into(),
            public_key: Some(key),
            reason: "books".into(),
            ..Default::default()
        };
        let issued = issuer.issue(&request, &Caller::default()).await.unwrap();
        let (summary, findings) = verify(issuer.environment(), "staging").await.unwrap();
        assert_eq!(checks(&findings), Vec::<&str>::new(), "{findings:?}");
        assert_eq!((summary.issued, summary.certificates, summary.leases), (1, 1, 1));

        let object = layout::certificate("staging", "jane", issued.serial);
        store.put(&object, b"ssh-ed25519-cert-v01@openssh.com AAAA other\n".to_vec(), Condition::Always).await.unwrap();
        assert_eq!(checks(&verify(issuer.environment(), "staging").await.unwrap().1), ["certificate-differs"]);
        store.put(&object, format!("{}\n", issued.certificate).into_bytes(), Condition::Always).await.unwrap();

        audit.make_unreadable(&layout::serial_lease("staging", issued.serial));
        let findings = verify(issuer.environment(), "staging").await.unwrap().1;
        assert!(checks(&findings).contains(&"serial-outside-lease"), "{findings:?}");
    }
}
