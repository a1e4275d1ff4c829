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

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::store::{put_once, read_all, retry_on_conflict, Condition, Store};

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

/// Takes `count` serials of `environment`, none below `at_least`: read the counter, then write
/// `first + count` only if nobody wrote in between (`If-Match` on its entity tag, or
/// `If-None-Match: *` for the first). A lost race is retried after a jittered, growing pause.
///
/// A missing counter starts at 1 only in an environment that never leased a serial: otherwise it
/// is rebuilt above the highest lease in the audit trail (`audit`), so that a deleted counter
/// never hands out a serial twice.
async fn lease(store: &dyn Store, audit: &dyn Store, environment: &str, count: u64, at_least: u64) -> Result<Range<u64>, IssueError> {
    let key = layout::serial_counter(environment);
    let leased = retry_on_conflict::<_, IssueError, _, _>(MAX_ATTEMPTS, |_| async {
        let (next, condition) = match read_counter(store, &key).await? {
            None => (first_after_leases(audit, environment, &key).await?, Condition::IfAbsent),
            Some((next, etag)) => (next, Condition::IfMatch(etag)),
        };
        let first = next.max(at_least);
        let end = first.checked_add(count).ok_or_else(|| IssueError::Configuration(format!("the serial counter {key} is exhausted")))?;
        let body = serde_json::to_vec(&Counter { next: end }).expect("a counter serializes");
        match store.put(&key, body, condition).await {
            Ok(_) => Ok(Some(first..end)),
            Err(StoreError::PreconditionFailed) => Ok(None),
            Err(err) => Err(err.into()),
        }
    })
    .await?;
    leased.ok_or_else(|| {
        IssueError::Unavailable(format!(
            "could not take a serial from {key} after {MAX_ATTEMPTS} attempts (too many concurrent signers): try again"
        ))
    })
}

/// The most serials one lease holds: no signer leases more at a time, so a genuine lease that
/// overlaps `first..=last` starts within `first - MAX_LEASE + 1 ..= last`.
pub const MAX_LEASE: u64 = 64;

/// A lease record as its name and body agree on it; `None` for anything else there (planted or
/// damaged records, which must not steer the counter).
pub(crate) fn genuine_lease(environment: &str, key: &str, body: &[u8]) -> Option<LeaseRecord> {
    let record: LeaseRecord = serde_json::from_slice(body).ok()?;
    let plausible = record.environment == environment
        && key == layout::serial_lease(environment, record.first)
        && record.first >= 1
        && record.last >= record.first
        && record.last - record.first < MAX_LEASE;
    plausible.then_some(record)
}

/// Where a missing counter resumes: after the highest serial a genuine lease record of the audit
/// trail names, or 1 when there is none. Records that are not genuine are skipped (and logged).
async fn first_after_leases(audit: &dyn Store, environment: &str, counter: &str) -> Result<u64, IssueError> {
    let (leases, not_leases) = lease_records(audit, environment).await?;
    for key in not_leases {
        tracing::warn!(record = %key, "not a lease record of this environment: ignored");
    }
    let Some(highest) = leases.iter().map(|lease| lease.last).max() else { return Ok(1) };
    tracing::warn!(counter, resumed_at = highest + 1, "the serial counter was missing: rebuilt above the highest lease");
    highest.checked_add(1).ok_or_else(|| IssueError::Configuration(format!("the serial counter {counter} is exhausted")))
}

/// Of the genuine leases of `environment` other than `own` that hold a serial of
/// `first..=last`, the one that reaches highest: the counter was lowered (or restored too low), or
/// another signer leased the same serials at the same time, and handing these serials out could
/// reuse one. Every name that could hold such a lease (`first - MAX_LEASE + 1 ..= last`) is looked
/// at: one LIST of the names between them, or, where other objects flood that range, a GET of
/// each of those names. Never more than one LIST and `last - first + MAX_LEASE` GETs.
async fn overlapping_lease(
    audit: &dyn Store,
    environment: &str,
    first: u64,
    last: u64,
    own: &str,
) -> Result<Option<LeaseRecord>, IssueError> {
    let prefix = layout::serial_leases(environment);
    let lowest = first.saturating_sub(MAX_LEASE - 1).max(1);
    // names are zero-padded, so they sort as their numbers do
    let end = layout::serial_lease(environment, last);
    let page = audit.list_after(&prefix, &layout::serial_lease(environment, lowest - 1), LIST_PAGE).await?;
    let whole_range = page.len() < LIST_PAGE || page.last().is_some_and(|key| *key > end);
    let candidates: Vec<String> = match whole_range {
        true => page.into_iter().filter(|key| *key <= end).collect(),
        false => (lowest..=last).map(|start| layout::serial_lease(environment, start)).collect(),
    };
    let mut reaching: Option<LeaseRecord> = None;
    for key in candidates.iter().filter(|key| key.as_str() != own) {
        let body = match audit.get(key).await {
            Ok(Some(object)) => object.body,
            Ok(None) => continue,
            Err(err) if err.is_unreadable_object() => continue,
            Err(err) => return Err(err.into()),
        };
        if let Some(record) = genuine_lease(environment, key, &body) {
            if record.first <= last && first <= record.last && reaching.as_ref().is_none_or(|r| record.last > r.last) {
                reaching = Some(record);
            }
        }
    }
    Ok(reaching)
}

