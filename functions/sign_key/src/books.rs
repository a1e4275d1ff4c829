//! `sshca verify`: an fsck of a CA's books. Every certificate object has its issued record and
//! every issued record its certificate; every serial handed out lies in a recorded lease and is
//! named once; the counter is above every lease; every audit record can be read and was written
//! once (no overwritten versions, no delete markers, where the bucket keeps versions); the
//! published KRL is the one the revocation log makes; the CA keys are the environment's own.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::audit::{AuditEntry, Event};
use crate::issuer::Issuer;
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

/// Checks `environment`'s books.
pub async fn verify(issuer: &Issuer, environment: &str) -> Result<(Summary, Vec<Finding>), IssueError> {
    request::check_environment(environment)?;
    let store = issuer.store().as_ref();
    let audit = issuer.audit_store().as_ref();
    let mut findings = Vec::new();
    let mut summary = Summary::default();

    // the audit records, read one by one: an unreadable one is a finding of its own
    let prefix = layout::audit_trail(environment);
    let mut records: Vec<(String, AuditEntry)> = Vec::new();
    for key in audit.list(&prefix).await? {
        if !layout::is_dated_record(environment, &key) {
            continue;
        }
        match audit.get(&key).await {
            Ok(Some(object)) => match serde_json::from_slice::<AuditEntry>(&object.body) {
                Ok(entry) if entry.environment == environment => records.push((key, entry)),
                _ => findings.push(finding("unreadable-record", format!("{key} is not an audit record of {environment}"))),
            },
            Ok(None) => {}
            Err(err) if err.is_unreadable_object() => findings.push(finding("unreadable-record", err.to_string())),
            Err(err) => return Err(err.into()),
        }
    }
    let mut named: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for (key, entry) in &records {
        named.entry(entry.serial).or_default().push(key);
        match entry.event {
            Event::Issued => summary.issued += 1,
            Event::Void => summary.void += 1,
        }
    }
    for (serial, keys) in &named {
        if keys.len() > 1 {
            findings.push(finding("serial-twice", format!("serial {serial} is named by {} records: {}", keys.len(), keys.join(", "))));
        }
    }

    // certificate objects against issued records, byte for byte
    let mut certificates: BTreeMap<(String, u64), String> = BTreeMap::new();
    for key in store.list(&layout::certificates(environment)).await? {
        if let Some(named) = layout::certificate_of(environment, &key) {
            certificates.insert(named, key);
        }
    }
    summary.certificates = certificates.len();
    for ((user, serial), key) in &certificates {
        let holding = records.iter().find(|(_, e)| e.serial == *serial && &e.username == user && e.certificate.is_some());
        let Some((record, entry)) = holding.or_else(|| records.iter().find(|(_, e)| e.serial == *serial && &e.username == user)) else {
            findings.push(finding("certificate-without-record", format!("{key} has no audit record")));
            continue;
        };
        let Some(recorded) = &entry.certificate else { continue };
        let held = match store.get(key).await {
            Ok(object) => object.map(|object| object.body),
            Err(err) if err.is_unreadable_object() => None,
            Err(err) => return Err(err.into()),
        };
        if held.as_deref() != Some(format!("{recorded}\n").as_bytes()) {
            findings.push(finding(
                "certificate-differs",
                format!("{key} does not hold the certificate its record {record} names: it was replaced or damaged"),
            ));
        }
    }
    for (key, entry) in records.iter().filter(|(_, e)| e.event == Event::Issued) {
        if !certificates.contains_key(&(entry.username.clone(), entry.serial)) {
            findings.push(finding("record-without-certificate", format!("{key} names a certificate object that is not there")));
        }
    }

    // serials against leases and the counter: leases as intervals (a planted one may claim any range)
    let (leases, not_leases) = serial::lease_records(audit, environment).await?;
    for key in not_leases {
        findings.push(finding("unreadable-record", format!("{key} is not a lease record of {environment}")));
    }
    summary.leases = leases.len();
    for pair in leases.windows(2) {
        if pair[1].first <= pair[0].last {
            findings.push(finding("leases-overlap", format!("the leases from {} and from {} overlap", pair[0].first, pair[1].first)));
        }
    }
    let lease_of = |serial: u64| leases.partition_point(|lease| lease.first <= serial).checked_sub(1).filter(|&i| leases[i].last >= serial);
    let mut used_in_leases = 0u64;
    for serial in named.keys() {
        match lease_of(*serial) {
            Some(_) => used_in_leases += 1,
            None => findings.push(finding("serial-outside-lease", format!("serial {serial} was handed out outside any recorded lease"))),
        }
    }
    summary.gaps = leases.iter().map(|lease| lease.last - lease.first + 1).sum::<u64>().saturating_sub(used_in_leases);
    if let Some(highest) = leases.iter().map(|lease| lease.last).max() {
        let next = serial::issued_below(store, environment).await?;
        if next <= highest {
            findings.push(finding(
                "counter-behind",
                format!("the serial counter is at {next}, not above the highest lease ({highest}): the next issuance rebuilds it, or restore it from its versions"),
            ));
        }
    }

    // the published KRL against the revocation log
    let log = revoke::read_log(audit, environment).await?;
    for key in &log.unreadable {
        findings.push(finding("unreadable-record", format!("{key} is not a revocation record of {environment}")));
    }
    if let Some(published) = store.get(&revoke::krl_key(environment)).await? {
        let key = revoke::krl_key(environment);
        match krl::decode(&published.body) {
            Ok(contents) => {
                let made = revoke::encode_krl(issuer, environment, &log.state, contents.generated_at).await?;
                let vanished = contents.not_in(&krl::decode(&made).expect("sshca's own KRL decodes"));
                if vanished > 0 {
                    findings.push(finding(
                        "krl-revokes-unrecorded",
                        format!("{key} makes {vanished} revocation(s) (serials and key ids counted per CA key) that no revocation record holds (a record deleted or hidden by a delete marker, or a KRL planted): restore the record from the audit bucket's versions, or drop them with `sshca krl {environment} --publish --allow-shrink`"),
                    ));
                } else if made != published.body {
                    findings.push(finding(
                        "krl-differs",
                        format!("{key} is not the KRL the revocation log makes: the next `sshca revoke` republishes it"),
                    ));
                }
            }
            Err(why) => findings.push(finding(
                "krl-differs",
                format!("{key} is not a KRL sshca publishes ({why}): `sshca krl {environment} --publish` replaces it"),
            )),
        }
    }

    // the CA keys are the environment's own
    for kind in [CertKind::User, CertKind::Host] {
        if let Err(err) = issuer.trusted_ca_keys(environment, kind).await {
            if issuer.policy(environment).await?.trusted_cas(kind).is_empty() {
                continue;
            }
            findings.push(finding("ca-key", format!("{} CA: {err}", kind.as_str())));
        }
    }

    // records written more than once, or deleted, where the bucket keeps versions
    for (key, versions, deleted) in audit.history(&prefix).await? {
        if deleted {
            findings.push(finding("record-deleted", format!("{key} was deleted (a delete marker hides it)")));
        } else if versions > 1 {
            findings.push(finding("record-overwritten", format!("{key} was written {versions} times")));
        }
    }
    Ok((summary, findings))
}
