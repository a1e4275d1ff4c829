//! Revocation: by serial, key id, user or public key, recorded in the audit trail and published
//! as the environment's OpenSSH KRL.
//!
//! The revocation state (`revoked/<env>.json`, with a version) is only ever advanced by
//! compare-and-swap, and every version is first written as a write-once audit record
//! (`audit/<env>/revocations/<version>.json`). The record is the log, the state its summary: a
//! revoker that finds a record for the next version not yet applied (its writer died) applies it
//! before adding its own, so concurrent revocations all land and each has exactly one record.

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

const MAX_ATTEMPTS: u32 = 50;

fn state_key(environment: &str) -> String {
    format!("revoked/{environment}.json")
}

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

pub async fn read_state(store: &dyn Store, environment: &str) -> Result<(RevocationState, Condition), IssueError> {
    match store.get(&state_key(environment)).await? {
        None => Ok((RevocationState::default(), Condition::IfAbsent)),
        Some(object) => {
            let state = serde_json::from_slice(&object.body).map_err(|err| {
                IssueError::Configuration(format!("the revocation state {} is corrupt: {err}", state_key(environment)))
            })?;
            Ok((state, Condition::IfMatch(object.etag)))
        }
    }
}

/// Revokes what `request` names and republishes the KRL.
pub async fn revoke(issuer: &Issuer, request: &RevokeRequest) -> Result<RevokeOutcome, IssueError> {
    let environment = &request.environment;
    request::check_environment(environment)?;
    if request.reason.trim().is_empty() {
        return Err(IssueError::InvalidRequest("a reason is required: say why access is revoked (-r 'laptop stolen')".into()));
    }
    request::check_reason(&request.reason)?;
    let store = issuer.store().as_ref();
    let audit = issuer.audit_store().as_ref();
    let policy = issuer.policy(environment).await?;

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
        let lookback = policy.max_ttl.max(policy.host_max_ttl) + policy.backdate_seconds;
        let entries = audit::entries_since(audit, environment, unix_now().saturating_sub(lookback)).await?;
        let now = unix_now();
        let mut found = 0;
        for entry in entries.iter().filter(|e| e.event == Event::Issued && &e.username == user && e.valid_before > now) {
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

    let mut recorded = None;
    let mut backoff = Duration::from_millis(5);
    let mut state;
    let mut attempts = 0;
    loop {
        attempts += 1;
        if attempts > MAX_ATTEMPTS {
            return Err(IssueError::Unavailable("too many concurrent revocations: try again".into()));
        }
        let (current, condition) = read_state(store, environment).await?;
        state = current;
        // A record for the next version whose writer did not get to apply it: apply it first.
        if let Some(pending) = audit.get(&record_key(environment, state.version + 1)).await? {
            let record: RevocationRecord = serde_json::from_slice(&pending.body)
                .map_err(|err| IssueError::Configuration(format!("revocation record is corrupt: {err}")))?;
            state.apply(&record);
            match store.put(&state_key(environment), serde_json::to_vec(&state).expect("serializes"), condition).await {
                Ok(_) | Err(StoreError::PreconditionFailed) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        if recorded.is_some() {
            break;
        }
        let record = RevocationRecord {
            event: "revoked".into(),
            environment: environment.clone(),
            version: state.version + 1,
            serials: wanted.serials.difference(&state.serials).copied().collect(),
            key_ids: wanted.key_ids.difference(&state.key_ids).cloned().collect(),
            keys: wanted.keys.difference(&state.keys).cloned().collect(),
            reason: request.reason.clone(),
            requested_by: request.requested_by.clone(),
            timestamp: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC formats"),
        };
        if record.serials.is_empty() && record.key_ids.is_empty() && record.keys.is_empty() {
            break;
        }
        let body = serde_json::to_vec_pretty(&record).expect("serializes");
        match audit.put(&record_key(environment, record.version), body, Condition::IfAbsent).await {
            Ok(_) => {}
            Err(StoreError::PreconditionFailed) => {
                let pause = rand::thread_rng().gen_range(Duration::ZERO..=backoff);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(Duration::from_millis(250));
                continue;
            }
            Err(err) => return Err(err.into()),
        }
        recorded = Some((record.version, record.serials.len(), record.key_ids.len(), record.keys.len()));
        state.apply(&record);
        match store.put(&state_key(environment), serde_json::to_vec(&state).expect("serializes"), condition).await {
            Ok(_) => break,
            // someone else applied our record (see above); the next round confirms it
            Err(StoreError::PreconditionFailed) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    publish_krl(issuer, environment, &state).await?;
    Ok(match recorded {
        Some((version, serials, key_ids, keys)) => RevokeOutcome::Revoked { version, serials, key_ids, keys },
        None => RevokeOutcome::AlreadyRevoked { version: state.version },
    })
}

pub(crate) fn bare_key_line(key: &KeyData) -> Result<String, IssueError> {
    PublicKey::new(key.clone(), "").to_openssh().map_err(|err| IssueError::InvalidPublicKey(err.to_string()))
}

/// The KRL for `state`: serials and key ids scoped to every CA key the environment trusts.
pub async fn encode_krl(issuer: &Issuer, environment: &str, state: &RevocationState) -> Result<Vec<u8>, IssueError> {
    let mut cas = issuer.trusted_ca_keys(environment, CertKind::User).await?;
    cas.extend(issuer.trusted_ca_keys(environment, CertKind::Host).await.unwrap_or_default());
    let keys: Vec<PublicKey> = state.keys.iter().filter_map(|line| PublicKey::from_openssh(line).ok()).collect();
    let revoked = krl::Revoked {
        serials: state.serials.iter().copied().collect(),
        key_ids: state.key_ids.iter().map(String::as_str).collect(),
        cas: cas.iter().map(PublicKey::key_data).collect(),
        keys: keys.iter().map(PublicKey::key_data).collect(),
    };
    Ok(krl::encode(&revoked, state.version, unix_now(), &format!("sshca {environment} revocations")))
}

/// Writes the KRL of `state` unless a KRL of the same or a newer version is there already
/// (compare-and-swap, so a slower revoker never replaces a newer list with an older one).
async fn publish_krl(issuer: &Issuer, environment: &str, state: &RevocationState) -> Result<(), IssueError> {
    let store = issuer.store().as_ref();
    let key = krl_key(environment);
    for _ in 0..MAX_ATTEMPTS {
        let (condition, published) = match store.get(&key).await? {
            Some(object) => (Condition::IfMatch(object.etag), krl::version_of(&object.body)),
            None => (Condition::IfAbsent, None),
        };
        if published.is_some_and(|version| version >= state.version) {
            return Ok(());
        }
        match store.put(&key, encode_krl(issuer, environment, state).await?, condition).await {
            Ok(_) => return Ok(()),
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
        None => encode_krl(issuer, environment, &RevocationState::default()).await,
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