/// Keys asked for per LIST request (S3's own page size).
const LIST_PAGE: usize = 1000;

/// How many blocks in a row one request may find taken before it gives up.
const MAX_SKIPS: u32 = 16;

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
    /// Whether no other lease was seen to hold any of its serials (none is handed out before).
    checked: bool,
}

impl SerialLeases {
    /// Leases `block` serials at a time (at least 1, at most [`MAX_LEASE`]). `holder` names this
    /// signer in lease records.
    pub fn new(block: u64, holder: impl Into<String>) -> Self {
        Self { block: block.clamp(1, MAX_LEASE), holder: holder.into(), leases: Mutex::new(HashMap::new()) }
    }

    /// The next serial of `environment`, leasing (and recording) a new block when this signer's
    /// lease is used up. Concurrent callers wait for one lease rather than each taking one.
    ///
    /// A block is used only once its record is durable under its own name and no other genuine
    /// lease holds any of its serials. A block that another record claims (a lowered counter, or
    /// something planted) is given up, never used: its serials were handed out by nobody here,
    /// and the next block is leased above what claims it.
    pub async fn next(&self, store: &dyn Store, audit: &dyn Store, environment: &str, request_id: &str) -> Result<u64, IssueError> {
        let mut leases = self.leases.lock().await;
        let mut at_least = 1;
        for _ in 0..MAX_SKIPS {
            let mut lease = match leases.remove(environment) {
                Some(lease) if !lease.serials.is_empty() => lease,
                _ => {
                    let serials = lease(store, audit, environment, self.block, at_least).await?;
                    let record = LeaseRecord {
                        environment: environment.to_owned(),
                        first: serials.start,
                        last: serials.end - 1,
                        holder: self.holder.clone(),
                        request_id: request_id.to_owned(),
                        leased_at: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC times format"),
                    };
                    let body = serde_json::to_vec_pretty(&record).expect("a lease record serializes");
                    Lease { serials, unrecorded: Some(body), checked: false }
                }
            };
            let (first, last) = (lease.serials.start, lease.serials.end - 1);
            let name = layout::serial_lease(environment, first);
            if let Some(body) = lease.unrecorded.clone() {
                match put_once(audit, &name, body).await {
                    Ok(()) => lease.unrecorded = None,
                    // Someone else's record under this lease's name: its serials cannot be
                    // accounted for as ours, so none is used; the next block is leased instead.
                    Err(err @ StoreError::Taken { .. }) => {
                        tracing::error!(first, last, error = %err, "the lease record's name is taken: its serials are not used");
                        continue;
                    }
                    // A failed record keeps the lease unrecorded and unused: the next request retries it.
                    Err(err) => {
                        leases.insert(environment.to_owned(), lease);
                        return Err(IssueError::Unavailable(format!(
                            "the lease of serials {first}..={last} could not be recorded in the audit trail, so none is used: {err}"
                        )));
                    }
                }
            }
            // Checked once the record is durable: of two signers that leased the same serials
            // (a counter lowered between them), the later check sees the other's record.
            if !lease.checked {
                let earlier = match overlapping_lease(audit, environment, first, last, &name).await {
                    Ok(earlier) => earlier,
                    Err(err) => {
                        leases.insert(environment.to_owned(), lease);
                        return Err(err);
                    }
                };
                if let Some(earlier) = earlier {
                    tracing::error!(
                        first, last, earlier_first = earlier.first, earlier_last = earlier.last,
                        "serials leased from the counter are held by another lease record (the counter was lowered, or a record planted): given up"
                    );
                    at_least = earlier
                        .last
                        .checked_add(1)
                        .ok_or_else(|| IssueError::Configuration(format!("the serial counter of {environment} is exhausted")))?;
                    continue;
                }
                lease.checked = true;
            }
            let serial = lease.serials.next().expect("a fresh or non-empty lease");
            leases.insert(environment.to_owned(), lease);
            return Ok(serial);
        }
        Err(IssueError::Unavailable(format!(
            "{MAX_SKIPS} blocks of serials in a row are claimed by lease records this signer did not write: the serial counter {} was lowered or records were planted under {}; restore the counter from its object versions (above every lease) and run `sshca verify {environment}`",
            layout::serial_counter(environment),
            layout::serial_leases(environment)
        )))
    }
}

