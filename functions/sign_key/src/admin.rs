//! Setting up an environment: creating its CA keys and writing its policy.

use std::fmt;
use std::str::FromStr;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use rand::rngs::OsRng;
use ssh_key::{Algorithm, PrivateKey, PublicKey};

use crate::aws::Aws;
use crate::ca::{sealing_context, CaKeys};
use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::policy::{CaKeyRef, Policy};
use crate::request::CertKind;
use crate::store::retry_on_conflict;
use crate::store::{Condition, Store};

/// The kinds of CA key `sshca init --create-keys` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKeySpec {
    /// A KMS asymmetric key of this spec.
    Kms(&'static str),
    /// An Ed25519 key generated here and stored sealed by a KMS symmetric key.
    Ed25519Sealed,
}

impl CaKeySpec {
    pub const NAMES: [&'static str; 6] =
        ["ECC_NIST_P256", "ECC_NIST_P384", "RSA_3072", "RSA_4096", "ECC_NIST_EDWARDS25519", "ED25519_SEALED"];
}

impl FromStr for CaKeySpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let upper = text.to_ascii_uppercase();
        match Self::NAMES.iter().find(|name| **name == upper) {
            Some(&"ED25519_SEALED") => Ok(CaKeySpec::Ed25519Sealed),
            Some(name) => Ok(CaKeySpec::Kms(name)),
            None => Err(format!("unknown key spec {text:?}: use one of {}", Self::NAMES.join(", "))),
        }
    }
}

impl fmt::Display for CaKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaKeySpec::Kms(name) => f.write_str(name),
            CaKeySpec::Ed25519Sealed => f.write_str("ED25519_SEALED"),
        }
    }
}

fn kms_failure(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> IssueError {
    IssueError::Configuration(format!("{what}: {}", aws_sdk_kms::error::DisplayErrorContext(err)))
}

/// Creates a CA key for `environment`'s user or host certificates. `seal_key` is the KMS
/// symmetric key that seals an `ED25519_SEALED` CA key; one is created when it is `None`.
pub async fn create_ca_key(
    aws: &Aws,
    store: &dyn Store,
    environment: &str,
    kind: CertKind,
    spec: CaKeySpec,
    seal_key: Option<&str>,
) -> Result<CaKeyRef, IssueError> {
    let description = format!("sshca {environment} {} CA", kind.as_str());
    let tag = |key: &str, value: &str| Tag::builder().tag_key(key).tag_value(value).build().expect("tag fields are set");
    match spec {
        CaKeySpec::Kms(name) => {
            let created = aws
                .kms
                .create_key()
                .key_spec(KeySpec::from(name))
                .key_usage(KeyUsageType::SignVerify)
                .description(&description)
                .tags(tag("sshca:environment", environment))
                .tags(tag("sshca:role", kind.as_str()))
                .send()
                .await
                .map_err(|err| {
                    kms_failure(
                        &format!(
                            "KMS could not create a {name} SIGN_VERIFY key (where KMS has no Ed25519 keys, use --key-spec ED25519_SEALED)"
                        ),
                        err,
                    )
                })?;
            let key_id = created.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_default();
            Ok(CaKeyRef::Kms { key_id })
        }
        CaKeySpec::Ed25519Sealed => {
            let seal_key = match seal_key {
                Some(id) => id.to_owned(),
                None => {
                    let created = aws
                        .kms
                        .create_key()
                        .description(format!("sshca {environment} sealing key for Ed25519 CA keys"))
                        .tags(tag("sshca:environment", environment))
                        .send()
                        .await
                        .map_err(|err| kms_failure("KMS could not create the sealing key", err))?;
                    created.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_default()
                }
            };
            let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
                .map_err(|err| IssueError::Configuration(format!("generating the Ed25519 key: {err}")))?;
            let plaintext = key.to_bytes().map_err(|err| IssueError::Configuration(err.to_string()))?;
            let sealed = aws
                .kms
                .encrypt()
                .key_id(&seal_key)
                .plaintext(Blob::new(plaintext.as_slice()))
                .set_encryption_context(Some(sealing_context(environment)))
                .send()
                .await
                .map_err(|err| kms_failure(&format!("KMS could not seal the Ed25519 CA key with {seal_key:?}"), err))?;
            let object = layout::sealed_ca_key(environment, kind.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..12]);
            let blob = sealed.ciphertext_blob().map(|b| b.as_ref().to_vec()).unwrap_or_default();
            store.put(&object, blob, Condition::IfAbsent).await.map_err(|err| {
                IssueError::Configuration(format!("could not store the sealed key at {object} (is there one already?): {err}"))
            })?;
            Ok(CaKeyRef::SealedEd25519 { object })
        }
    }
}

/// How often a policy change is applied again when someone else changed the policy in between.
const POLICY_ATTEMPTS: u32 = 10;

