//! The environment's serial counter: one small object in the bucket, advanced with conditional
//! writes so that concurrent signers (many Lambda containers) never hand out the same serial.
//!
//! A signer does not take serials one at a time: it leases a block with one conditional write and
//! hands out the block's serials in increasing order, so the counter costs one round trip per
//! block, not per certificate. Every lease is recorded in the audit trail before its first serial
//! is used; serials of a lease that no `issued` or `void` record names were never handed out (the
//! container ended first), which is how the audit trail accounts for the gaps.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::store::{put_once, Condition, Store};

#[derive(Debug, Serialize, Deserialize)]
struct Counter {
    /// The next serial to hand out. Serial 0 is never used: OpenSSH's KRL cannot revoke it.
    next: u64,
}

/// The audit record of one lease: serials `first..=last` belong to `holder`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub environment: String,
    pub first: u64,
    pub last: u64,
    /// The signer (one Lambda container or CLI process) that leased the block.
    pub holder: String,
    /// The request that needed the block.
    pub request_id: String,
    /// RFC 3339, UTC.
    pub leased_at: String,
}

const MAX_ATTEMPTS: u32 = 200;
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Takes `count` serials of `environment`: read the counter, then write `next + count` only if
/// nobody wrote in between (`If-Match` on its entity tag, or `If-None-Match: *` for the first). A
/// lost race is retried after a jittered, growing pause.
///
/// A missing counter starts at 1 only in an environment that never leased a serial: otherwise it
/// is rebuilt above the highest lease in the audit trail (`audit`), so that a deleted counter
/// never hands out a serial twice.
pub async fn lease(store: &dyn Store, audit: &dyn Store, environment: &str, count: u64) -> Result<Range<u64>, IssueError> {
    let key = layout::serial_counter(environment);
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..MAX_ATTEMPTS {
        let (first, condition) = match read_counter(store, &key).await? {
            None => (first_after_leases(audit, environment, &key).await?, Condition::IfAbsent),
            Some((next, etag)) => (next, Condition::IfMatch(etag)),
        };
        let next = first.checked_add(count).ok_or_else(|| {
            IssueError::Configuration(format!("the serial counter {key} is exhausted"))
        })?;
        let body = serde_json::to_vec(&Counter { next }).expect("a counter serializes");
        match store.put(&key, body, condition).await {
            Ok(_) => return Ok(first..next),
            Err(StoreError::PreconditionFailed) => {
                let pause = rand::thread_rng().gen_range(Duration::ZERO..=backoff);
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => return Err(err.into()),
        }
    }
    Err(IssueError::Unavailable(format!(
        "could not take a serial from {key} after {MAX_ATTEMPTS} attempts (too many concurrent signers): try again"
    )))
}

/// The most serials one lease may plausibly hold: signers lease at most 64 at a time.
const MAX_LEASE: u64 = 1 << 20;

/// A lease record as its name and body agree on it; `None` for anything else there (planted or
/// damaged records, which must not steer the counter).
pub(crate) fn genuine_lease(environment: &str, key: &str, body: &[u8]) -> Option<LeaseRecord> {
    let named_first = key.strip_prefix(&layout::serial_leases(environment))?.strip_suffix(".json")?.parse::<u64>().ok()?;
    let record: LeaseRecord = serde_json::from_slice(body).ok()?;
    let plausible = record.environment == environment
        && record.first == named_first
        && record.first >= 1
        && record.last >= record.first
        && record.last - record.first < MAX_LEASE;
    plausible.then_some(record)
}

/// Where a missing counter resumes: after the highest serial a genuine lease record of the audit
/// trail names, or 1 when there is none. Records that are not genuine are skipped (and logged).
async fn first_after_leases(audit: &dyn Store, environment: &str, counter: &str) -> Result<u64, IssueError> {
    let mut highest = None;
    for key in audit.list(&layout::serial_leases(environment)).await? {
        let Some(object) = audit.get(&key).await? else { continue };
        match genuine_lease(environment, &key, &object.body) {
            Some(record) => highest = highest.max(Some(record.last)),
            None => tracing::warn!(record = %key, "not a lease record of this environment: ignored"),
        }
    }
    let Some(highest) = highest else { return Ok(1) };
    tracing::warn!(counter, resumed_at = highest + 1, "the serial counter was missing: rebuilt above the highest lease");
    highest.checked_add(1).ok_or_else(|| IssueError::Configuration(format!("the serial counter {counter} is exhausted")))
}

/// A genuine lease of `environment` that already holds a serial of `first..=last`: the counter
/// was lowered (or restored too low), and handing these out again would reuse serials. Genuine
/// leases never overlap, so only those starting inside the range and the one just before it can:
/// one LIST of names and a GET or two.
async fn overlapping_lease(audit: &dyn Store, environment: &str, first: u64, last: u64) -> Result<Option<String>, IssueError> {
    let prefix = layout::serial_leases(environment);
    let mut names: Vec<(u64, String)> = audit
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|key| Some((key.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok()?, key)))
        .collect();
    names.sort();
    let inside = names.iter().filter(|(start, _)| (first..=last).contains(start));
    let before = names.iter().rev().find(|(start, _)| *start < first);
    for (_, key) in inside.chain(before) {
        let Some(object) = audit.get(key).await? else { continue };
        if let Some(record) = genuine_lease(environment, key, &object.body) {
            if record.first <= last && first <= record.last {
                return Ok(Some(key.clone()));
            }
        }
    }
    Ok(None)
}

