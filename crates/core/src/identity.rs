//! Who asks: an [`IdentityProvider`] checks a request's proof and names its caller as a
//! provider-neutral [`Identity`], which the access rules ([`crate::access`]) then judge.
//!
//! A provider lives at the edge (the AWS STS one is `sshca_aws::sts`). Adding one is a file
//! implementing [`IdentityProvider`], a variant of [`Proof`] for what its callers send, and one
//! [`Providers::with`] where the environment is built.

use std::sync::Arc;

use async_trait::async_trait;

use crate::access::{Access, AccessRule, FromInstance};
use crate::error::IssueError;
use crate::request;

pub use crate::caller::Identity;
pub use sshca_proto::proof::Proof;

/// What a proof must be bound to: this deployment, this very request, and a time.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The environment's `access.audience`.
    pub audience: &'a str,
    /// [`request::request_hash`] of the request the proof came with.
    pub request_hash: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// How far ahead of `now` a proof may be dated.
    pub clock_skew: u64,
}

/// Checks one kind of proof and the access rules about its identities.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The provider's name, as its proofs ([`Proof::provider`]) and its access rules name it.
    fn name(&self) -> &'static str;

    /// Checks `proof` (bound to `binding`) and names whose it is.
    async fn prove(&self, proof: &Proof, binding: &Binding<'_>) -> Result<Identity, IssueError>;

    /// Refuses a rule on this provider's identities that could match more than its writer meant.
    fn check_rule(&self, rule: &AccessRule) -> Result<(), String>;

    /// Where the user names it gives the callers of `rule` are unique (for AWS: the account of
    /// the rule's IAM users or roles, or IAM Identity Center's directory), or `None` where the
    /// rule's `user_name` qualifies them across scopes (for AWS: with `{account}`).
    /// [`Access::validate`] refuses user rules of different scopes.
    fn user_name_scope(&self, rule: &AccessRule) -> Option<String> {
        let _ = rule;
        Some(format!("the {} identity provider", self.name()))
    }

    /// The groups the provider's directory says `identity` is in, read now (never from the
    /// request). A directory that cannot be read is `Unavailable`: never fewer checks.
    async fn groups(&self, identity: &Identity, access: &Access) -> Result<Vec<String>, IssueError> {
        let _ = (identity, access);
        Err(IssueError::Configuration(format!(
            "the {} identity provider has no directory of groups: map no groups in its rules",
            self.name()
        )))
    }

    /// The names of the instance `identity` runs on, as `from` (of `rule`) selects it: refused
    /// when the instance is not running, not selected, or not the identity's own.
    async fn instance_names(&self, identity: &Identity, rule: &AccessRule, from: &FromInstance) -> Result<Vec<String>, IssueError> {
        let _ = (identity, rule, from);
        Err(IssueError::Configuration(format!(
            "the {} identity provider knows no instances: drop from_instance from its rules",
            self.name()
        )))
    }
}

/// The identity providers an environment accepts proofs from.
#[derive(Clone, Default)]
pub struct Providers(Vec<Arc<dyn IdentityProvider>>);

impl Providers {
    /// These providers and `provider`.
    pub fn with(mut self, provider: Arc<dyn IdentityProvider>) -> Self {
        self.0.push(provider);
        self
    }

    fn get(&self, name: &str) -> Option<&dyn IdentityProvider> {
        self.0.iter().find(|provider| provider.name() == name).map(|provider| provider.as_ref())
    }

    /// Who `proof` proves the caller is.
    pub async fn prove(&self, proof: &Proof, binding: &Binding<'_>) -> Result<Identity, IssueError> {
        let provider = self
            .get(proof.provider())
            .ok_or_else(|| IssueError::AccessDenied(format!("this deployment accepts no {} proofs of identity", proof.provider())))?;
        provider.prove(proof, binding).await
    }

    /// The groups `identity`'s provider says it is in.
    pub async fn groups(&self, identity: &Identity, access: &Access) -> Result<Vec<String>, IssueError> {
        match self.get(&identity.provider) {
            Some(provider) => provider.groups(identity, access).await,
            None => Err(IssueError::Configuration(format!("no identity provider {:?} to ask for groups", identity.provider))),
        }
    }

    /// The names of the instance `identity` runs on.
    pub async fn instance_names(&self, identity: &Identity, rule: &AccessRule, from: &FromInstance) -> Result<Vec<String>, IssueError> {
        match self.get(&identity.provider) {
            Some(provider) => provider.instance_names(identity, rule, from).await,
            None => Err(IssueError::Configuration(format!("no identity provider {:?} to ask for instances", identity.provider))),
        }
    }

    /// Where the provider's names for the callers of `rule` are unique (none for a provider not
    /// registered, whose rules `check_rule` refuses).
    pub fn user_name_scope(&self, rule: &AccessRule) -> Option<String> {
        self.get(&rule.provider).and_then(|provider| provider.user_name_scope(rule))
    }

    /// The provider's check of `rule`; a rule of a provider not registered is refused.
    pub fn check_rule(&self, rule: &AccessRule) -> Result<(), String> {
        match self.get(&rule.provider) {
            Some(provider) => provider.check_rule(rule),
            None => Err(format!(
                "it is about identities of provider {:?}, which this deployment does not know",
                request::truncate_for_message(&rule.provider)
            )),
        }
    }
}
