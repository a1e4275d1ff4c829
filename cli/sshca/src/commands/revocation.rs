//! Revoking access and reading the record: `sshca revoke`, `krl`, `audit`, `show`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use serde_json::{json, Value};
use sshca_core::audit::entries_between;
use sshca_core::revoke::{self, RevokeOutcome, RevokeRequest};
use sshca_core::store::Condition;
use sshca_core::time::unix_now;
use sshca_core::Environment;

use get_key::verify::rfc3339;
use get_key::when::When;

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
    /// Publish the KRL even if it revokes less than the published one (what the published KRL
    /// revokes and no record holds is kept otherwise).
    #[arg(long)]
    allow_shrink: bool,
}

pub async fn revoke(env: &Environment, args: RevokeArgs) -> Result<()> {
    let public_keys = args.public_key.iter().map(|source| read_public_key(source)).collect::<Result<Vec<_>>>()?;
    let request = RevokeRequest {
        environment: args.environment.clone(),
        serials: args.serial,
        key_ids: args.key_id,
        users: args.user,
        public_keys,
        reason: args.reason.unwrap_or_default(),
        requested_by: std::env::var("USER").ok(),
        allow_shrink: args.allow_shrink,
    };
    let report = revoke::revoke(env, &request).await?;
    warn_about(&report, &args.environment);
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

/// What a revocation or publication had to skip or keep.
fn warn_about(report: &revoke::RevokeReport, environment: &str) {
    for key in &report.unreadable {
        eprintln!("warning: the revocation record {key} cannot be read and was skipped (planted or damaged?): see its object versions in the audit bucket");
    }
    if report.kept_from_published > 0 {
        eprintln!(
            "warning: the published KRL made {} revocation(s) (serials and key ids counted per CA key) that no revocation record holds (a record deleted or hidden?): kept revoked; \
             `sshca verify {environment}` shows the difference, `--allow-shrink` drops them",
            report.kept_from_published
        );
    }
}

#[derive(Args)]
pub struct KrlArgs {
    environment: String,
    /// Publish the KRL the revocation log makes (after a KRL was lost or replaced), instead of fetching it.
    #[arg(long, conflicts_with_all = ["output", "url"])]
    publish: bool,
    /// With --publish: drop what the published KRL revokes and no record holds. With -o: install a
    /// KRL that revokes less than the installed one.
    #[arg(long)]
    allow_shrink: bool,
    /// With -o: the CA public keys the KRL must be scoped to (one per line, e.g. sshd's
    /// TrustedUserCAKeys file plus the host CA), for servers whose role cannot read the policy;
    /// default: the environment's CA keys from its policy.
    #[arg(long, value_name = "FILE")]
    ca_keys: Option<PathBuf>,
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

pub async fn krl(env: &Environment, args: KrlArgs) -> Result<()> {
    if args.publish {
        let report = revoke::republish(env, &args.environment, args.allow_shrink).await?;
        warn_about(&report, &args.environment);
        eprintln!("published {}", revoke::krl_key(&args.environment));
        return Ok(());
    }
    let krl = revoke::current_krl(env, &args.environment).await?;
    if args.url {
        let key = revoke::krl_key(&args.environment);
        // Nothing revoked yet: publish the empty list, so the link works from day one.
        let _ = env.store().put(&key, krl, Condition::IfAbsent).await;
        println!("{}", env.store().presign_get(&key, Duration::from_secs(args.expires)).await?);
        return Ok(());
    }
    match args.output {
        None => std::io::stdout().write_all(&krl)?,
        Some(path) => {
            let cas = match &args.ca_keys {
                Some(file) => read_ca_keys(file)?,
                None => revoke::trusted_cas(env, &args.environment)
                    .await
                    .context("reading the environment's CA keys to check the KRL against (a server's role may not read the policy: pass --ca-keys FILE)")?
                    .iter()
                    .map(|key| sshca_core::krl::blob(key.key_data()))
                    .collect(),
            };
            let installed = std::fs::read(&path).ok();
            if let Err(why) = sshca_core::krl::check_replacement(&krl, installed.as_deref(), &cas, args.allow_shrink) {
                bail!("refusing to replace {} with {}: {why}", path.display(), revoke::krl_key(&args.environment));
            }
            // sshd refuses every key while RevokedKeys is unreadable or partial: replace it whole.
            sshca_proto::fs::write_atomically(&path, &krl)?;
            eprintln!("wrote {} ({} bytes)", path.display(), krl.len());
        }
    }
    Ok(())
}

/// The wire blobs of the public keys in `file` (one OpenSSH line each; comments and blank lines skipped).
fn read_ca_keys(file: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let keys = text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'));
    keys.map(|line| {
        let key = ssh_key::PublicKey::from_openssh(line)
            .with_context(|| format!("{} holds a line that is not a public key: {line:?}", file.display()))?;
        Ok(sshca_core::krl::blob(key.key_data()))
    })
    .collect()
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
    /// Only certificates issued under break glass (self-approved for an incident).
    #[arg(long)]
    break_glass: bool,
}

pub async fn audit(env: &Environment, args: AuditArgs) -> Result<()> {
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
    let audit_store = env.audit_store().as_ref();
    let mut events: Vec<Value> = Vec::new();
    for entry in entries_between(audit_store, &args.environment, since, until).await? {
        let matches = args.user.as_ref().is_none_or(|u| &entry.username == u)
            && args.serial.is_none_or(|s| entry.serial == s)
            && (!args.break_glass || entry.break_glass);
        if matches && in_range(&entry.timestamp) {
            events.push(serde_json::to_value(&entry)?);
        }
    }
    for record in revoke::records(audit_store, &args.environment).await? {
        let matches = args.serial.is_none_or(|s| record.serials.contains(&s))
            && args.user.as_ref().is_none_or(|u| record.key_ids.iter().any(|k| k.starts_with(&format!("{u}#"))) || args.serial.is_some());
        if matches && (args.user.is_none() || args.serial.is_some()) && !args.break_glass && in_range(&record.timestamp) {
            events.push(serde_json::to_value(&record)?);
        }
    }
    events.sort_by(|a, b| b["timestamp"].as_str().cmp(&a["timestamp"].as_str()));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    for event in &events {
        println!("{}", event_line(event));
    }
    if events.is_empty() {
        eprintln!("no audit records between {} and {}", rfc3339(since), rfc3339(until));
    }
    Ok(())
}

/// One line of `sshca audit`.
fn event_line(event: &Value) -> String {
    match event["event"].as_str() {
        Some("revoked") => format!(
            "{}  revoked   serials {} key ids {} keys {}  by {}  reason {}",
            event["timestamp"].as_str().unwrap_or_default(),
            event["serials"],
            event["key_ids"],
            event["keys"].as_array().map_or(0, Vec::len),
            shown(&event["requested_by"]),
            shown(&event["reason"])
        ),
        kind => format!(
            "{}  {:<8}  serial {}  {}  {} {}  until {}  caller {}  label {}  reason {}",
            event["timestamp"].as_str().unwrap_or_default(),
            kind.unwrap_or_default(),
            event["serial"],
            event["key_id"],
            event["cert_type"],
            event["principals"],
            rfc3339(event["valid_before"].as_u64().unwrap_or_default()),
            // A record in the audit bucket may have been planted: even these fields, which the
            // function writes, are escaped.
            match (event["caller_identity"].as_str(), event["access"].as_str()) {
                (Some(arn), Some(access)) if !access.is_empty() => format!("{} ({})", escaped(arn), escaped(access)),
                (Some(arn), _) => escaped(arn),
                (None, _) => "unproven".to_owned(),
            } + &match event["groups"].as_array() {
                Some(groups) => format!(
                    " groups [{}]",
                    groups.iter().map(|group| escaped(group.as_str().unwrap_or("?"))).collect::<Vec<_>>().join(", ")
                ),
                None => String::new(),
            } + &match (event["access_request"].as_str(), event["break_glass"].as_bool()) {
                (Some(request), _) => format!(
                    " request {} approved by [{}]",
                    escaped(request),
                    event["approvers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| escaped(a.as_str().unwrap_or("?")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (None, Some(true)) => " BREAK GLASS".to_owned(),
                _ => String::new(),
            },
            shown(&event["requested_by"]),
            shown(&event["reason"])
        ),
    }
}

/// Free text from a record, quoted and with control, zero-width and bidi characters escaped: what
/// an admin's terminal shows is what the record holds.
fn shown(value: &Value) -> String {
    format!("\"{}\"", escaped(value.as_str().unwrap_or("-")))
}

/// `text` escaped as [`shown`] escapes it, without the quotes: for fields that are one plain word
/// (an ARN, a certificate line) unless someone planted more.
fn escaped(text: &str) -> String {
    let quoted = format!("{text:?}");
    quoted[1..quoted.len() - 1].to_owned()
}

#[derive(Args)]
pub struct ShowArgs {
    environment: String,
    serial: u64,
}

pub async fn show(env: &Environment, args: ShowArgs) -> Result<()> {
    let audit_store = env.audit_store();
    let keys: Vec<String> = audit_store
        .list(&sshca_core::layout::audit_trail(&args.environment))
        .await?
        .into_iter()
        .filter(|key| sshca_core::layout::dated_record_serial(&args.environment, key) == Some(args.serial))
        .collect();
    if keys.is_empty() {
        bail!(
            "no audit record of serial {} in environment {:?}: check both (`sshca audit {}`)",
            args.serial,
            args.environment,
            args.environment
        );
    }
    let mut records = Vec::new();
    for key in keys {
        if let Some(object) = audit_store.get(&key).await? {
            records.push(json!({"object": key, "record": serde_json::from_slice::<Value>(&object.body)?}));
        }
    }
    if let Some(certificate) = records.iter().find_map(|r| r["record"]["certificate"].as_str()) {
        println!("{}", escaped(certificate));
    }
    println!("{}", serde_json::to_string_pretty(&records)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(caller_identity: &str, access: &str) -> Value {
        json!({
            "event": "issued", "timestamp": "2026-01-01T00:00:00Z", "serial": 7, "key_id": "jane#7", "cert_type": "user",
            "principals": ["deploy"], "valid_before": 0, "caller_identity": caller_identity, "access": access,
            "requested_by": "the CEO", "reason": "deploy"
        })
    }

    #[test]
    fn the_caller_and_its_access_are_escaped() {
        let planted = event_line(&issued("arn:aws:iam::1:role/x\u{1b}[2K\rarn:aws:iam::1:role/admin", "user\u{202e}"));
        assert!(!planted.chars().any(|c| c.is_control() || c == '\u{202e}'), "{planted:?}");
        assert!(planted.contains(r"caller arn:aws:iam::1:role/x\u{1b}[2K\rarn:aws:iam::1:role/admin (user\u{202e})  label"), "{planted}");
        // what the function writes prints as it always did
        let plain = event_line(&issued("arn:aws:iam::000000000000:root", "admin"));
        assert!(plain.contains("caller arn:aws:iam::000000000000:root (admin)  label \"the CEO\"  reason \"deploy\""), "{plain}");
    }

    #[test]
    fn escaping_leaves_a_certificate_line_alone_and_nothing_else() {
        let line = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t+/= comment";
        assert_eq!(escaped(line), line);
        assert_eq!(escaped("AAAA\u{1b}]0;owned\u{7}\n"), r"AAAA\u{1b}]0;owned\u{7}\n");
        assert_eq!(shown(&json!("a \"b\"\u{200b}")), r#""a \"b\"\u{200b}""#);
        assert_eq!(shown(&Value::Null), "\"-\"");
    }
}