/// The counter's next serial and entity tag, `None` before the first lease.
async fn read_counter(store: &dyn Store, key: &str) -> Result<Option<(u64, String)>, IssueError> {
    let Some(object) = store.get(key).await? else { return Ok(None) };
    let counter: Counter = serde_json::from_slice(&object.body).map_err(|err| {
        IssueError::Configuration(format!(
            "the serial counter {key} is corrupt ({err}): restore it from the bucket's versions, never lower it"
        ))
    })?;
    if counter.next == 0 {
        return Err(IssueError::Configuration(format!(
            "the serial counter {key} says 0, which no KRL can revoke: restore it from the bucket's versions, never lower it"
        )));
    }
    Ok(Some((counter.next, object.etag)))
}

/// Serials below this were handed out in `environment` (1 when none was).
pub async fn issued_below(store: &dyn Store, environment: &str) -> Result<u64, IssueError> {
    Ok(read_counter(store, &layout::serial_counter(environment)).await?.map_or(1, |(next, _)| next))
}

/// One signer's leases, per environment. Share it between the requests of a process.
pub struct SerialLeases {
    block: u64,
    holder: String,
    leases: Mutex<HashMap<String, Lease>>,
}

struct Lease {
    serials: Range<u64>,
    /// The lease's audit record until it is durable (no serial is handed out before); kept
    /// byte for byte, so that a retry after a lost answer writes the very same record.
    unrecorded: Option<Vec<u8>>,
}

impl SerialLeases {
    /// Leases `block` serials at a time (at least 1). `holder` names this signer in lease records.
    pub fn new(block: u64, holder: impl Into<String>) -> Self {
        Self { block: block.max(1), holder: holder.into(), leases: Mutex::new(HashMap::new()) }
    }

    /// The next serial of `environment`, leasing (and recording) a new block when this signer's
    /// lease is used up. Concurrent callers wait for one lease rather than each taking one.
    pub async fn next(&self, store: &dyn Store, audit: &dyn Store, environment: &str, request_id: &str) -> Result<u64, IssueError> {
        let mut leases = self.leases.lock().await;
        if leases.get(environment).is_none_or(|lease| lease.serials.is_empty()) {
            let serials = lease(store, audit, environment, self.block).await?;
            let record = LeaseRecord {
                environment: environment.to_owned(),
                first: serials.start,
                last: serials.end - 1,
                holder: self.holder.clone(),
                request_id: request_id.to_owned(),
                leased_at: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC times format"),
            };
            let body = serde_json::to_vec_pretty(&record).expect("a lease record serializes");
            leases.insert(environment.to_owned(), Lease { serials, unrecorded: Some(body) });
        }
        let lease = leases.get_mut(environment).expect("leased above");
        if let Some(body) = &lease.unrecorded {
            let (first, last) = (lease.serials.start, lease.serials.end - 1);
            if let Some(earlier) = overlapping_lease(audit, environment, first, last).await? {
                leases.remove(environment);
                return Err(IssueError::Configuration(format!(
                    "serials {first}..={last} were leased before ({earlier}): the serial counter {} was lowered, and reusing them would give two certificates one serial; restore it from the bucket's object versions (its next must be above every lease)",
                    layout::serial_counter(environment)
                )));
            }
            match put_once(audit, &layout::serial_lease(environment, first), body.clone()).await {
                Ok(()) => lease.unrecorded = None,
                // Someone else's record under this lease's name: its serials cannot be accounted
                // for as ours, so none is used; the next request leases a new block.
                Err(err @ StoreError::Taken { .. }) => {
                    leases.remove(environment);
                    return Err(IssueError::Unavailable(format!("serials {first}..={last} are not used: {err}")));
                }
                // A failed record keeps the lease unrecorded and unused: the next request retries it.
                Err(err) => {
                    return Err(IssueError::Unavailable(format!(
                        "the lease of serials {first}..={last} could not be recorded in the audit trail, so none is used: {err}"
                    )))
                }
            }
        }
        Ok(lease.serials.next().expect("a fresh or non-empty lease"))
    }
}

