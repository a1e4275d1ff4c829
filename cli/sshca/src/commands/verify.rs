//! `sshca verify ENV`: checks the CA's books (certificates, records, serials, leases, counter,
//! KRL, CA keys, overwritten or deleted records), by hand or from a timer. Exit 0 only when
//! nothing is found. With `--cloudtrail-events FILE`, also counts what the CA keys signed in KMS
//! against what the books record ([`sshca_aws::signings`]): the books cannot show a signature made
//! by someone acting as the function's role who wrote no record, CloudTrail can.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use ssh_key::HashAlg;
use sshca_aws::signings::{self, CloudTrailExport, SigningEvents};
use sshca_core::books::Finding;
use sshca_core::{CaKeyRef, CertKind, Environment};

#[derive(Args)]
pub struct VerifyArgs {
    environment: String,
    #[arg(long)]
    json: bool,
    /// Also report the days on which the CA keys signed more in KMS than the books record: FILE is
    /// the output of `aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=Sign --output json`
    /// in the CA's account and region.
    #[arg(long, value_name = "FILE")]
    cloudtrail_events: Option<PathBuf>,
}

pub async fn verify(env: &Environment, args: VerifyArgs) -> Result<()> {
    let (summary, mut findings) = sshca_core::books::verify(env, &args.environment).await?;
    if let Some(path) = &args.cloudtrail_events {
        findings.extend(kms_signatures(env, &args.environment, path).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"summary": summary, "findings": findings}))?);
    } else {
        println!(
            "sshca verify {}: {} issued, {} void, {} certificate objects, {} leases ({} unused serials): {}",
            args.environment,
            summary.issued,
            summary.void,
            summary.certificates,
            summary.leases,
            summary.gaps,
            if findings.is_empty() { "nothing wrong".to_owned() } else { format!("{} finding(s)", findings.len()) }
        );
        for finding in &findings {
            println!("  {:<28} {}", finding.check, finding.what);
        }
    }
    if !findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// What the environment's KMS CA keys signed (`kms:Sign` in the CloudTrail export at `path`) that
/// its books do not account for: a finding per key and day. Each key is held to the records of
/// certificates it signed (by the CA fingerprint they name), so that records of a sealed key
/// (which signs in the function's memory, without kms:Sign) or of another key cannot cover for it.
async fn kms_signatures(env: &Environment, environment: &str, path: &Path) -> Result<Vec<Finding>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the CloudTrail events {}", path.display()))?;
    let events = CloudTrailExport::from_json(&bytes)
        .and_then(|export| export.sign_events())
        .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    let policy = env.policy(environment).await?;
    let entries = sshca_core::audit::all_entries(env.audit_store().as_ref(), environment).await?;
    let mut findings = Vec::new();

    // The KMS CA keys by key id (one key may be both the user and the host CA): as the policy names
    // it, and the fingerprint of its public key where that can be read (where not, books::verify
    // has a `ca-key` finding already). `fingerprints` holds every trusted CA's, sealed ones too.
    let mut keys: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    let mut fingerprints: BTreeSet<String> = BTreeSet::new();
    for kind in [CertKind::User, CertKind::Host] {
        let cas = policy.trusted_cas(kind);
        // one public key per trusted CA, in the order of trusted_cas
        let public = env.trusted_ca_keys(environment, kind).await.ok().filter(|public| public.len() == cas.len());
        for (i, &(role, ca)) in cas.iter().enumerate() {
            let fingerprint = public.as_ref().map(|public| public[i].fingerprint(HashAlg::Sha256).to_string());
            fingerprints.extend(fingerprint.clone());
            let CaKeyRef::Kms { key_id } = ca else { continue };
            if key_id.starts_with("alias/") || key_id.contains(":alias/") {
                findings.push(Finding {
                    check: "kms-signed-unchecked",
                    what: format!(
                        "the {} CA ({role}) names its KMS key by the alias {key_id}, and CloudTrail names keys by ARN, so what it signed cannot be counted: name the key by its key id or ARN in the policy (`sshca init {environment} --{}-ca-key ARN` for the current CA)",
                        kind.as_str(),
                        kind.as_str()
                    ),
                });
                continue;
            }
            let key = keys.entry(signings::key_id_of(key_id).to_owned()).or_insert_with(|| (key_id.clone(), None));
            if key.1.is_none() {
                key.1 = fingerprint;
            }
        }
    }
    let mut groups: Vec<(Vec<String>, Vec<u64>)> = keys
        .values()
        .filter_map(|(name, fingerprint)| {
            let fingerprint = fingerprint.as_ref()?;
            Some((vec![name.clone()], signings::recorded_signatures(entries.iter().filter(|entry| &entry.ca_fingerprint == fingerprint))))
        })
        .collect();
    // keys whose public key could not be read are held, together, to the records no known CA key signed
    let unread: Vec<String> = keys.values().filter(|(_, fingerprint)| fingerprint.is_none()).map(|(name, _)| name.clone()).collect();
    if !unread.is_empty() {
        groups.push((unread, signings::recorded_signatures(entries.iter().filter(|entry| !fingerprints.contains(&entry.ca_fingerprint)))));
    }

    let mut counted = 0;
    for (names, recorded) in &groups {
        counted +=
            events.iter().filter(|event| names.iter().any(|name| signings::key_id_of(name) == signings::key_id_of(&event.key_arn))).count();
        for day in signings::reconcile(&events, names, recorded) {
            findings.push(Finding {
                check: "kms-signed-unrecorded",
                what: format!(
                    "on {day} KMS signed {signatures} time(s) with the CA key {key} and the books record {recorded} certificate(s) it signed: {unaccounted} signature(s) no record accounts for. Someone acting as the function's role, or holding kms:Sign on the key, may have signed a certificate of their own: look up that day's kms:Sign events (`aws cloudtrail lookup-events --lookup-attributes AttributeKey=EventName,AttributeValue=Sign --start-time {day}T00:00:00Z --end-time {day}T23:59:59Z`) and who made them (userIdentity, sourceIPAddress); if not the function, rotate the CA key (`sshca rotate {environment} --create-next`, --promote, --retire) and narrow who may sign with it",
                    day = day.day,
                    signatures = day.signatures,
                    key = names.join(", "),
                    recorded = day.recorded,
                    unaccounted = day.unaccounted,
                ),
            });
        }
    }
    // on stderr, so that --json stays one document: an export of the wrong account or region holds none, and then finds nothing
    eprintln!(
        "sshca verify {environment}: {} holds {counted} kms:Sign event(s) of the CA keys{}",
        path.display(),
        if counted == 0 && !groups.is_empty() { " (is it of the CA's account and region?)" } else { "" }
    );
    Ok(findings)
}
