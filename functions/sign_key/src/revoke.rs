//! Revocation: by serial, key id, user or public key, recorded in the audit trail and published
//! as the environment's OpenSSH KRL.
//!
//! The log is the truth: each revocation is a write-once record
//! (`audit/<env>/revocations/<version>.json`), and what is revoked is derived from all of them.
//! A record that cannot be read (planted garbage, say) is reported with its key and skipped: it
//! can neither block later revocations (they take the next free version) nor undo earlier ones.
//! The published KRL (`krl/<env>.krl`) is replaced whenever it differs from the one the log
//! makes, whatever version number it claims.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::PublicKey;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::audit::{self, Event};
use crate::error::{IssueError, StoreError};
use crate::issuer::{parse_public_key, unix_now, Issuer};
use crate::krl;
use crate::request::{self, CertKind};
use crate::serial;
use crate::store::{Condition, Store};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevocationState {
    pub version: u64,
    pub serials: BTreeSet<u64>,
    pub key_ids: BTreeSet<String>,
    /// Public keys as OpenSSH lines without comment.
    pub keys: BTreeSet<String>,
}

/// One revocation, as recorded in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevocationRecord {
    pub event: String,
    pub environment: String,
    /// The state version this record creates.
    pub version: u64,
    pub serials: Vec<u64>,
    pub key_ids: Vec<String>,
    pub keys: Vec<String>,
    pub reason: String,
    pub requested_by: Option<String>,
    pub timestamp: String,
}

/// What to revoke.
#[derive(Debug, Clone, Default)]
pub struct RevokeRequest {
    pub environment: String,
    pub serials: Vec<u64>,
    pub key_ids: Vec<String>,
    /// Every unexpired certificate issued to these users.
    pub users: Vec<String>,
    pub public_keys: Vec<String>,
    pub reason: String,
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// Recorded as this version of the environment's revocations.
    Revoked { version: u64, serials: usize, key_ids: usize, keys: usize },
    /// Everything asked for was revoked already: nothing new was recorded.
    AlreadyRevoked { version: u64 },
}

/// What `revoke` did, and the revocation records it had to skip because they cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeReport {
    pub outcome: RevokeOutcome,
    pub unreadable: Vec<String>,
}

const MAX_ATTEMPTS: u32 = 50;

fn record_key(environment: &str, version: u64) -> String {
    format!("audit/{environment}/revocations/{version:020}.json")
}

pub fn krl_key(environment: &str) -> String {
    format!("krl/{environment}.krl")
}

impl RevocationState {
    fn apply(&mut self, record: &RevocationRecord) {
        self.version = record.version;
        self.serials.extend(&record.serials);
        self.key_ids.extend(record.key_ids.iter().cloned());
        self.keys.extend(record.keys.iter().cloned());
    }
}

/// What the revocation log says: the state every readable record builds, the next free version,
/// and the records that could not be read (by key).
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub state: RevocationState,
    pub next_version: u64,
    pub unreadable: Vec<String>,
}

/// Reads every revocation record of `environment`, oldest first. Only readable records count
/// toward the versions: the next version is the first free one above the highest of them, so a
/// name planted far ahead (garbage, or even `u64::MAX`) blocks nothing.
pub async fn read_log(audit: &dyn Store, environment: &str) -> Result<Log, IssueError> {
    let prefix = format!("audit/{environment}/revocations/");
    let mut log = Log::default();
    let mut taken = BTreeSet::new();
    let mut highest = 0;
    for key in audit.list(&prefix).await? {
        let version = key.strip_prefix(&prefix).and_then(|name| name.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok());
        if let Some(version) = version {
            taken.insert(version);
        }
        let record = match audit.get(&key).await? {
            Some(object) => serde_json::from_slice::<RevocationRecord>(&object.body).ok(),
            None => continue,
        };
        match record.filter(|record| Some(record.version) == version && record.environment == environment) {
            Some(record) => {
                highest = highest.max(record.version);
                log.state.apply(&record);
            }
            None => log.unreadable.push(key),
        }
    }
    log.state.version = highest;
    log.next_version = (highest.saturating_add(1)..=u64::MAX).find(|v| !taken.contains(v)).unwrap_or(u64::MAX);
    Ok(log)
}

