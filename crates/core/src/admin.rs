//! Administering an environment: what `sshca init` and `sshca rotate` make of its policy, and
//! changing the policy without losing anyone's change.

use ssh_key::PublicKey;

use crate::access::{AccessRule, Grant};
use crate::environment::Environment;
use crate::error::{IssueError, StoreError};
use crate::layout;
use crate::policy::{CaKeyRef, Policy};
use crate::request::CertKind;
use crate::store::retry_on_conflict;
use crate::store::Condition;

/// How often a policy change is applied again when someone else changed the policy in between.
const POLICY_ATTEMPTS: u32 = 10;

/// Changes the environment's policy by compare-and-swap: reads it (`None` when there is none),
/// applies `change`, checks the result (valid, and every CA key it names can sign) and writes it
/// only if nobody else wrote in between; otherwise reads again and applies `change` to what they
/// wrote, so that no change is lost. Returns the policy written and the public keys of its
/// current user and host CAs.
pub async fn update_policy<E, F>(env: &Environment, environment: &str, change: F) -> Result<(Policy, Vec<PublicKey>), E>
where
    E: From<IssueError>,
    F: FnMut(Option<Policy>) -> Result<Policy, E>,
{
    let (store, key) = (env.store().as_ref(), layout::policy(environment));
    // `change` is applied again on each attempt; a lock lets each attempt's future borrow it
    let change = std::sync::Mutex::new(change);
    let written = retry_on_conflict::<_, E, _, _>(POLICY_ATTEMPTS, |_| async {
        let (current, condition) = match store.get(&key).await.map_err(IssueError::from)? {
            None => (None, Condition::IfAbsent),
            Some(object) => (Some(crate::environment::parse_policy(environment, &object.body)?), Condition::IfMatch(object.etag)),
        };
        let policy = (change.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))(current)?;
        let current_keys = checked_keys(env, &policy).await?;
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
async fn checked_keys(env: &Environment, policy: &Policy) -> Result<Vec<PublicKey>, IssueError> {
    policy.validate(env.providers())?;
    let environment = &policy.environment;
    let mut current = Vec::new();
    for kind in [CertKind::User, CertKind::Host] {
        for (role, key) in policy.trusted_cas(kind) {
            let signer = env.ca_keys().load(environment, kind, key).await?;
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

/// What `sshca init` changes in an environment's policy. [`PolicyChange::apply`] is applied again
/// to whatever someone else wrote in between, so it depends on nothing but its inputs.
#[derive(Debug, Clone, Default)]
pub struct PolicyChange {
    pub environment: String,
    /// KMS key ids given for the user and host CA.
    pub user_ca_key: Option<String>,
    pub host_ca_key: Option<String>,
    /// Default principals of user certificates (also the allowed ones unless `allowed_principals`).
    pub principals: Option<Vec<String>>,
    pub allowed_principals: Option<Vec<String>>,
    pub allowed_host_principals: Option<Vec<String>>,
    pub allowed_critical_options: Option<Vec<String>>,
    /// The public key types certified (`allowed_key_types`).
    pub key_types: Option<Vec<String>>,
    pub default_ttl: Option<u64>,
    pub max_ttl: Option<u64>,
    pub host_max_ttl: Option<u64>,
    pub host_default_ttl: Option<u64>,
    /// Access rules that replace the environment's.
    pub rules: Option<Vec<AccessRule>>,
    /// Admin rules added in front unless there already.
    pub admins: Vec<AccessRule>,
    pub audience: Option<String>,
    /// IAM Identity Center's identity store, where rules that map groups read users' groups.
    pub identity_store_id: Option<String>,
    pub groups_ttl_seconds: Option<u64>,
    /// The audience of an environment that has none and is given none.
    pub default_audience: String,
    /// `Some(true)`: serve requests without a proof; `Some(false)`: refuse them.
    pub allow_unproven: Option<bool>,
    /// CA keys made for the slots that were empty.
    pub created: Vec<(CertKind, CaKeyRef)>,
    /// The rule that makes the caller the first admin when no rule is one.
    pub first_admin: Option<AccessRule>,
}

impl PolicyChange {
    /// The policy this change makes of `current` (a new one when `None`).
    pub fn apply(&self, current: Option<Policy>) -> Policy {
        let mut policy = current.unwrap_or_else(|| Policy::new(&self.environment));
        policy.environment = self.environment.clone();
        if let Some(principals) = self.principals.clone() {
            if self.allowed_principals.is_none() {
                policy.allowed_principals = principals.clone();
            }
            policy.default_principals = principals;
        }
        let replace = |slot: &mut Vec<String>, given: &Option<Vec<String>>| {
            if let Some(given) = given {
                *slot = given.clone();
            }
        };
        replace(&mut policy.allowed_principals, &self.allowed_principals);
        replace(&mut policy.allowed_host_principals, &self.allowed_host_principals);
        replace(&mut policy.allowed_critical_options, &self.allowed_critical_options);
        replace(&mut policy.allowed_key_types, &self.key_types);
        policy.default_ttl = self.default_ttl.unwrap_or(policy.default_ttl);
        policy.max_ttl = self.max_ttl.unwrap_or(policy.max_ttl);
        policy.host_max_ttl = self.host_max_ttl.unwrap_or(policy.host_max_ttl);
        policy.host_default_ttl = self.host_default_ttl.unwrap_or(policy.host_default_ttl);
        policy.default_ttl = policy.default_ttl.min(policy.max_ttl);
        policy.host_default_ttl = policy.host_default_ttl.min(policy.host_max_ttl);
        self.apply_access(&mut policy);
        for (kind, given) in [(CertKind::User, &self.user_ca_key), (CertKind::Host, &self.host_ca_key)] {
            let slot = match kind {
                CertKind::User => &mut policy.user_ca,
                CertKind::Host => &mut policy.host_ca,
            };
            if let Some(key_id) = given {
                *slot = Some(CaKeyRef::Kms { key_id: key_id.clone() });
            } else if slot.is_none() {
                *slot = self.created.iter().find(|(k, _)| *k == kind).map(|(_, key)| key.clone());
            }
        }
        policy
    }

    /// The access part: rules, admins, the first admin, audience, whether proofs are required.
    fn apply_access(&self, policy: &mut Policy) {
        let access = &mut policy.access;
        if let Some(rules) = &self.rules {
            access.rules = rules.clone();
        }
        for admin in self.admins.iter().rev() {
            if !access.rules.iter().any(|rule| rule.arn == admin.arn && rule.grant == Grant::Admin) {
                access.rules.insert(0, admin.clone());
            }
        }
        if let Some(first) = self.first_admin.as_ref().filter(|_| !access.rules.iter().any(|rule| rule.grant == Grant::Admin)) {
            access.rules.insert(0, first.clone());
        }
        if let Some(audience) = &self.audience {
            access.audience = audience.clone();
        } else if access.audience.is_empty() {
            access.audience = self.default_audience.clone();
        }
        if let Some(allow) = self.allow_unproven {
            access.allow_unproven = allow;
        }
        if let Some(store) = &self.identity_store_id {
            access.identity_store_id = Some(store.clone());
        }
        access.groups_ttl_seconds = self.groups_ttl_seconds.unwrap_or(access.groups_ttl_seconds);
    }
}

/// One step of a CA rotation with overlap (`sshca rotate`).
#[derive(Debug, Clone, PartialEq)]
pub enum RotationStep {
    /// Step 1: the next key is announced (trusted, signing nothing): the one given, or the one
    /// created for the role.
    Announce { given: Option<CaKeyRef>, created: Vec<(CertKind, CaKeyRef)> },
    /// Step 2: the next key signs from now on; the current one stays trusted as previous.
    Promote,
    /// Step 3: the previous key is forgotten.
    Retire,
}

/// `policy` after `step` for the CAs of `kinds`, and what was done, one line per CA.
pub fn rotate(mut policy: Policy, step: &RotationStep, kinds: &[CertKind]) -> Result<(Policy, Vec<String>), IssueError> {
    let refused = |message: String| Err(IssueError::Configuration(message));
    let mut said = Vec::new();
    for &kind in kinds {
        let name = kind.as_str();
        let environment = policy.environment.clone();
        let [current, next, previous] = policy.ca_slots(kind);
        if current.is_none() {
            return refused(format!("environment {environment:?} has no {name} CA to rotate: `sshca init` it first"));
        }
        match step {
            RotationStep::Announce { given, created } => {
                if next.is_some() {
                    return refused(format!("a rotation of the {name} CA is under way already: promote it (--promote) first"));
                }
                let key = match given {
                    Some(key) => key.clone(),
                    None => match created.iter().find(|(k, _)| *k == kind) {
                        Some((_, key)) => key.clone(),
                        None => return refused(format!("no next {name} CA key was given or created")),
                    },
                };
                said.push(format!("{name} CA: next key {key:?} announced; it signs nothing until --promote"));
                *next = Some(key);
            }
            RotationStep::Promote => {
                if next.is_none() {
                    return refused(format!("the {name} CA has no next key to promote: start with --create-next"));
                }
                if previous.is_some() {
                    return refused(format!(
                        "the {name} CA still has a previous key: retire it first (--retire), once its certificates have expired"
                    ));
                }
                *previous = current.take();
                *current = next.take();
                said.push(format!("{name} CA: the next key is current now; the old one stays trusted until --retire"));
            }
            RotationStep::Retire => said.push(match previous.take() {
                Some(old) => format!("{name} CA: retired {old:?}; its certificates are refused once servers get the new `sshca config`"),
                None => format!("{name} CA: no previous key to retire"),
            }),
        }
    }
    Ok((policy, said))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::Store;
    use crate::testing;

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
        let store = Arc::new(MemoryStore::default());
        let env = Arc::new(testing::environment(store.clone(), store.clone(), testing::providers()));
        let admins: Vec<String> = (0..8).map(|n| format!("arn:aws:iam::111111111111:user/admin{n}")).collect();
        let tasks: Vec<_> = admins
            .iter()
            .cloned()
            .map(|admin| {
                let env = env.clone();
                tokio::spawn(async move { update_policy::<IssueError, _>(&env, "staging", |current| add_admin(current, &admin)).await })
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
        let store = Arc::new(MemoryStore::default());
        let env = testing::environment(store.clone(), store.clone(), testing::providers());
        let no_key = update_policy::<IssueError, _>(&env, "staging", |_| {
            let mut policy = Policy::new("staging");
            policy.access.audience = "sshca:test:staging".into();
            Ok(policy)
        });
        assert!(no_key.await.unwrap_err().to_string().contains("has no CA key"));
        let refused = update_policy::<IssueError, _>(&env, "staging", |_| Err(IssueError::InvalidRequest("no".into())));
        assert_eq!(refused.await.unwrap_err().error_type(), "InvalidRequest");
        assert!(store.keys().is_empty(), "{:?}", store.keys());
    }

    #[test]
    fn an_init_change_keeps_what_it_does_not_name_and_adds_the_first_admin_only_where_none_is() {
        let mut existing = Policy::new("staging");
        existing.allowed_principals = vec!["deploy".into(), "ops".into()];
        existing.max_ttl = 7200;
        existing.access.audience = "sshca:old:staging".into();
        existing.user_ca = Some(CaKeyRef::Kms { key_id: "kept".into() });
        let first = AccessRule::admin("arn:aws:iam::111111111111:user/me");
        let change = PolicyChange {
            environment: "staging".into(),
            principals: Some(vec!["deploy".into()]),
            default_ttl: Some(10 * 3600),
            default_audience: "sshca:bucket:staging".into(),
            created: vec![
                (CertKind::User, CaKeyRef::Kms { key_id: "new".into() }),
                (CertKind::Host, CaKeyRef::Kms { key_id: "host".into() }),
            ],
            first_admin: Some(first.clone()),
            ..PolicyChange::default()
        };
        let policy = change.apply(Some(existing));
        assert_eq!((policy.default_principals.clone(), policy.allowed_principals.clone()), (vec!["deploy".into()], vec!["deploy".into()]));
        assert_eq!(policy.default_ttl, 7200, "a default above the kept max_ttl is lowered to it");
        assert_eq!(policy.access.audience, "sshca:old:staging", "an audience is never changed unless given");
        assert_eq!(policy.user_ca, Some(CaKeyRef::Kms { key_id: "kept".into() }), "a created key fills only an empty slot");
        assert_eq!(policy.host_ca, Some(CaKeyRef::Kms { key_id: "host".into() }));
        assert_eq!(policy.access.rules, std::slice::from_ref(&first));
        let admin = AccessRule::admin("arn:aws:iam::111111111111:user/boss");
        let with_admin = PolicyChange { admins: vec![admin.clone()], ..change.clone() }.apply(Some(policy.clone()));
        assert_eq!(with_admin.access.rules, [admin.clone(), first.clone()], "admins go in front, once");
        assert_eq!(PolicyChange { admins: vec![admin.clone()], ..change.clone() }.apply(Some(with_admin.clone())).access.rules.len(), 2);
        let fresh = PolicyChange { allow_unproven: Some(true), ..change }.apply(None);
        assert_eq!(fresh.access.audience, "sshca:bucket:staging");
        assert!(fresh.access.allow_unproven);
    }

    #[test]
    fn a_rotation_announces_promotes_and_retires_in_order() {
        let (old, next) = (CaKeyRef::Kms { key_id: "old".into() }, CaKeyRef::Kms { key_id: "next".into() });
        let mut policy = Policy::new("staging");
        policy.user_ca = Some(old.clone());
        let user = [CertKind::User];
        let refused = |policy: &Policy, step: &RotationStep| rotate(policy.clone(), step, &user).unwrap_err().to_string();
        assert!(refused(&policy, &RotationStep::Promote).contains("no next key to promote"));
        assert!(rotate(policy.clone(), &RotationStep::Promote, &[CertKind::Host]).unwrap_err().to_string().contains("no host CA"));
        let announce = RotationStep::Announce { given: None, created: vec![(CertKind::User, next.clone())] };
        let (announced, said) = rotate(policy, &announce, &user).unwrap();
        assert_eq!((announced.user_ca.clone(), announced.next_user_ca.clone()), (Some(old.clone()), Some(next.clone())));
        assert!(said[0].contains("announced"), "{said:?}");
        assert!(refused(&announced, &announce).contains("under way already"));
        let (promoted, _) = rotate(announced, &RotationStep::Promote, &user).unwrap();
        assert_eq!((promoted.user_ca.clone(), promoted.previous_user_ca.clone()), (Some(next.clone()), Some(old)));
        let fresh_announce = RotationStep::Announce { given: Some(CaKeyRef::Kms { key_id: "third".into() }), created: Vec::new() };
        let (third, _) = rotate(promoted.clone(), &fresh_announce, &user).unwrap();
        assert!(refused(&third, &RotationStep::Promote).contains("still has a previous key"));
        let (retired, said) = rotate(promoted, &RotationStep::Retire, &user).unwrap();
        assert_eq!((retired.user_ca, retired.previous_user_ca), (Some(next), None));
        assert!(said[0].contains("retired"), "{said:?}");
    }
}
