//! Revoking access and reading the record: `sshca revoke`, `krl`, `audit`, `show`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use serde_json::{json, Value};
use sign_key::audit::entries_between;
use sign_key::issuer::unix_now;
use sign_key::revoke::{self, RevokeOutcome, RevokeRequest};
use sign_key::store::Condition;
use sign_key::Issuer;

use get_key::when::When;
use get_key::verify::rfc3339;

use crate::input::read_public_key;
use crate::parse_duration;

#[derive(Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["serial", "key_id", "user", "public_key"])))]
pub struct RevokeArgs {
    environment: String,
    /// Certificate serial(s) to revoke.
    #[arg(long, value_delimiter = ',')]
    serial: Vec<u64>,
    /// Certificate key id(s) to revoke (e.g. 'jane@example.com#42').
    #[arg(long)]
    key_id: Vec<String>,
    /// Revoke every unexpired certificate issued to this user (found in the audit trail).
    #[arg(long)]
    user: Vec<String>,
    /// Revoke a public key outright (file, URL or -), with every certificate of it.
    #[arg(long)]
    public_key: Vec<String>,
    /// Why (recorded in the audit trail).
    #[arg(short, long)]
    reason: Option<String>,
}

pub async fn revoke(issuer: &Issuer, args: RevokeArgs) -> Result<()> {
    let public_keys = args.public_key.iter().map(|source| read_public_key(source)).collect::<Result<Vec<_>>>()?;
    let request = RevokeRequest {
        environment: args.environment.clone(),
        serials: args.serial,
        key_ids: args.key_id,
        users: args.user,
        public_keys,
        reason: args.reason.unwrap_or_default(),
        requested_by: std::env::var("USER").ok(),
    };
    let report = revoke::revoke(issuer, &request).await?;
    for key in &report.unreadable {
        eprintln!("warning: the revocation record {key} cannot be read and was skipped (planted or damaged?): see its object versions in the audit bucket");
    }
    match report.outcome {
        RevokeOutcome::Revoked { version, serials, key_ids, keys } => eprintln!(
            "revoked {serials} serial(s), {key_ids} key id(s), {keys} key(s) (revocation #{version}); the KRL is updated: \
             servers fetch it with `sshca krl {env} -o /etc/ssh/sshca_revoked.krl`",
            env = args.environment
        ),
        RevokeOutcome::AlreadyRevoked { version } => {
            eprintln!("already revoked (revocation state #{version}): nothing new recorded")
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct KrlArgs {
    environment: String,
    /// Write the KRL to this file (atomically) instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print a presigned URL of the KRL instead, for servers to fetch with curl.
    #[arg(long)]
    url: bool,
    /// Lifetime of the --url link.
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    expires: u64,
}

pub async fn krl(issuer: &Issuer, args: KrlArgs) -> Result<()> {
    let krl = revoke::current_krl(issuer, &args.environment).await?;
    if args.url {
        let key = revoke::krl_key(&args.environment);
        // Nothing revoked yet: publish the empty list, so the link works from day one.
        let _ = issuer.store().put(&key, krl, Condition::IfAbsent).await;
        println!("{}", issuer.store().presign_get(&key, Duration::from_secs(args.expires)).await?);
        return Ok(());
    }
    match args.output {
        None => std::io::stdout().write_all(&krl)?,
        Some(path) => {
            // sshd refuses every key while RevokedKeys is unreadable or partial: replace it whole.
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let mut temp = tempfile::Builder::new().prefix(".sshca-krl-").tempfile_in(dir)?;
            temp.write_all(&krl)?;
            temp.as_file().sync_all()?;
            temp.persist(&path).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} ({} bytes)", path.display(), krl.len());
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct AuditArgs {
    environment: String,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    serial: Option<u64>,
    /// From (e.g. -7d, YYYYMMDDHHMMSS); default: 7 days ago.
    #[arg(long, value_parser = When::parse, allow_hyphen_values = true)]
    since: Option<When>,
    /// Until (e.g. -1d, YYYYMMDDHHMMSS); default: now.
    #[arg(long, value_parser = When::parse, allow_hyphen_values = true)]
    until: Option<When>,
    #[arg(long)]
    json: bool,
}

pub async fn audit(issuer: &Issuer, args: AuditArgs) -> Result<()> {
    let now = unix_now();
    let since = args.since.map(|w| w.at(now)).unwrap_or(now.saturating_sub(7 * 86_400));
    let until = args.until.map(|w| w.at(now)).unwrap_or(now);
    if since > until {
        bail!("--since is after --until");
    }
    let in_range = |timestamp: &str| {
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .map(|t| (since..=until).contains(&(t.unix_timestamp().max(0) as u64)))
            .unwrap_or(false)
    };
    let audit_store = issuer.audit_store().as_ref();
    let mut events: Vec<Value> = Vec::new();
    for entry in entries_between(audit_store, &args.environment, since, until).await? {
        let matches = args.user.as_ref().is_none_or(|u| &entry.username == u) && args.serial.is_none_or(|s| entry.serial == s);
        if matches && in_range(&entry.timestamp) {
            events.push(serde_json::to_value(&entry)?);
        }
    }
    for record in revoke::records(audit_store, &args.environment).await? {
        let matches = args.serial.is_none_or(|s| record.serials.contains(&s))
            && args.user.as_ref().is_none_or(|u| record.key_ids.iter().any(|k| k.starts_with(&format!("{u}#"))) || args.serial.is_some());
        if matches && (args.user.is_none() || args.serial.is_some()) && in_range(&record.timestamp) {
            events.push(serde_json::to_value(&record)?);
        }
    }
    events.sort_by(|a, b| b["timestamp"].as_str().cmp(&a["timestamp"].as_str()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    for event in &events {
        match event["event"].as_str() {
            Some("revoked") => println!(
                "{}  revoked   serials {} key ids {} keys {}  by {}  reason {}",
                event["timestamp"].as_str().unwrap_or_default(),
                event["serials"], event["key_ids"], event["keys"].as_array().map_or(0, Vec::len),
                shown(&event["requested_by"]), shown(&event["reason"])
            ),
            kind => println!(
                "{}  {:<8}  serial {}  {}  {} {}  until {}  caller {}  label {}  reason {}",
                event["timestamp"].as_str().unwrap_or_default(),
                kind.unwrap_or_default(),
                event["serial"], event["key_id"], event["cert_type"], event["principals"],
                rfc3339(event["valid_before"].as_u64().unwrap_or_default()),
                match (event["caller_identity"].as_str(), event["access"].as_str()) {
                    (Some(arn), Some(access)) if !access.is_empty() => format!("{arn} ({access})"),
                    (Some(arn), _) => arn.to_owned(),
                    (None, _) => "unproven".to_owned(),
                },
                shown(&event["requested_by"]),
                shown(&event["reason"])
            ),
        }
    }
    if events.is_empty() {
        eprintln!("no audit records between {} and {}", rfc3339(since), rfc3339(until));
    }
    Ok(())
}

/// Free text from a record, quoted and with control, zero-width and bidi characters escaped: what
/// an admin's terminal shows is what the record holds.
fn shown(value: &serde_json::Value) -> String {
    format!("{:?}", value.as_str().unwrap_or("-"))
}

#[derive(Args)]
pub struct ShowArgs {
    environment: String,
    serial: u64,
}

pub async fn show(issuer: &Issuer, args: ShowArgs) -> Result<()> {
    let audit_store = issuer.audit_store();
    let suffix = format!("{:020}-", args.serial);
    let keys: Vec<String> = audit_store
        .list(&format!("audit/{}/", args.environment))
        .await?
        .into_iter()
        .filter(|k| k.rsplit('/').next().is_some_and(|name| name.starts_with(&suffix)))
        .collect();
    if keys.is_empty() {
        bail!("no audit record of serial {} in environment {:?}: check both (`sshca audit {}`)", args.serial, args.environment, args.environment);
    }
    let mut records = Vec::new();
    for key in keys {
        if let Some(object) = audit_store.get(&key).await? {
            records.push(json!({"object": key, "record": serde_json::from_slice::<Value>(&object.body)?}));
        }
    }
    if let Some(certificate) = records.iter().find_map(|r| r["record"]["certificate"].as_str()) {
        println!("{certificate}");
    }
    println!("{}", serde_json::to_string_pretty(&records)?);
    Ok(())
}
