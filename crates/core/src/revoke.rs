//! Revocation: by serial, key id, user or public key, recorded in the audit trail and published
//! as the environment's OpenSSH KRL.
//!
//! The log is the truth: each revocation is a write-once record
//! (`audit/<env>/revocations/<version>.json`), and what is revoked is derived from all of them.
//! A record that cannot be read (planted garbage, an object archived or encrypted out of reach)
//! is reported with its key and skipped: it can neither block later revocations (they take the
//! lowest free version, and versions only need to be unique) nor undo earlier ones.
//! The published KRL (`krl/<env>.krl`) is replaced whenever it differs from the one the log
//! makes, whatever version number it claims, but it never shrinks: what the published KRL revokes
//! under the environment's CA keys and the log no longer records (a record deleted, hidden by a
//! delete marker or expired by a lifecycle rule) is kept, until an admin drops it explicitly.

use std::collections::BTreeSet;

use ssh_key::PublicKey;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::audit::{self, Event};
use crate::environment::Environment;
use crate::error::{IssueError, StoreError};
use crate::krl;
use crate::layout;
use crate::request::parse_public_key;
use crate::request::{self, CertKind};
use crate::serial;
use crate::store::{retry_on_conflict, Condition, Store};
use crate::time::unix_now;

pub use crate::revocation_log::{bare_key_line, read_log, records, revoked_keys, Log, RevocationRecord, RevocationState};

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
    /// Publish a KRL that revokes less than the published one (after a record was removed on
    /// purpose); by default what the published KRL revokes is kept.
    pub allow_shrink: bool,
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
    /// Revocations the published KRL made that the log no longer records, kept in the KRL.
    pub kept_from_published: usize,
}

const MAX_ATTEMPTS: u32 = 50;

pub use crate::layout::krl as krl_key;

