//! Building and signing a certificate with an asynchronous CA signer.

use std::sync::Mutex;

use rand::rngs::OsRng;
use rand::RngCore;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::public::KeyData;
use ssh_key::{Certificate, PublicKey, Signature};

use crate::ca::Signer;
use crate::error::IssueError;
use crate::policy::Plan;
use crate::request::CertKind;

/// Builds and signs the certificate. `ssh_key`'s builder wants a synchronous signer and the CA
/// signs asynchronously (a KMS call), so the certificate is built twice with the same nonce: once
/// to learn the bytes to sign, and once more with their signature. This keeps the request on its
/// task (no blocking thread waiting on the runtime).
pub(crate) async fn sign_certificate(
    ca: &dyn Signer,
    subject: &PublicKey,
    kind: CertKind,
    plan: &Plan,
    serial: u64,
    key_id: &str,
) -> Result<Certificate, IssueError> {
    let mut nonce = [0u8; 32];
    OsRng.fill_bytes(&mut nonce);
    let build = |signer: &Presigned| -> ssh_key::Result<Certificate> {
        let mut builder = Builder::new(nonce, subject.key_data().clone(), plan.valid_after, plan.valid_before)?;
        builder.serial(serial)?.key_id(key_id)?.comment(key_id)?.cert_type(match kind {
            CertKind::User => CertType::User,
            CertKind::Host => CertType::Host,
        })?;
        for principal in &plan.principals {
            builder.valid_principal(principal)?;
        }
        for (name, value) in &plan.extensions {
            builder.extension(name, value)?;
        }
        for (name, value) in &plan.critical_options {
            builder.critical_option(name, value)?;
        }
        builder.sign(signer)
    };
    let invalid = |err: ssh_key::Error| IssueError::InvalidRequest(format!("cannot build the certificate: {err}"));
    let learn = Presigned { public_key: ca.public_key().clone(), message: Mutex::new(None), signature: None };
    let learned = build(&learn);
    let message = match (learn.message.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()), learned) {
        (Some(message), _) => message,
        (None, Err(err)) => return Err(invalid(err)),
        (None, Ok(_)) => return Err(IssueError::Unavailable("the certificate was built without its signed bytes".into())),
    };
    let signature = ca.sign(&message).await?;
    let sign = Presigned { public_key: ca.public_key().clone(), message: Mutex::new(Some(message)), signature: Some(signature) };
    build(&sign).map_err(|err| IssueError::Unavailable(format!("signing failed: {err}")))
}

/// The `signature::Signer` that `ssh_key`'s builder calls: without a signature it keeps the bytes
/// to sign and refuses; with one it hands it out for exactly those bytes.
struct Presigned {
    public_key: KeyData,
    message: Mutex<Option<Vec<u8>>>,
    signature: Option<Signature>,
}

impl signature::Signer<Signature> for Presigned {
    fn try_sign(&self, message: &[u8]) -> Result<Signature, signature::Error> {
        let mut expected = self.message.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &self.signature {
            Some(signature) if expected.as_deref() == Some(message) => Ok(signature.clone()),
            Some(_) => Err(signature::Error::new()),
            None => {
                *expected = Some(message.to_vec());
                Err(signature::Error::new())
            }
        }
    }
}

impl From<&Presigned> for KeyData {
    fn from(signer: &Presigned) -> KeyData {
        signer.public_key.clone()
    }
}