/// Revokes what `request` names and republishes the KRL.
pub async fn revoke(issuer: &Issuer, request: &RevokeRequest) -> Result<RevokeReport, IssueError> {
    let environment = &request.environment;
    request::check_environment(environment)?;
    if request.reason.trim().is_empty() {
        return Err(IssueError::InvalidRequest("a reason is required: say why access is revoked (-r 'laptop stolen')".into()));
    }
    request::check_reason(&request.reason)?;
    let store = issuer.store().as_ref();
    let audit = issuer.audit_store().as_ref();
    issuer.policy(environment).await?;
    // revokers race for versions with create-only writes: a server that ignores them would lose one
    crate::store::refuse_ignored_conditions(audit, crate::layout::conditional_create_probe(true)).await?;

    let mut wanted = RevocationState::default();
    if !request.serials.is_empty() {
        let issued_below = serial::issued_below(store, environment).await?;
        for &serial in &request.serials {
            if serial == 0 || serial >= issued_below {
                return Err(IssueError::InvalidRequest(format!(
                    "serial {serial} was never issued in environment {environment:?} (its serials run from 1 to {}): check the environment and the serial (`sshca audit {environment}`)",
                    issued_below.saturating_sub(1)
                )));
            }
            wanted.serials.insert(serial);
        }
    }
    for key_id in &request.key_ids {
        if key_id.is_empty() || key_id.chars().any(char::is_control) {
            return Err(IssueError::InvalidRequest(format!("key id {key_id:?} is not valid")));
        }
        wanted.key_ids.insert(key_id.clone());
    }
    for text in &request.public_keys {
        let key = parse_public_key(text)?;
        wanted.keys.insert(bare_key_line(key.key_data())?);
    }
    for user in &request.users {
        request::check_username(user)?;
        // Every record ever written, whatever today's TTLs are: a certificate issued under an
        // older, longer max TTL is still found. Void records that hold a signed certificate count.
        let entries = audit::all_entries(audit, environment).await?;
        let now = unix_now();
        let mut found = 0;
        for entry in entries.iter().filter(|e| &e.username == user && e.valid_before > now && (e.event == Event::Issued || e.certificate.is_some())) {
            wanted.serials.insert(entry.serial);
            found += 1;
        }
        if found == 0 {
            return Err(IssueError::InvalidRequest(format!(
                "user {user:?} has no unexpired certificate in environment {environment:?}: nothing to revoke (see `sshca audit {environment} --user {user}`)"
            )));
        }
    }
    if wanted.serials.is_empty() && wanted.key_ids.is_empty() && wanted.keys.is_empty() {
        return Err(IssueError::InvalidRequest("nothing to revoke: name --serial, --key-id, --user or --public-key".into()));
    }

    let mut backoff = Duration::from_millis(5);
    let mut recorded = None;
    for attempt in 0.. {
        if attempt == MAX_ATTEMPTS {
            return Err(IssueError::Unavailable("too many concurrent revocations: try again".into()));
        }
        let log = read_log(audit, environment).await?;
        let record = RevocationRecord {
            event: "revoked".into(),
            environment: environment.clone(),
            version: log.next_version,
            serials: wanted.serials.difference(&log.state.serials).copied().collect(),
            key_ids: wanted.key_ids.difference(&log.state.key_ids).cloned().collect(),
            keys: wanted.keys.difference(&log.state.keys).cloned().collect(),
            reason: request.reason.clone(),
            requested_by: request.requested_by.clone(),
            timestamp: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC formats"),
        };
        if record.serials.is_empty() && record.key_ids.is_empty() && record.keys.is_empty() {
            break;
        }
        let body = serde_json::to_vec_pretty(&record).expect("serializes");
        match audit.put(&record_key(environment, record.version), body, Condition::IfAbsent).await {
            Ok(_) => {
                recorded = Some(RevokeOutcome::Revoked {
                    version: record.version,
                    serials: record.serials.len(),
                    key_ids: record.key_ids.len(),
                    keys: record.keys.len(),
                });
                break;
            }
            // another revoker took this version: read the log again and take the next
            Err(StoreError::PreconditionFailed) => {
                let pause = rand::thread_rng().gen_range(Duration::ZERO..=backoff);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(Duration::from_millis(250));
            }
            Err(err) => return Err(err.into()),
        }
    }
    // Every revocation republishes the KRL the whole log makes, ours included.
    let log = publish_krl(issuer, environment).await?;
    let outcome = recorded.unwrap_or(RevokeOutcome::AlreadyRevoked { version: log.state.version });
    Ok(RevokeReport { outcome, unreadable: log.unreadable })
}