/// Revokes what `request` names and republishes the KRL.
pub async fn revoke(env: &Environment, request: &RevokeRequest) -> Result<RevokeReport, IssueError> {
    let environment = &request.environment;
    request::check_environment(environment)?;
    if request.reason.trim().is_empty() {
        return Err(IssueError::InvalidRequest("a reason is required: say why access is revoked (-r 'laptop stolen')".into()));
    }
    request::check_reason(&request.reason)?;
    let store = env.store().as_ref();
    let audit = env.audit_store().as_ref();
    env.policy(environment).await?;
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
        for entry in
            entries.iter().filter(|e| &e.username == user && e.valid_before > now && (e.event == Event::Issued || e.certificate.is_some()))
        {
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

    // names whose every version is hidden behind a delete marker: versions kept, never reused
    let hidden: BTreeSet<u64> = audit
        .history(&layout::revocations(environment))
        .await?
        .into_iter()
        .filter_map(|(key, _, _)| layout::revocation_version(environment, &key))
        .collect();
    let recorded = retry_on_conflict(MAX_ATTEMPTS, |attempt| {
        let hidden = &hidden;
        let wanted = &wanted;
        async move {
            let log = read_log(audit, environment).await?;
            let record = RevocationRecord {
                event: "revoked".into(),
                environment: environment.clone(),
                version: if attempt == 0 { log.next_version(hidden) } else { log.unpredictable_version(hidden) },
                serials: wanted.serials.difference(&log.state.serials).copied().collect(),
                key_ids: wanted.key_ids.difference(&log.state.key_ids).cloned().collect(),
                keys: wanted.keys.difference(&log.state.keys).cloned().collect(),
                reason: request.reason.clone(),
                requested_by: request.requested_by.clone(),
                timestamp: OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC formats"),
            };
            if record.serials.is_empty() && record.key_ids.is_empty() && record.keys.is_empty() {
                return Ok(Some(None));
            }
            let body = serde_json::to_vec_pretty(&record).expect("serializes");
            match audit.put(&layout::revocation(environment, record.version), body, Condition::IfAbsent).await {
                Ok(_) => Ok(Some(Some(RevokeOutcome::Revoked {
                    version: record.version,
                    serials: record.serials.len(),
                    key_ids: record.key_ids.len(),
                    keys: record.keys.len(),
                }))),
                // another revoker (or someone planting) took this version: read the log again
                Err(StoreError::PreconditionFailed) => Ok(None),
                Err(err) => Err(IssueError::from(err)),
            }
        }
    })
    .await?
    .ok_or_else(|| IssueError::Unavailable("too many concurrent revocations: try again".into()))?;
    // Every revocation republishes the KRL the whole log makes, ours included.
    let published = publish_krl(env, environment, request.allow_shrink).await?;
    let outcome = recorded.unwrap_or(RevokeOutcome::AlreadyRevoked { version: published.log.state.version });
    Ok(RevokeReport { outcome, unreadable: published.log.unreadable, kept_from_published: published.kept })
}

/// Publishes the KRL the revocation log makes without recording anything (`sshca krl
/// --publish`): after a KRL was lost or planted, or, with `allow_shrink`, to drop what the
/// published KRL revokes and the log does not.
pub async fn republish(env: &Environment, environment: &str, allow_shrink: bool) -> Result<RevokeReport, IssueError> {
    request::check_environment(environment)?;
    let published = publish_krl(env, environment, allow_shrink).await?;
    let outcome = RevokeOutcome::AlreadyRevoked { version: published.log.state.version };
    Ok(RevokeReport { outcome, unreadable: published.log.unreadable, kept_from_published: published.kept })
}

/// The KRL for `state`, generated at `at` (Unix seconds): serials and key ids scoped to every CA
/// key the environment trusts.
pub async fn encode_krl(env: &Environment, environment: &str, state: &RevocationState, at: u64) -> Result<Vec<u8>, IssueError> {
    Ok(encode_for(&trusted_cas(env, environment).await?, environment, state, at))
}

/// The KRL for `state` under the CA keys `cas`, generated at `at`.
fn encode_for(cas: &[PublicKey], environment: &str, state: &RevocationState, at: u64) -> Vec<u8> {
    let keys: Vec<PublicKey> = state.keys.iter().filter_map(|line| PublicKey::from_openssh(line).ok()).collect();
    let revoked = krl::Revoked {
        serials: state.serials.iter().copied().collect(),
        key_ids: state.key_ids.iter().map(String::as_str).collect(),
        cas: cas.iter().map(PublicKey::key_data).collect(),
        keys: keys.iter().map(PublicKey::key_data).collect(),
    };
    krl::encode(&revoked, state.version, at, &krl_comment(environment))
}

/// A KRL as published: the log it was made from, and how many revocations it kept from the KRL
/// it replaced that the log does not record.
struct Published {
    log: Log,
    kept: usize,
}

/// Adds to `state` what `published` revokes under `cas` and `state` does not; returns how many.
/// Items under other CA keys revoke nothing servers of this environment trust, and are dropped.
fn keep_published(state: &mut RevocationState, published: &krl::Contents, cas: &[PublicKey]) -> usize {
    let cas: BTreeSet<Vec<u8>> = cas.iter().map(|ca| krl::blob(ca.key_data())).collect();
    let mut kept = 0;
    for (_, serial) in published.serials.iter().filter(|(ca, _)| cas.contains(ca)) {
        kept += usize::from(state.serials.insert(*serial));
    }
    for (_, key_id) in published.key_ids.iter().filter(|(ca, _)| cas.contains(ca)) {
        kept += usize::from(state.key_ids.insert(key_id.clone()));
    }
    for line in published.revoked_keys().filter_map(|key| bare_key_line(&key).ok()) {
        kept += usize::from(state.keys.insert(line));
    }
    kept
}

/// Makes the published KRL the one the revocation log makes: replaced (compare-and-swap) whenever
/// it differs, whatever version it claims, so a planted KRL is undone by the next revocation. It
/// never revokes less than the KRL it replaces unless `allow_shrink`: a revocation whose record
/// vanished from the log stays revoked (and `sshca verify` names the difference).
/// The published KRL is read before the log: whatever it holds came from records written before
/// it, which the log read after it includes, so a slower revoker never replaces a fuller list
/// with its older view.
async fn publish_krl(env: &Environment, environment: &str, allow_shrink: bool) -> Result<Published, IssueError> {
    let store = env.store().as_ref();
    let key = krl_key(environment);
    let cas = trusted_cas(env, environment).await?;
    let published = retry_on_conflict(MAX_ATTEMPTS, |_| async {
        let (condition, published) = match store.get(&key).await? {
            Some(object) => (Condition::IfMatch(object.etag), Some(object.body)),
            None => (Condition::IfAbsent, None),
        };
        let log = read_log(env.audit_store().as_ref(), environment).await?;
        let mut state = log.state.clone();
        let contents = published.as_deref().and_then(|published| krl::decode(published).ok());
        let kept = match &contents {
            Some(contents) if !allow_shrink => keep_published(&mut state, contents, &cas),
            _ => 0,
        };
        if kept > 0 {
            tracing::error!(environment, kept, "the published KRL revokes what the revocation log no longer records: kept");
        }
        // Encoded at the published KRL's own time, an unchanged list is byte for byte the same.
        if let (Some(published), Some(contents)) = (&published, &contents) {
            if &encode_for(&cas, environment, &state, contents.generated_at) == published {
                return Ok(Some(Published { log, kept }));
            }
        }
        match store.put(&key, encode_for(&cas, environment, &state, unix_now()), condition).await {
            Ok(_) => Ok(Some(Published { log, kept })),
            Err(StoreError::PreconditionFailed) => Ok(None),
            Err(err) => Err(IssueError::from(err)),
        }
    })
    .await?;
    published.ok_or_else(|| IssueError::Unavailable(format!("could not publish {key}: too many concurrent writers")))
}

/// Every CA key the environment's KRL scopes serials and key ids to (user and host, current,
/// next and previous).
pub async fn trusted_cas(env: &Environment, environment: &str) -> Result<Vec<PublicKey>, IssueError> {
    let mut cas = env.trusted_ca_keys(environment, CertKind::User).await?;
    // An environment without a host CA has none to list; one whose host CA cannot be loaded must
    // not publish a KRL that silently drops every host revocation.
    if !env.policy(environment).await?.trusted_cas(CertKind::Host).is_empty() {
        cas.extend(env.trusted_ca_keys(environment, CertKind::Host).await?);
    }
    Ok(cas)
}

fn krl_comment(environment: &str) -> String {
    format!("sshca {environment} revocations")
}

/// Publishes the KRL of an environment that revokes nothing, unless one is published: issuance
/// then always finds a KRL to read its revoked keys from, whatever lies in the log.
pub async fn publish_empty_krl(store: &dyn Store, environment: &str) -> Result<(), IssueError> {
    let empty = krl::encode(&krl::Revoked::default(), 0, unix_now(), &krl_comment(environment));
    match store.put(&krl_key(environment), empty, Condition::IfAbsent).await {
        Ok(_) | Err(StoreError::PreconditionFailed) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The environment's current KRL (an empty one when nothing was ever revoked).
pub async fn current_krl(env: &Environment, environment: &str) -> Result<Vec<u8>, IssueError> {
    request::check_environment(environment)?;
    match env.store().get(&krl_key(environment)).await? {
        Some(object) => Ok(object.body),
        None => encode_krl(env, environment, &RevocationState::default(), unix_now()).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use rand::rngs::OsRng;
    use ssh_key::{Algorithm, PrivateKey};

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Object;
    use crate::testing::setup;

    /// A store in which someone plants garbage at every version a revoker could predict (the
    /// next ones above the log), just before the revoker's create-only write lands.
    struct Racing {
        inner: Arc<MemoryStore>,
        plants: AtomicUsize,
    }

    #[async_trait]
    impl Store for Racing {
        async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<String, StoreError> {
            let predictable = layout::revocation_version("staging", key).is_some_and(|version| version < 1000);
            if predictable {
                self.plants.fetch_add(1, Ordering::SeqCst);
                self.inner.put(key, b"garbage".to_vec(), Condition::IfAbsent).await?;
            }
            self.inner.put(key, body, condition).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn list_after(&self, prefix: &str, start_after: &str, max: usize) -> Result<Vec<String>, StoreError> {
            self.inner.list_after(prefix, start_after, max).await
        }
        async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StoreError> {
            self.inner.presign_get(key, expires_in).await
        }
        async fn history(&self, prefix: &str) -> Result<Vec<(String, usize, bool)>, StoreError> {
            self.inner.history(prefix).await
        }
    }

    fn serials(serials: &[u64]) -> RevokeRequest {
        RevokeRequest { environment: "staging".into(), serials: serials.to_vec(), reason: "test".into(), ..Default::default() }
    }

    async fn published(store: &MemoryStore) -> BTreeSet<u64> {
        let krl = store.get(&krl_key("staging")).await.unwrap().expect("a published KRL").body;
        krl::decode(&krl).unwrap().serials.into_iter().map(|(_, serial)| serial).collect()
    }

    #[tokio::test]
    async fn a_readable_record_at_the_last_version_blocks_nothing() {
        let audit = Arc::new(MemoryStore::default());
        let (store, issuer) = setup(audit.clone()).await;
        let at_max = RevocationRecord {
            event: "revoked".into(),
            environment: "staging".into(),
            version: u64::MAX,
            serials: vec![],
            key_ids: vec![],
            keys: vec![],
            reason: "planted".into(),
            requested_by: None,
            timestamp: "2026-01-01T00:00:00Z".into(),
        };
        audit.put(&layout::revocation("staging", u64::MAX), serde_json::to_vec(&at_max).unwrap(), Condition::IfAbsent).await.unwrap();
        let report = revoke(issuer.environment(), &serials(&[1])).await.unwrap();
        assert!(matches!(report.outcome, RevokeOutcome::Revoked { version: 1, serials: 1, .. }), "{report:?}");
        assert_eq!(published(&store).await, [1].into());
    }

    #[tokio::test]
    async fn planting_at_each_next_version_does_not_block_a_revocation() {
        let inner = Arc::new(MemoryStore::default());
        let racing = Arc::new(Racing { inner: inner.clone(), plants: AtomicUsize::new(0) });
        let (store, issuer) = setup(racing.clone()).await;
        let report = revoke(issuer.environment(), &serials(&[2])).await.unwrap();
        assert!(matches!(report.outcome, RevokeOutcome::Revoked { serials: 1, .. }), "{report:?}");
        assert_eq!(published(&store).await, [2].into());
        assert_eq!(racing.plants.load(Ordering::SeqCst), 1, "only the first, predictable, version was raced");
        assert_eq!(report.unreadable.len(), 1, "the garbage planted there is named: {report:?}");
    }

    #[tokio::test]
    async fn a_revocation_whose_record_vanished_stays_in_the_krl_until_an_admin_drops_it() {
        let audit = Arc::new(MemoryStore::default());
        let (store, issuer) = setup(audit.clone()).await;
        revoke(issuer.environment(), &serials(&[3])).await.unwrap();
        audit.delete(&layout::revocation("staging", 1));
        let report = revoke(issuer.environment(), &serials(&[4])).await.unwrap();
        assert_eq!(report.kept_from_published, 1, "{report:?}");
        assert_eq!(published(&store).await, [3, 4].into());
        let report = republish(issuer.environment(), "staging", true).await.unwrap();
        assert_eq!(report.kept_from_published, 0);
        assert_eq!(published(&store).await, [4].into(), "--allow-shrink drops what no record holds");
    }

    #[tokio::test]
    async fn revoked_keys_come_from_the_published_krl() {
        let audit = Arc::new(MemoryStore::default());
        let (store, issuer) = setup(audit.clone()).await;
        assert!(revoked_keys(issuer.environment().store().as_ref(), issuer.environment().audit_store().as_ref(), "staging")
            .await
            .unwrap()
            .is_empty());
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap().public_key().to_openssh().unwrap();
        let request = RevokeRequest { public_keys: vec![key.clone()], ..serials(&[]) };
        revoke(issuer.environment(), &request).await.unwrap();
        let line = bare_key_line(PublicKey::from_openssh(&key).unwrap().key_data()).unwrap();
        assert_eq!(
            revoked_keys(issuer.environment().store().as_ref(), issuer.environment().audit_store().as_ref(), "staging").await.unwrap(),
            [line].into()
        );
        // a KRL that is not one is named, never read as "nothing revoked"
        store.put(&krl_key("staging"), b"<html>".to_vec(), Condition::Always).await.unwrap();
        let err = revoked_keys(issuer.environment().store().as_ref(), issuer.environment().audit_store().as_ref(), "staging")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("sshca krl staging --publish"), "{err}");
    }
}