/// The lease records of `environment`, oldest first.
pub async fn lease_records(audit: &dyn Store, environment: &str) -> Result<Vec<LeaseRecord>, IssueError> {
    let mut records = Vec::new();
    for key in audit.list(&layout::serial_leases(environment)).await? {
        if let Some(object) = audit.get(&key).await? {
            let record = serde_json::from_slice(&object.body)
                .map_err(|err| IssueError::Configuration(format!("the lease record {key} is corrupt ({err})")))?;
            records.push(record);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_signers_get_unique_serials_and_every_lease_is_recorded() {
        let store = Arc::new(MemoryStore::default());
        // four signers (containers), each with two concurrent requests in flight
        let signers: Vec<_> = (0..4).map(|n| Arc::new(SerialLeases::new(7, format!("signer-{n}")))).collect();
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let (store, signer) = (store.clone(), signers[task % 4].clone());
                tokio::spawn(async move {
                    let mut serials = Vec::new();
                    for _ in 0..20 {
                        serials.push(signer.next(store.as_ref(), store.as_ref(), "staging", "req").await.unwrap());
                    }
                    serials
                })
            })
            .collect();
        let mut handed_out = BTreeSet::new();
        for task in tasks {
            let serials = task.await.unwrap();
            for serial in serials {
                assert!(handed_out.insert(serial), "serial {serial} handed out twice");
            }
        }
        assert_eq!(handed_out.len(), 160);
        let records = lease_records(store.as_ref(), "staging").await.unwrap();
        let leased: BTreeSet<u64> = records.iter().flat_map(|r| r.first..=r.last).collect();
        assert!(handed_out.is_subset(&leased), "a serial was handed out outside any recorded lease");
        assert_eq!(leased.len() as u64, 7 * records.len() as u64, "leases overlap");
        assert_eq!(issued_below(store.as_ref(), "staging").await.unwrap(), 1 + leased.len() as u64);
    }

    #[tokio::test]
    async fn a_lease_whose_record_fails_is_not_used_until_recorded() {
        let store = MemoryStore::default();
        let audit = MemoryStore::default();
        audit.fail_writes(true);
        let signer = SerialLeases::new(10, "signer");
        let err = signer.next(&store, &audit, "staging", "req").await.unwrap_err();
        assert!(err.to_string().contains("could not be recorded"), "{err}");
        audit.fail_writes(false);
        assert_eq!(signer.next(&store, &audit, "staging", "req").await.unwrap(), 1);
        assert_eq!(lease_records(&audit, "staging").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_counter_resumes_above_the_highest_lease() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        let signer = SerialLeases::new(10, "first");
        assert_eq!(signer.next(&store, &audit, "staging", "req").await.unwrap(), 1);
        store.delete(&layout::serial_counter("staging"));
        let later = SerialLeases::new(10, "later");
        assert_eq!(later.next(&store, &audit, "staging", "req").await.unwrap(), 11, "serials 1..=10 were leased already");
    }

    #[tokio::test]
    async fn a_planted_lease_record_is_not_taken_for_ours() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        audit.put(&layout::serial_lease("staging", 11), b"{}".to_vec(), Condition::IfAbsent).await.unwrap();
        let signer = SerialLeases::new(10, "second");
        let err = signer.next(&store, &audit, "staging", "req").await.unwrap_err();
        assert!(err.to_string().contains("serials 11..=20 are not used"), "{err}");
        assert_eq!(signer.next(&store, &audit, "staging", "req").await.unwrap(), 21, "the next block is leased and used");
        // with the counter gone too, planted records do not steer it: it resumes above the genuine leases
        store.delete(&layout::serial_counter("staging"));
        audit.put(&layout::serial_lease("staging", 99_999), b"{}".to_vec(), Condition::IfAbsent).await.unwrap();
        assert_eq!(SerialLeases::new(10, "third").next(&store, &audit, "staging", "req").await.unwrap(), 31);
    }

    #[tokio::test]
    async fn a_lowered_counter_is_refused_not_reused() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        store.put(&layout::serial_counter("staging"), br#"{"next": 5}"#.to_vec(), Condition::Always).await.unwrap();
        let err = SerialLeases::new(10, "second").next(&store, &audit, "staging", "req").await.unwrap_err();
        assert!(err.to_string().contains("were leased before"), "{err}");
        store.put(&layout::serial_counter("staging"), br#"{"next": 0}"#.to_vec(), Condition::Always).await.unwrap();
        assert!(SerialLeases::new(10, "third").next(&store, &audit, "staging", "req").await.unwrap_err().to_string().contains("says 0"));
    }
}