/// Changes the environment's policy by compare-and-swap: reads it (`None` when there is none),
/// applies `change`, checks the result (valid, and every CA key it names can sign) and writes it
/// only if nobody else wrote in between; otherwise reads again and applies `change` to what they
/// wrote, so that no change is lost. Returns the policy written and the public keys of its
/// current user and host CAs.
pub async fn update_policy<E, F>(
    store: &dyn Store,
    ca_keys: &dyn CaKeys,
    environment: &str,
    change: F,
) -> Result<(Policy, Vec<PublicKey>), E>
where
    E: From<IssueError>,
    F: FnMut(Option<Policy>) -> Result<Policy, E>,
{
    let key = layout::policy(environment);
    // `change` is applied again on each attempt; a lock lets each attempt's future borrow it
    let change = std::sync::Mutex::new(change);
    let written = retry_on_conflict::<_, E, _, _>(POLICY_ATTEMPTS, |_| async {
        let (current, condition) = match store.get(&key).await.map_err(IssueError::from)? {
            None => (None, Condition::IfAbsent),
            Some(object) => (Some(crate::issuer::parse_policy(environment, &object.body)?), Condition::IfMatch(object.etag)),
        };
        let policy = (change.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))(current)?;
        let current_keys = checked_keys(ca_keys, &policy).await?;
        let body = serde_json::to_vec_pretty(&policy).expect("a policy serializes");
        match store.put(&key, body, condition).await {
            Ok(_) => Ok(Some((policy, current_keys))),
            Err(StoreError::PreconditionFailed) => {
                tracing::warn!(policy = %key, "the policy changed while this change was made: applying it again to the new one");
                Ok(None)
            }
            Err(err) => Err(IssueError::from(err).into()),
        }
    })
    .await?;
    written.ok_or_else(|| {
        IssueError::Unavailable(format!(
            "the policy of environment {environment:?} kept changing while this change was applied (someone else is running sshca init or rotate): run the command again"
        ))
        .into()
    })
}

/// Checks `policy` and that every CA key it names (current, next, previous) can sign; returns
/// the public keys of the current user and host CAs.
async fn checked_keys(ca_keys: &dyn CaKeys, policy: &Policy) -> Result<Vec<PublicKey>, IssueError> {
    policy.validate()?;
    let environment = &policy.environment;
    let mut current = Vec::new();
    for kind in [CertKind::User, CertKind::Host] {
        for (role, key) in policy.trusted_cas(kind) {
            let signer = ca_keys.load(environment, kind, key).await?;
            if role == "current" {
                current.push(PublicKey::new(signer.public_key().clone(), format!("sshca {environment} {} CA", kind.as_str())));
            }
        }
    }
    if current.is_empty() {
        return Err(IssueError::Configuration(format!(
            "environment {environment:?} has no CA key: pass --create-keys, or --user-ca-key / --host-ca-key KMS_KEY_ID"
        )));
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::access::AccessRule;
    use crate::store::memory::MemoryStore;
    use crate::testing::ca_keys;

    /// The policy `change` makes: `staging` with a KMS user CA and one more admin.
    fn add_admin(current: Option<Policy>, admin: &str) -> Result<Policy, IssueError> {
        let mut policy = current.unwrap_or_else(|| {
            let mut policy = Policy::new("staging");
            policy.user_ca = Some(CaKeyRef::Kms { key_id: "test".into() });
            policy.access.audience = "sshca:test:staging".into();
            policy
        });
        policy.access.rules.push(AccessRule::admin(admin));
        Ok(policy)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_policy_changes_are_all_kept() {
        let (store, keys) = (Arc::new(MemoryStore::default()), ca_keys());
        let admins: Vec<String> = (0..8).map(|n| format!("arn:aws:iam::111111111111:user/admin{n}")).collect();
        let tasks: Vec<_> = admins
            .iter()
            .cloned()
            .map(|admin| {
                let (store, keys) = (store.clone(), keys.clone());
                tokio::spawn(async move {
                    update_policy::<IssueError, _>(store.as_ref(), keys.as_ref(), "staging", |current| add_admin(current, &admin)).await
                })
            })
            .collect();
        for task in tasks {
            let (_, public_keys) = task.await.unwrap().unwrap();
            assert_eq!(public_keys.len(), 1, "the current user CA's public key");
        }
        let stored: Policy = serde_json::from_slice(&store.get(&layout::policy("staging")).await.unwrap().unwrap().body).unwrap();
        let kept: Vec<&str> = stored.access.rules.iter().map(|rule| rule.arn.as_str()).collect();
        for admin in &admins {
            assert!(kept.contains(&admin.as_str()), "{admin} was lost: {kept:?}");
        }
    }

    #[tokio::test]
    async fn a_policy_without_a_ca_key_or_a_refused_change_writes_nothing() {
        let (store, keys) = (MemoryStore::default(), ca_keys());
        let no_key = update_policy::<IssueError, _>(&store, keys.as_ref(), "staging", |_| {
            let mut policy = Policy::new("staging");
            policy.access.audience = "sshca:test:staging".into();
            Ok(policy)
        });
        assert!(no_key.await.unwrap_err().to_string().contains("has no CA key"));
        let refused = update_policy::<IssueError, _>(&store, keys.as_ref(), "staging", |_| Err(IssueError::InvalidRequest("no".into())));
        assert_eq!(refused.await.unwrap_err().error_type(), "InvalidRequest");
        assert!(store.keys().is_empty(), "{:?}", store.keys());
    }
}
