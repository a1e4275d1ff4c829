//! What unit tests of the books share: an environment on the in-memory store, signed by a CA key
//! generated in memory.

use std::sync::Arc;

use async_trait::async_trait;
use rand::rngs::OsRng;
use ssh_key::{Algorithm, PrivateKey};

use crate::ca::{CaKeys, LocalSigner, Signer};
use crate::error::{CaError, IssueError};
use crate::identity::{IdentityVerifier, ProvenIdentity, SignedProof};
use crate::issuer::Issuer;
use crate::policy::{CaKeyRef, Policy};
use crate::request::CertKind;
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

/// Nobody proves anything here: the environment serves unproven requests.
struct Nobody;

#[async_trait]
impl IdentityVerifier for Nobody {
    async fn caller_identity(&self, _: &SignedProof) -> Result<ProvenIdentity, IssueError> {
        Err(IssueError::AccessDenied("no STS here".into()))
    }
}

/// CA keys that load as one key generated in memory, whatever the reference.
pub fn ca_keys() -> Arc<dyn CaKeys> {
    Arc::new(OneKey(Arc::new(LocalSigner::new(PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap()))))
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
    let issuer = Issuer::new(store.clone(), audit, ca_keys(), Arc::new(Nobody));
    (store, issuer)
}
