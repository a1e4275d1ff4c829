//! CA keys behind the [`Signer`] trait, found by [`CaKeys`]; a key held in memory is a
//! [`LocalSigner`]. Where keys live (KMS, sealed objects) is the providers' business.

use std::sync::Arc;

use async_trait::async_trait;
use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, Signature};

use crate::error::CaError;
use crate::policy::CaKeyRef;
use crate::request::CertKind;

/// A CA key: its public half, and a way to sign a certificate's to-be-signed bytes.
#[async_trait]
pub trait Signer: Send + Sync {
    fn public_key(&self) -> &KeyData;
    async fn sign(&self, message: &[u8]) -> Result<Signature, CaError>;
}

/// Finds the [`Signer`] for a CA key reference of `environment`'s user or host CA.
#[async_trait]
pub trait CaKeys: Send + Sync {
    async fn load(&self, environment: &str, role: CertKind, key: &CaKeyRef) -> Result<Arc<dyn Signer>, CaError>;
}

/// An Ed25519 CA key held in memory after KMS unsealed it.
pub struct LocalSigner {
    key: PrivateKey,
    public_key: KeyData,
}

impl LocalSigner {
    pub fn new(key: PrivateKey) -> Self {
        let public_key = key.public_key().key_data().clone();
        Self { key, public_key }
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn public_key(&self) -> &KeyData {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> Result<Signature, CaError> {
        signature::Signer::try_sign(&self.key, message).map_err(|err| CaError::BadSignature(err.to_string()))
    }
}
