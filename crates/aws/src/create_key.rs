//! Creating an environment's CA keys in KMS (`sshca init --create-keys`, `sshca rotate`).

use std::fmt;
use std::str::FromStr;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use rand::rngs::OsRng;
use ssh_key::{Algorithm, PrivateKey};
use sshca_core::error::IssueError;
use sshca_core::layout;
use sshca_core::policy::CaKeyRef;
use sshca_core::request::CertKind;
use sshca_core::store::{Condition, Store};

use crate::kms::sealing_context;
use crate::Aws;

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