pub(crate) fn bare_key_line(key: &KeyData) -> Result<String, IssueError> {
    PublicKey::new(key.clone(), "").to_openssh().map_err(|err| IssueError::InvalidPublicKey(err.to_string()))
}

/// The KRL for `state`: serials and key ids scoped to every CA key the environment trusts.
/// The KRL for `state`, generated at `at` (Unix seconds): serials and key ids scoped to every CA
/// key the environment trusts.
pub async fn encode_krl(issuer: &Issuer, environment: &str, state: &RevocationState, at: u64) -> Result<Vec<u8>, IssueError> {
    let mut cas = issuer.trusted_ca_keys(environment, CertKind::User).await?;
    // An environment without a host CA has none to list; one whose host CA cannot be loaded must
    // not publish a KRL that silently drops every host revocation.
    if !issuer.policy(environment).await?.trusted_cas(CertKind::Host).is_empty() {
        cas.extend(issuer.trusted_ca_keys(environment, CertKind::Host).await?);
    }
    let keys: Vec<PublicKey> = state.keys.iter().filter_map(|line| PublicKey::from_openssh(line).ok()).collect();
    let revoked = krl::Revoked {
        serials: state.serials.iter().copied().collect(),
        key_ids: state.key_ids.iter().map(String::as_str).collect(),
        cas: cas.iter().map(PublicKey::key_data).collect(),
        keys: keys.iter().map(PublicKey::key_data).collect(),
    };
    Ok(krl::encode(&revoked, state.version, at, &format!("sshca {environment} revocations")))
}

/// Makes the published KRL the one the revocation log makes: replaced (compare-and-swap) whenever
/// it differs, whatever version it claims, so a planted KRL is undone by the next revocation.
/// The published KRL is read before the log: whatever it holds came from records written before
/// it, which the log read after it includes, so a slower revoker never replaces a fuller list
/// with its older view. Returns the log it published.
async fn publish_krl(issuer: &Issuer, environment: &str) -> Result<Log, IssueError> {
    let store = issuer.store().as_ref();
    let key = krl_key(environment);
    for _ in 0..MAX_ATTEMPTS {
        let (condition, published) = match store.get(&key).await? {
            Some(object) => (Condition::IfMatch(object.etag), Some(object.body)),
            None => (Condition::IfAbsent, None),
        };
        let log = read_log(issuer.audit_store().as_ref(), environment).await?;
        // Encoded at the published KRL's own time, an unchanged list is byte for byte the same.
        if let Some(published) = &published {
            if let Ok(summary) = krl::summarize(published) {
                if &encode_krl(issuer, environment, &log.state, summary.generated_at).await? == published {
                    return Ok(log);
                }
            }
        }
        match store.put(&key, encode_krl(issuer, environment, &log.state, unix_now()).await?, condition).await {
            Ok(_) => return Ok(log),
            Err(StoreError::PreconditionFailed) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(IssueError::Unavailable(format!("could not publish {key}: too many concurrent writers")))
}

/// The environment's current KRL (an empty one when nothing was ever revoked).
pub async fn current_krl(issuer: &Issuer, environment: &str) -> Result<Vec<u8>, IssueError> {
    request::check_environment(environment)?;
    match issuer.store().get(&krl_key(environment)).await? {
        Some(object) => Ok(object.body),
        None => encode_krl(issuer, environment, &RevocationState::default(), unix_now()).await,
    }
}

/// Every revocation record of the environment, oldest first.
pub async fn records(audit: &dyn Store, environment: &str) -> Result<Vec<RevocationRecord>, IssueError> {
    let mut records = Vec::new();
    for key in audit.list(&format!("audit/{environment}/revocations/")).await? {
        if let Some(object) = audit.get(&key).await? {
            if let Ok(record) = serde_json::from_slice(&object.body) {
                records.push(record);
            }
        }
    }
    Ok(records)
}
