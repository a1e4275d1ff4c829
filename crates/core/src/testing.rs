//! What unit tests share: an environment on the in-memory store, signed by a CA key generated in
//! memory, with an identity provider that stands in for AWS's.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rand::rngs::OsRng;
use ssh_key::{Algorithm, PrivateKey};
use sshca_proto::proof::{IdentityProof, AUDIENCE_HEADER, AWS_PROVIDER, REQUEST_HASH_HEADER};

use crate::access::AccessRule;
use crate::ca::{CaKeys, LocalSigner, Signer};
use crate::environment::Environment;
use crate::error::{CaError, IssueError};
use crate::identity::{Binding, Identity, IdentityProvider, Proof, Providers};
use crate::issuer::Issuer;
use crate::policy::{CaKeyRef, Policy};
use crate::request::{request_hash, CertKind, SignRequest};
use crate::store::memory::MemoryStore;
use crate::store::{Condition, Store};

/// One CA key, generated in memory, for every environment and role.
struct OneKey(Arc<LocalSigner>);

#[async_trait]
impl CaKeys for OneKey {
    async fn load(&self, _: &str, _: CertKind, _: &CaKeyRef) -> Result<Arc<dyn Signer>, CaError> {
        Ok(self.0.clone())
    }
}

/// CA keys that load as one key generated in memory, whatever the reference.
pub fn ca_keys() -> Arc<dyn CaKeys> {
    Arc::new(OneKey(Arc::new(LocalSigner::new(PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()))))
}

/// Stands in for the AWS provider: a proof names `caller` when its binding headers name the
/// environment's audience and the request's hash (the signature is the real provider's to check).
/// Without a caller it proves nobody. Every rule's pattern is accepted.
struct StandIn(Option<Identity>);

#[async_trait]
impl IdentityProvider for StandIn {
    fn name(&self) -> &'static str {
        AWS_PROVIDER
    }

    async fn prove(&self, proof: &Proof, binding: &Binding<'_>) -> Result<Identity, IssueError> {
        let Proof::Aws(proof) = proof;
        let header = |name: &str| proof.headers.get(name).map(String::as_str);
        if header(AUDIENCE_HEADER) != Some(binding.audience) {
            return Err(IssueError::AccessDenied("the proof was made for another audience".into()));
        }
        if header(REQUEST_HASH_HEADER) != Some(binding.request_hash) {
            return Err(IssueError::AccessDenied("the proof is bound to another request".into()));
        }
        self.0.clone().ok_or_else(|| IssueError::AccessDenied("nobody is proven here".into()))
    }

    fn check_rule(&self, _: &AccessRule) -> Result<(), String> {
        Ok(())
    }
}

/// Providers that prove nobody.
pub fn providers() -> Providers {
    Providers::default().with(Arc::new(StandIn(None)))
}

/// Providers whose every well-bound proof is `caller`'s.
pub fn proving(caller: Identity) -> Providers {
    Providers::default().with(Arc::new(StandIn(Some(caller))))
}

/// A proof the stand-in accepts for `request` in an environment of audience `audience`.
pub fn proof(request: &SignRequest, audience: &str) -> Proof {
    let headers = [(AUDIENCE_HEADER, audience.to_owned()), (REQUEST_HASH_HEADER, request_hash(request))];
    Proof::Aws(IdentityProof { headers: headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(), body: String::new() })
}

/// The identity AWS's provider gives the caller of `arn`: an assumed role's session is of the
/// role (its unique id is `AROA` + the role's name up to its second `_`), a user is `AIDA`.
pub fn aws_identity(arn: &str) -> Identity {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let (user, session, principal_id) = if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let (role, session) = rest.split_once('/').unwrap();
        (Some(role.to_owned()), Some(session.to_owned()), format!("AROA{}", role.split('_').take(2).collect::<Vec<_>>().join("_")))
    } else {
        (resource.strip_prefix("user/").map(str::to_owned), None, "AIDA".to_owned())
    };
    let subject = match &session {
        Some(session) => format!("{principal_id}:{session}"),
        None => principal_id.clone(),
    };
    Identity {
        provider: AWS_PROVIDER.into(),
        name: arn.into(),
        subject,
        principal_id,
        user,
        session,
        attributes: BTreeMap::from([("account".to_owned(), "111111111111".to_owned())]),
        groups: None,
        instance_names: None,
    }
}

/// An environment on `store` and `audit` with [`ca_keys`] and `providers`.
pub fn environment(store: Arc<dyn Store>, audit: Arc<dyn Store>, providers: Providers) -> Environment {
    Environment::new(store, audit, ca_keys(), providers)
}

/// Environment `staging` (principal `deploy`, unproven requests served) whose serials 1 to 9 were
/// handed out, with its audit trail in `audit`.
pub async fn setup(audit: Arc<dyn Store>) -> (Arc<MemoryStore>, Issuer) {
    let store = Arc::new(MemoryStore::default());
    let mut policy = Policy::new("staging");
    policy.user_ca = Some(CaKeyRef::Kms { key_id: "test".into() });
    policy.default_principals = vec!["deploy".into()];
    policy.allowed_principals = vec!["deploy".into()];
    policy.access.audience = "sshca:test:staging".into();
    policy.access.allow_unproven = true;
    store.put(&crate::layout::policy("staging"), serde_json::to_vec(&policy).unwrap(), Condition::Always).await.unwrap();
    store.put(&crate::layout::serial_counter("staging"), br#"{"next": 10}"#.to_vec(), Condition::Always).await.unwrap();
    let issuer = Issuer::new(environment(store.clone(), audit, providers()));
    (store, issuer)
}
