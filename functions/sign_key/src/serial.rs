//! The environment's serial counter: one small object in the bucket, advanced with conditional
//! writes so that concurrent signers (many Lambda containers) never hand out the same serial.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::store::{Condition, Store};

#[derive(Debug, Serialize, Deserialize)]
struct Counter {
    /// The next serial to hand out. Serial 0 is never used: OpenSSH's KRL cannot revoke it.
    next: u64,
}

const MAX_ATTEMPTS: u32 = 200;
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Takes the next serial of `environment`: read the counter, then write `next + 1` only if nobody
/// wrote in between (`If-Match` on its entity tag, or `If-None-Match: *` for the first). A lost
/// race is retried after a jittered, growing pause.
pub async fn allocate(store: &dyn Store, environment: &str) -> Result<u64, IssueError> {
    let key = layout::serial_counter(environment);
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..MAX_ATTEMPTS {
        let (serial, condition) = match store.get(&key).await? {
            None => (1, Condition::IfAbsent),
            Some(object) => {
                let counter: Counter = serde_json::from_slice(&object.body).map_err(|err| {
                    IssueError::Configuration(format!(
                        "the serial counter {key} is corrupt ({err}): restore it from the bucket's versions, never lower it"
                    ))
                })?;
                (counter.next, Condition::IfMatch(object.etag))
            }
        };
        let next = serial.checked_add(1).ok_or_else(|| {
            IssueError::Configuration(format!("the serial counter {key} is exhausted"))
        })?;
        let body = serde_json::to_vec(&Counter { next }).expect("a counter serializes");
        match store.put(&key, body, condition).await {
            Ok(_) => return Ok(serial),
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

/// Serials below this were handed out in `environment` (1 when none was).
pub async fn issued_below(store: &dyn Store, environment: &str) -> Result<u64, IssueError> {
    let key = layout::serial_counter(environment);
    match store.get(&key).await? {
        None => Ok(1),
        Some(object) => serde_json::from_slice::<Counter>(&object.body)
            .map(|counter| counter.next)
            .map_err(|err| IssueError::Configuration(format!("the serial counter {key} is corrupt ({err})"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_allocations_are_unique_and_dense() {
        let store = Arc::new(MemoryStore::default());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut serials = Vec::new();
                    for _ in 0..20 {
                        serials.push(allocate(store.as_ref(), "staging").await.unwrap());
                    }
                    serials
                })
            })
            .collect();
        let mut all = BTreeSet::new();
        for task in tasks {
            for serial in task.await.unwrap() {
                assert!(all.insert(serial), "serial {serial} handed out twice");
            }
        }
        assert_eq!(all, (1..=160).collect());
    }
}
