//! One environment's stores, CA keys, identity providers and policy, as the issuer, revocation,
//! the books and administration all use them. Build it once per process and share it: the policy
//! it reads is kept for a minute.

use std::sync::Arc;
use std::time::Duration;

use ssh_key::PublicKey;

use crate::ca::CaKeys;
use crate::error::IssueError;
use crate::identity::Providers;
use crate::layout;
use crate::notify::{Notice, Notifier};
use crate::policy::Policy;
use crate::recent::Recent;
use crate::request::{self, CertKind};
use crate::store::Store;

/// How long a policy read from the bucket is trusted before it is read again: an admin's change
/// reaches every warm container within this time.
const POLICY_TTL: Duration = Duration::from_secs(60);

pub struct Environment {
    store: Arc<dyn Store>,
    /// Where audit records go: the same bucket, or a separate one (e.g. with S3 Object Lock).
    audit: Arc<dyn Store>,
    ca_keys: Arc<dyn CaKeys>,
    providers: Providers,
    policies: Recent<Arc<Policy>>,
    /// Where just-in-time access is announced; none: nowhere.
    notifier: Option<Arc<dyn Notifier>>,
}

impl Environment {
    pub fn new(store: Arc<dyn Store>, audit: Arc<dyn Store>, ca_keys: Arc<dyn CaKeys>, providers: Providers) -> Self {
        Self { store, audit, ca_keys, providers, policies: Recent::new(POLICY_TTL), notifier: None }
    }

    /// This environment, announcing just-in-time access through `notifier`.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Publishes `notice` where the environment announces access (nowhere without a notifier).
    pub async fn notify(&self, notice: &Notice) {
        match &self.notifier {
            Some(notifier) => notifier.notify(notice).await,
            None => tracing::info!(event = notice.event, request = ?notice.request_id, "no notifier: the notice goes to the log only"),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn audit_store(&self) -> &Arc<dyn Store> {
        &self.audit
    }

    /// The environment's policy, from the per-container cache when fresh.
    pub async fn policy(&self, environment: &str) -> Result<Arc<Policy>, IssueError> {
        request::check_environment(environment)?;
        if let Some(policy) = self.policies.get(environment) {
            return Ok(policy);
        }
        let policy = read_policy(self.store.as_ref(), environment).await?;
        if policy.environment != environment {
            return Err(IssueError::Configuration(format!(
                "{} holds the policy of environment {:?}, not {environment:?}: write it again with `sshca init {environment}`",
                layout::policy(environment),
                request::truncate_for_message(&policy.environment)
            )));
        }
        policy.validate(&self.providers)?;
        let policy = Arc::new(policy);
        self.policies.insert(environment.to_owned(), policy.clone());
        Ok(policy)
    }

    /// The public key of the environment's user or host CA, as servers and clients must trust it.
    pub async fn ca_public_key(&self, environment: &str, kind: CertKind) -> Result<PublicKey, IssueError> {
        let policy = self.policy(environment).await?;
        let signer = self.ca_keys.load(environment, kind, policy.ca(kind)?).await?;
        Ok(PublicKey::new(signer.public_key().clone(), format!("sshca {environment} {} CA", kind.as_str())))
    }

    /// Every CA public key of `kind` that servers and clients must trust (current, next, previous).
    pub async fn trusted_ca_keys(&self, environment: &str, kind: CertKind) -> Result<Vec<PublicKey>, IssueError> {
        let policy = self.policy(environment).await?;
        let mut keys = Vec::new();
        for (role, key) in policy.trusted_cas(kind) {
            let signer = self.ca_keys.load(environment, kind, key).await?;
            let role = if role == "current" { String::new() } else { format!(" ({role})") };
            keys.push(PublicKey::new(signer.public_key().clone(), format!("sshca {environment} {} CA{role}", kind.as_str())));
        }
        if keys.is_empty() {
            policy.ca(kind)?;
        }
        Ok(keys)
    }

    pub fn ca_keys(&self) -> &dyn CaKeys {
        self.ca_keys.as_ref()
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }
}

pub async fn read_policy(store: &dyn Store, environment: &str) -> Result<Policy, IssueError> {
    let object = store.get(&layout::policy(environment)).await?.ok_or_else(|| IssueError::UnknownEnvironment(environment.to_owned()))?;
    parse_policy(environment, &object.body)
}

pub(crate) fn parse_policy(environment: &str, body: &[u8]) -> Result<Policy, IssueError> {
    serde_json::from_slice(body).map_err(|err| {
        IssueError::Configuration(format!(
            "the policy of environment {environment:?} ({}) is not valid: {err}; fix it or write it again with `sshca init`",
            layout::policy(environment)
        ))
    })
}
