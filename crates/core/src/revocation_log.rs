//! The revocation log: each revocation a write-once record (`audit/<env>/revocations/<version>.json`),
//! read back into the state they all build, and the revoked keys issuance refuses. Readers only:
//! [`crate::revoke`] writes the records and publishes the KRL.

use std::collections::BTreeSet;

use rand::Rng;
use serde::{Deserialize, Serialize};
use ssh_key::public::KeyData;
use ssh_key::PublicKey;

use crate::error::IssueError;
use crate::krl;
use crate::layout;
use crate::store::{read_all, Store};

/// What every readable revocation record together revokes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevocationState {
    pub version: u64,
    pub serials: BTreeSet<u64>,
    pub key_ids: BTreeSet<String>,
    /// Public keys as OpenSSH lines without comment.
    pub keys: BTreeSet<String>,
}

impl RevocationState {
    pub(crate) fn apply(&mut self, record: &RevocationRecord) {
        self.serials.extend(&record.serials);
        self.key_ids.extend(record.key_ids.iter().cloned());
        self.keys.extend(record.keys.iter().cloned());
    }
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

/// What the revocation log says: the state every readable record builds, those records, the
/// next free version, and the records that could not be read (by key).
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub state: RevocationState,
    pub records: Vec<RevocationRecord>,
    /// The versions some object is named after, readable or not.
    taken: BTreeSet<u64>,
    pub unreadable: Vec<String>,
}

/// Reads every revocation record of `environment`, oldest first. A record counts when it can be
/// fetched, parses, and names its own version and environment; anything else is named in
/// `unreadable`. A name planted far ahead (even `u64::MAX`, readable or not) blocks nothing: see
/// [`Log::next_version`].
pub async fn read_log(audit: &dyn Store, environment: &str) -> Result<Log, IssueError> {
    let mut log = Log::default();
    let mut taken = BTreeSet::new();
    for (key, body) in read_all(audit, &layout::revocations(environment)).await? {
        let version = layout::revocation_version(environment, &key);
        taken.extend(version);
        let record = body
            .ok()
            .and_then(|body| serde_json::from_slice::<RevocationRecord>(&body).ok())
            .filter(|record| Some(record.version) == version && record.environment == environment);
        match record {
            Some(record) => {
                log.state.apply(&record);
                log.records.push(record);
            }
            None => log.unreadable.push(key),
        }
    }
    log.state.version = log.records.iter().map(|record| record.version).max().unwrap_or(0);
    log.taken = taken;
    Ok(log)
}

impl Log {
    /// The version the next revocation takes: the first above the readable records that no
    /// object is named after (nor `hidden`: names whose record a delete marker hides, which must
    /// not be written again), or else the lowest such one.
    pub fn next_version(&self, hidden: &BTreeSet<u64>) -> u64 {
        let free = |from: u64| (from..=u64::MAX).find(|version| !self.is_taken(*version, hidden));
        free(self.state.version.saturating_add(1)).or_else(|| free(1)).unwrap_or(u64::MAX)
    }

    /// A free version nobody can guess: where the next version was taken by a race, it may be
    /// someone planting at each next version as fast as it frees up.
    pub fn unpredictable_version(&self, hidden: &BTreeSet<u64>) -> u64 {
        loop {
            let version = rand::thread_rng().gen_range(1..u64::MAX);
            if !self.is_taken(version, hidden) {
                return version;
            }
        }
    }

    fn is_taken(&self, version: u64, hidden: &BTreeSet<u64>) -> bool {
        self.taken.contains(&version) || hidden.contains(&version)
    }
}

/// A public key as an OpenSSH line without comment: how revoked keys are kept and compared.
pub fn bare_key_line(key: &KeyData) -> Result<String, IssueError> {
    PublicKey::new(key.clone(), "").to_openssh().map_err(|err| IssueError::InvalidPublicKey(err.to_string()))
}

/// The public keys revoked outright in `environment` (bare OpenSSH lines), for issuance to
/// refuse. Read from the published KRL: one object, whatever the log holds. Where none is
/// published yet, from the log, if it is small.
pub async fn revoked_keys(store: &dyn Store, audit: &dyn Store, environment: &str) -> Result<BTreeSet<String>, IssueError> {
    let key = layout::krl(environment);
    let Some(published) = store.get(&key).await? else {
        let records = audit.list_after(&layout::revocations(environment), "", MAX_UNPUBLISHED + 1).await?;
        if records.len() > MAX_UNPUBLISHED {
            return Err(IssueError::Unavailable(format!(
                "environment {environment:?} has revocation records but no published KRL ({key}): publish it with `sshca krl {environment} --publish`"
            )));
        }
        return Ok(read_log(audit, environment).await?.state.keys);
    };
    let contents = krl::decode(&published.body).map_err(|why| {
        IssueError::Unavailable(format!(
            "the published KRL {key} cannot be read ({why}): publish it again with `sshca krl {environment} --publish`"
        ))
    })?;
    Ok(contents.revoked_keys().filter_map(|key| bare_key_line(&key).ok()).collect())
}

/// The most revocation records issuance reads itself where no KRL is published yet.
const MAX_UNPUBLISHED: usize = 64;

/// Every revocation record of the environment that counts (see [`read_log`]), oldest first.
pub async fn records(audit: &dyn Store, environment: &str) -> Result<Vec<RevocationRecord>, IssueError> {
    Ok(read_log(audit, environment).await?.records)
}