/// The genuine lease records of `environment`, oldest first, and the keys under its lease prefix
/// that are not one.
pub async fn lease_records(audit: &dyn Store, environment: &str) -> Result<(Vec<LeaseRecord>, Vec<String>), IssueError> {
    let (mut records, mut not_leases) = (Vec::new(), Vec::new());
    for (key, body) in read_all(audit, &layout::serial_leases(environment)).await? {
        match body.ok().and_then(|body| genuine_lease(environment, &key, &body)) {
            Some(record) => records.push(record),
            None => not_leases.push(key),
        }
    }
    records.sort_by_key(|record| record.first);
    Ok((records, not_leases))
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
        let (records, _) = lease_records(store.as_ref(), "staging").await.unwrap();
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
        assert_eq!(lease_records(&audit, "staging").await.unwrap().0.len(), 1);
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

    /// A lease record as a writer of the audit prefix could plant it: it parses, and its name and
    /// body agree.
    fn planted_lease(first: u64, last: u64) -> Vec<u8> {
        let record = LeaseRecord {
            environment: "staging".into(),
            first,
            last,
            holder: "mallory".into(),
            request_id: "planted".into(),
            leased_at: "2026-01-01T00:00:00Z".into(),
        };
        serde_json::to_vec(&record).unwrap()
    }

    #[tokio::test]
    async fn a_planted_lease_record_is_not_taken_for_ours() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        audit.put(&layout::serial_lease("staging", 11), b"{}".to_vec(), Condition::IfAbsent).await.unwrap();
        let signer = SerialLeases::new(10, "second");
        assert_eq!(signer.next(&store, &audit, "staging", "req").await.unwrap(), 21, "the taken block is given up, the next one used");
        // with the counter gone too, planted records do not steer it: it resumes above the genuine leases
        store.delete(&layout::serial_counter("staging"));
        audit.put(&layout::serial_lease("staging", 99_999), b"{}".to_vec(), Condition::IfAbsent).await.unwrap();
        assert_eq!(SerialLeases::new(10, "third").next(&store, &audit, "staging", "req").await.unwrap(), 31);
    }

    #[tokio::test]
    async fn a_planted_lease_of_a_million_serials_blocks_nothing() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        audit.put(&layout::serial_lease("staging", 11), planted_lease(11, 11 + (1 << 20)), Condition::IfAbsent).await.unwrap();
        let mut handed_out = BTreeSet::new();
        for n in 0..20 {
            let serial = SerialLeases::new(10, format!("signer-{n}")).next(&store, &audit, "staging", "req").await.unwrap();
            assert!(handed_out.insert(serial), "serial {serial} twice");
        }
        assert_eq!(handed_out.len(), 20, "every issuance got a serial");
        assert!(!handed_out.contains(&11));
    }

    #[tokio::test]
    async fn a_lowered_counter_and_a_decoy_never_reuse_a_serial() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        let first = SerialLeases::new(10, "first");
        let mut handed_out = BTreeSet::new();
        for _ in 0..30 {
            handed_out.insert(first.next(&store, &audit, "staging", "req").await.unwrap());
        }
        // the counter lowered into the leased serials, a parseable decoy just below it, and a
        // small planted lease above: none of 1..=30 is handed out again
        store.put(&layout::serial_counter("staging"), br#"{"next": 15}"#.to_vec(), Condition::Always).await.unwrap();
        audit.put(&layout::serial_lease("staging", 14), b"{}".to_vec(), Condition::IfAbsent).await.unwrap();
        audit.put(&layout::serial_lease("staging", 31), planted_lease(31, 40), Condition::IfAbsent).await.unwrap();
        let second = SerialLeases::new(10, "second");
        for _ in 0..15 {
            let serial = second.next(&store, &audit, "staging", "req").await.unwrap();
            assert!(handed_out.insert(serial), "serial {serial} handed out twice");
        }
        assert!(handed_out.iter().skip(30).all(|&serial| serial > 40), "{handed_out:?}");
        store.put(&layout::serial_counter("staging"), br#"{"next": 0}"#.to_vec(), Condition::Always).await.unwrap();
        assert!(SerialLeases::new(10, "third").next(&store, &audit, "staging", "req").await.unwrap_err().to_string().contains("says 0"));
    }

    #[tokio::test]
    async fn thousands_of_junk_lease_names_cost_a_new_lease_little() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        // junk everywhere in the lease prefix, most of it sorting among the names a new lease looks at
        for n in 0..5000u64 {
            let key = format!("{}{:020}.json{n}", layout::serial_leases("staging"), 11 + n % 40);
            audit.put(&key, b"junk".to_vec(), Condition::IfAbsent).await.unwrap();
        }
        let before = audit.gets();
        assert_eq!(SerialLeases::new(10, "second").next(&store, &audit, "staging", "req").await.unwrap(), 11);
        assert!(audit.gets() - before <= 2 * MAX_LEASE as usize, "{} GETs", audit.gets() - before);
    }

    #[tokio::test]
    async fn an_unreadable_lease_record_is_skipped() {
        let (store, audit) = (MemoryStore::default(), MemoryStore::default());
        assert_eq!(SerialLeases::new(10, "first").next(&store, &audit, "staging", "req").await.unwrap(), 1);
        audit.make_unreadable(&layout::serial_lease("staging", 1));
        assert_eq!(SerialLeases::new(10, "second").next(&store, &audit, "staging", "req").await.unwrap(), 11);
        assert_eq!(lease_records(&audit, "staging").await.unwrap().1, [layout::serial_lease("staging", 1)]);
    }
}
