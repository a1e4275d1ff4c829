//! CA keys in KMS: asymmetric KMS keys (the private key never leaves KMS), Ed25519 keys sealed by
//! KMS (decrypted once per warm container), and the creation of both.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use sha2::Digest;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, PrivateKey, Signature};
use sshca_core::ca::{CaKeys, LocalSigner, Signer};
use sshca_core::error::CaError;
use sshca_core::policy::CaKeyRef;
use sshca_core::request::CertKind;
use sshca_core::store::Store;
use tokio::sync::Mutex;

use crate::error::kms_error;
use crate::key_ownership::KeyOwnership;

/// Encryption context binding a sealed CA key to its environment: KMS refuses to decrypt it
/// under any other.
pub fn sealing_context(environment: &str) -> HashMap<String, String> {
    HashMap::from([("sshca:environment".to_owned(), environment.to_owned()), ("sshca:purpose".to_owned(), "ca-key".to_owned())])
}

/// A signing key that lives in KMS.
pub struct KmsSigner {
    kms: aws_sdk_kms::Client,
    key_id: String,
    public_key: KeyData,
    algorithm: SigningAlgorithmSpec,
}

impl KmsSigner {
    /// Reads the key's public half and checks that it can sign SSH certificates.
    pub async fn connect(kms: aws_sdk_kms::Client, key_id: &str) -> Result<Self, CaError> {
        let output = kms.get_public_key().key_id(key_id).send().await.map_err(|err| kms_error(key_id, err))?;
        let usage = output.key_usage().cloned().unwrap_or(KeyUsageType::SignVerify);
        if usage != KeyUsageType::SignVerify {
            return Err(CaError::NotSignVerify { key_id: key_id.to_owned(), usage: usage.to_string() });
        }
        let spec = output
            .key_spec()
            .cloned()
            .ok_or_else(|| CaError::UnsupportedSpec { key_id: key_id.to_owned(), spec: "(none given)".into() })?;
        let der = output.public_key().map(Blob::as_ref).unwrap_or_default();
        let (public_key, algorithm) = public_key_from_der(key_id, &spec, der)?;
        Ok(Self { kms, key_id: key_id.to_owned(), public_key, algorithm })
    }
}

/// The SSH public key and KMS signing algorithm for a KMS key spec. `ssh-rsa` (SHA-1) is never
/// used: RSA CAs sign `rsa-sha2-512`.
fn public_key_from_der(key_id: &str, spec: &KeySpec, der: &[u8]) -> Result<(KeyData, SigningAlgorithmSpec), CaError> {
    use p256::pkcs8::DecodePublicKey;
    let malformed = |err: String| CaError::Kms(format!("public key of {key_id:?} is malformed: {err}"));
    match spec {
        KeySpec::EccNistP256 => {
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| malformed(e.to_string()))?;
            Ok((KeyData::Ecdsa(EcdsaPublicKey::from(key)), SigningAlgorithmSpec::EcdsaSha256))
        }
        KeySpec::EccNistP384 => {
            let key = p384::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| malformed(e.to_string()))?;
            Ok((KeyData::Ecdsa(EcdsaPublicKey::from(key)), SigningAlgorithmSpec::EcdsaSha384))
        }
        KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(|e| malformed(e.to_string()))?;
            let key = RsaPublicKey::try_from(key).map_err(|e| malformed(e.to_string()))?;
            Ok((KeyData::Rsa(key), SigningAlgorithmSpec::RsassaPkcs1V15Sha512))
        }
        KeySpec::EccNistEdwards25519 => {
            // SubjectPublicKeyInfo of Ed25519 (RFC 8410) is a fixed 12-byte prefix + the 32-byte key.
            const PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
            let raw = der
                .strip_prefix(&PREFIX[..])
                .and_then(|raw| <[u8; 32]>::try_from(raw).ok())
                .ok_or_else(|| malformed("not an Ed25519 SubjectPublicKeyInfo".into()))?;
            Ok((KeyData::Ed25519(Ed25519PublicKey(raw)), SigningAlgorithmSpec::Ed25519Sha512))
        }
        other => Err(CaError::UnsupportedSpec { key_id: key_id.to_owned(), spec: other.to_string() }),
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn public_key(&self) -> &KeyData {
        &self.public_key
    }

    async fn sign(&self, message: &[u8]) -> Result<Signature, CaError> {
        // ECDSA and RSA sign a digest computed here, so that certificates of any size fit
        // (KMS takes at most 4 KiB of RAW message); Ed25519 in KMS only signs RAW messages.
        let (payload, message_type) = match self.algorithm {
            SigningAlgorithmSpec::EcdsaSha256 => (sha2::Sha256::digest(message).to_vec(), MessageType::Digest),
            SigningAlgorithmSpec::EcdsaSha384 => (sha2::Sha384::digest(message).to_vec(), MessageType::Digest),
            SigningAlgorithmSpec::RsassaPkcs1V15Sha512 => (sha2::Sha512::digest(message).to_vec(), MessageType::Digest),
            _ => (message.to_vec(), MessageType::Raw),
        };
        let output = self
            .kms
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(payload))
            .message_type(message_type)
            .signing_algorithm(self.algorithm.clone())
            .send()
            .await
            .map_err(|err| kms_error(&self.key_id, err))?;
        let signature = output.signature().map(Blob::as_ref).unwrap_or_default();
        ssh_signature(self.public_key.algorithm(), signature)
    }
}

