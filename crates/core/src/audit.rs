//! Audit records: one write-once JSON object per event, under a date prefix.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::store::{put_once, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A certificate was signed and handed out.
    Issued,
    /// A serial was taken but no certificate was handed out under it.
    Void,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Issued => "issued",
            Event::Void => "void",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub event: Event,
    pub environment: String,
    pub serial: u64,
    pub key_id: String,
    pub username: String,
    /// A free-text label from the request: who it says asked. Not proof of anything.
    pub requested_by: Option<String>,
    /// The caller's AWS identity (ARN) as STS answered it for the request's proof; `None` when
    /// the environment allowed an unproven request.
    pub caller_identity: Option<String>,
    /// STS's user id of the caller (`AIDA…`, `AROA…:session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user_id: Option<String>,
    /// The directory groups the caller was in, where its access rule maps groups to principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Whether the caller proved its identity.
    #[serde(default)]
    pub proven: bool,
    /// What the access rules granted: `admin`, `user`, `host`, or `unproven`.
    #[serde(default)]
    pub access: String,
    pub reason: String,
    pub principals: Vec<String>,
    pub cert_type: String,
    pub valid_after: u64,
    pub valid_before: u64,
    pub public_key_fingerprint: String,
    pub ca_fingerprint: String,
    pub request_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// The certificate itself, so the record stands alone even if the certificate object is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Why the serial is void.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The approved access request this certificate was claimed for, and its approvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_request: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Issued under a break-glass rule on the requester's own say-so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
}

/// Writes the record once: a record already there counts as written only when it is this very
/// record (an earlier attempt whose answer was lost). A void record whose name is taken by
/// something else is written under a name of its own (`<serial>-void-<id>.json`), so that the
/// serial's voiding is on record whatever was planted.
pub async fn record(store: &dyn Store, entry: &AuditEntry, at: OffsetDateTime) -> Result<String, IssueError> {
    let date = (at.year(), u8::from(at.month()), at.day());
    let key = layout::audit_entry(&entry.environment, date, entry.serial, entry.event.as_str());
    let body = serde_json::to_vec_pretty(entry).expect("an audit entry serializes");
    let written = match put_once(store, &key, body.clone()).await {
        Err(StoreError::Taken { key: taken }) if entry.event == Event::Void => {
            let own = layout::audit_entry(&entry.environment, date, entry.serial, &format!("void-{}", uuid::Uuid::new_v4().simple()));
            tracing::error!(taken = %taken, written = %own, "the void record's name was taken by another object: written under its own name");
            put_once(store, &own, body).await.map(|_| own)
        }
        other => other.map(|_| key),
    };
    written.map_err(|err| IssueError::Unavailable(format!("the audit record could not be written, so no certificate is handed out: {err}")))
}

/// Every issuance record (`issued` and `void`) of `environment`, whatever its day; records that
/// cannot be read are left out.
pub async fn all_entries(store: &dyn Store, environment: &str) -> Result<Vec<AuditEntry>, IssueError> {
    let mut entries = Vec::new();
    for key in store.list(&layout::audit_trail(environment)).await? {
        if !layout::is_dated_record(environment, &key) || !(key.ends_with("-issued.json") || key.contains("-void")) {
            continue;
        }
        entries.extend(read_entry(store, &key).await?);
    }
    Ok(entries)
}

/// The record at `key`, or `None` when it is gone, cannot be fetched (archived, foreign
/// encryption) or is not an audit record: readers of the trail skip those, `sshca verify` names them.
async fn read_entry(store: &dyn Store, key: &str) -> Result<Option<AuditEntry>, IssueError> {
    match store.get(key).await {
        Ok(object) => Ok(object.and_then(|object| serde_json::from_slice(&object.body).ok())),
        Err(err) if err.is_unreadable_object() => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The issuance records (`issued` and `void`) of `environment` from the day of `since` (Unix
/// seconds) to today, oldest first: only those days' prefixes are listed.
pub async fn entries_since(store: &dyn Store, environment: &str, since: u64) -> Result<Vec<AuditEntry>, IssueError> {
    let until = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    entries_between(store, environment, since, until).await
}

/// The issuance records between two Unix times (by day prefix, then by timestamp), oldest first.
pub async fn entries_between(store: &dyn Store, environment: &str, since: u64, until: u64) -> Result<Vec<AuditEntry>, IssueError> {
    let day =
        |unix: u64| OffsetDateTime::from_unix_timestamp(unix.min(253_402_300_799) as i64).map(|t| t.date()).unwrap_or(time::Date::MIN);
    let (mut date, last) = (day(since), day(until));
    let mut entries = Vec::new();
    while date <= last {
        for key in store.list(&layout::audit_day(environment, (date.year(), u8::from(date.month()), date.day()))).await? {
            entries.extend(read_entry(store, &key).await?);
        }
        match date.next_day() {
            Some(next) => date = next,
            None => break,
        }
    }
    Ok(entries)
}
