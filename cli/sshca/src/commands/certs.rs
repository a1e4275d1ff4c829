//! `sshca certs ENV [--active] [--user U] [--json]`: the certificates the audit trail says were
//! issued, and which of them give access right now (valid, not revoked).

use anyhow::Result;
use clap::Args;
use get_key::verify::rfc3339;
use sshca_core::holdings::holdings;
use sshca_core::time::unix_now;
use sshca_core::Environment;

#[derive(Args)]
pub struct CertsArgs {
    environment: String,
    /// Only the certificates valid now and not revoked: who has access right now.
    #[arg(long)]
    active: bool,
    /// Only this user's (or host's) certificates.
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    json: bool,
}

pub async fn certs(env: &Environment, args: CertsArgs) -> Result<()> {
    let now = unix_now();
    let shown: Vec<_> = holdings(env, &args.environment, now)
        .await?
        .into_iter()
        .filter(|holding| !args.active || holding.status == "active")
        .filter(|holding| args.user.as_ref().is_none_or(|user| &holding.entry.username == user))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    for holding in &shown {
        let entry = &holding.entry;
        println!(
            "{:<13}  serial {:<6}  {:<4}  {}  principals {}  until {}  caller {}",
            holding.status,
            entry.serial,
            entry.cert_type,
            entry.key_id,
            entry.principals.join(","),
            rfc3339(entry.valid_before),
            entry.caller_identity.as_deref().unwrap_or("unproven").escape_default(),
        );
    }
    if shown.is_empty() {
        eprintln!("no {}certificates in {:?}", if args.active { "active " } else { "" }, args.environment);
    }
    Ok(())
}