/// Converts a KMS signature to SSH's wire form: ECDSA arrives as DER `SEQUENCE{r,s}` and SSH wants
/// `mpint r || mpint s`; RSA PKCS#1 v1.5 and Ed25519 bytes are used as they are.
fn ssh_signature(algorithm: Algorithm, kms_signature: &[u8]) -> Result<Signature, CaError> {
    let bad = |err: String| CaError::BadSignature(err);
    match algorithm {
        Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 } => {
            let signature = p256::ecdsa::Signature::from_der(kms_signature).map_err(|e| bad(e.to_string()))?;
            Signature::try_from(signature).map_err(|e| bad(e.to_string()))
        }
        Algorithm::Ecdsa { curve: EcdsaCurve::NistP384 } => {
            let signature = p384::ecdsa::Signature::from_der(kms_signature).map_err(|e| bad(e.to_string()))?;
            Signature::try_from(signature).map_err(|e| bad(e.to_string()))
        }
        Algorithm::Rsa { .. } => {
            Signature::new(Algorithm::Rsa { hash: Some(HashAlg::Sha512) }, kms_signature).map_err(|e| bad(e.to_string()))
        }
        Algorithm::Ed25519 => Signature::new(Algorithm::Ed25519, kms_signature).map_err(|e| bad(e.to_string())),
        other => Err(bad(format!("unexpected CA algorithm {other}"))),
    }
}

/// A CA key as loaded: for an environment, in a role.
type LoadedKey = (String, CertKind, CaKeyRef);

/// The production [`CaKeys`]: KMS keys and KMS-sealed keys in the bucket. A CA key's public half
/// never changes for a given reference, so each is loaded once per container and kept.
pub struct KmsCaKeys {
    kms: aws_sdk_kms::Client,
    ownership: KeyOwnership,
    store: Arc<dyn Store>,
    loaded: Mutex<HashMap<LoadedKey, Arc<dyn Signer>>>,
}

impl KmsCaKeys {
    pub fn new(kms: aws_sdk_kms::Client, sts: aws_sdk_sts::Client, store: Arc<dyn Store>) -> Self {
        Self { ownership: KeyOwnership::new(kms.clone(), sts), kms, store, loaded: Mutex::new(HashMap::new()) }
    }

    async fn unseal(&self, environment: &str, object: &str) -> Result<PrivateKey, CaError> {
        let sealed_error = |message: String| CaError::Sealed { object: object.to_owned(), message };
        let sealed = self.store.get(object).await.map_err(|err| sealed_error(err.to_string()))?.ok_or_else(|| {
            sealed_error("no such object in the bucket: run `sshca init ENV --create-keys --key-spec ED25519_SEALED` again".into())
        })?;
        let output = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(sealed.body))
            .set_encryption_context(Some(sealing_context(environment)))
            .send()
            .await
            .map_err(|err| sealed_error(aws_sdk_kms::error::DisplayErrorContext(&err).to_string()))?;
        // the sealing key too must be this environment's, in this account
        self.ownership.check(output.key_id().unwrap_or_default(), environment, None).await?;
        let plaintext = output.plaintext().map(Blob::as_ref).unwrap_or_default();
        let key = PrivateKey::from_bytes(plaintext).map_err(|err| sealed_error(err.to_string()))?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(sealed_error(format!("it holds a {} key, not Ed25519", key.algorithm())));
        }
        Ok(key)
    }
}

#[async_trait]
impl CaKeys for KmsCaKeys {
    async fn load(&self, environment: &str, role: CertKind, key: &CaKeyRef) -> Result<Arc<dyn Signer>, CaError> {
        let cache_key = (environment.to_owned(), role, key.clone());
        if let Some(signer) = self.loaded.lock().await.get(&cache_key) {
            return Ok(signer.clone());
        }
        let signer: Arc<dyn Signer> = match key {
            CaKeyRef::Kms { key_id } => {
                let signer = KmsSigner::connect(self.kms.clone(), key_id).await?;
                self.ownership.check(key_id, environment, Some(role.as_str())).await?;
                Arc::new(signer)
            }
            CaKeyRef::SealedEd25519 { object } => Arc::new(LocalSigner::new(self.unseal(environment, object).await?)),
        };
        self.loaded.lock().await.insert(cache_key, signer.clone());
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_ecdsa_signatures_become_ssh_signatures() {
        use p256::ecdsa::signature::Signer as _;
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let message = b"to be signed";
        let der: p256::ecdsa::DerSignature = key.sign(message);
        let signature = ssh_signature(Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }, der.as_bytes()).unwrap();
        let public = KeyData::Ecdsa(EcdsaPublicKey::from(*key.verifying_key()));
        signature::Verifier::verify(&public, message, &signature).unwrap();
        assert!(ssh_signature(Algorithm::Ecdsa { curve: EcdsaCurve::NistP256 }, b"garbage").is_err());
    }

    #[test]
    fn ed25519_spki_is_read() {
        let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der.extend([9u8; 32]);
        let (key, algorithm) = public_key_from_der("k", &KeySpec::EccNistEdwards25519, &der).unwrap();
        assert_eq!(key, KeyData::Ed25519(Ed25519PublicKey([9u8; 32])));
        assert_eq!(algorithm, SigningAlgorithmSpec::Ed25519Sha512);
        assert!(public_key_from_der("k", &KeySpec::EccNistEdwards25519, &der[..40]).is_err());
    }
}
