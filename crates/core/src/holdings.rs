//! Who holds access: every certificate the audit trail says was issued in an environment, with
//! what became of it — valid now, not yet valid, expired, or revoked (by serial, key id or key,
//! as the revocation log says). The auditor's "who has access right now" (`sshca certs --active`).

use serde::Serialize;

use crate::audit::{all_entries, AuditEntry, Event};
use crate::environment::Environment;
use crate::error::IssueError;
use crate::revocation_log::{bare_key_line, read_log, RevocationState};

/// One issued certificate and its status at the time asked.
#[derive(Debug, Clone, Serialize)]
pub struct Holding {
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// `active`, `not-yet-valid`, `expired` or `revoked`.
    pub status: &'static str,
}

/// Every certificate issued in `environment`, oldest serial first, with its status at `now`.
pub async fn holdings(env: &Environment, environment: &str, now: u64) -> Result<Vec<Holding>, IssueError> {
    crate::request::check_environment(environment)?;
    let audit = env.audit_store().as_ref();
    let revoked = read_log(audit, environment).await?.state;
    let mut holdings: Vec<Holding> = all_entries(audit, environment)
        .await?
        .into_iter()
        .filter(|entry| entry.event == Event::Issued && entry.environment == environment)
        .map(|entry| Holding { status: status(&entry, &revoked, now), entry })
        .collect();
    holdings.sort_by_key(|holding| holding.entry.serial);
    Ok(holdings)
}

fn status(entry: &AuditEntry, revoked: &RevocationState, now: u64) -> &'static str {
    let key = entry
        .certificate
        .as_deref()
        .and_then(|line| ssh_key::Certificate::from_openssh(line.trim()).ok())
        .and_then(|certificate| bare_key_line(certificate.public_key()).ok());
    if revoked.serials.contains(&entry.serial)
        || revoked.key_ids.contains(&entry.key_id)
        || key.is_some_and(|key| revoked.keys.contains(&key))
    {
        "revoked"
    } else if now >= entry.valid_before {
        "expired"
    } else if now < entry.valid_after {
        "not-yet-valid"
    } else {
        "active"
    }
}
