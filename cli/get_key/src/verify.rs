//! Reading and checking a downloaded certificate before anything touches `~/.ssh`.

use std::path::{Path, PathBuf};

use ssh_key::{Certificate, Fingerprint, HashAlg, PublicKey};
use thiserror::Error;

/// A certificate may be dated a little in the future (clock skew, or a start the admin chose);
/// within this it counts as "valid soon".
pub const SOON_SECONDS: u64 = 300;

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("the link holds a public key, not a certificate: ask your admin for the certificate's link")]
    PublicKeyNotCertificate,
    #[error("the link does not hold an OpenSSH certificate ({0}): check that you copied the whole link")]
    NotACertificate(String),
    #[error("the certificate's signature does not verify: it was damaged or forged; do not use it and tell your admin")]
    BadSignature,
    #[error("the certificate was signed by CA {actual}, which is not a CA you trust ({trusted}): ask your admin which environment it belongs to, or pin the right CA")]
    UntrustedCa { actual: String, trusted: String },
    #[error("the certificate expired at {expired_at}: ask your admin for a new one")]
    Expired { expired_at: String },
    #[error("cannot read the pinned CA {source_name}: {message}")]
    BadPin { source_name: String, message: String },
}

/// When the certificate can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Now,
    /// Not yet valid; becomes valid within [`SOON_SECONDS`].
    Soon {
        in_seconds: u64,
    },
    /// Not yet valid, and not for a while (a start time the admin chose).
    Later {
        in_seconds: u64,
    },
}

/// Parses the downloaded text as an OpenSSH certificate.
pub fn parse(body: &[u8]) -> Result<Certificate, VerifyError> {
    let text = std::str::from_utf8(body).map_err(|_| VerifyError::NotACertificate("it is not text".into()))?;
    let text = text.trim();
    Certificate::from_openssh(text).map_err(|err| {
        if PublicKey::from_openssh(text).is_ok() {
            VerifyError::PublicKeyNotCertificate
        } else {
            VerifyError::NotACertificate(err.to_string())
        }
    })
}

/// Checks the signature, the CA (when `trusted` is not empty) and the validity window at `now`.
pub fn check(certificate: &Certificate, trusted: &[Fingerprint], now: u64) -> Result<Validity, VerifyError> {
    certificate.verify_signature().map_err(|_| VerifyError::BadSignature)?;
    let ca = certificate.signature_key().fingerprint(HashAlg::Sha256);
    if !trusted.is_empty() && !trusted.contains(&ca) {
        return Err(VerifyError::UntrustedCa {
            actual: ca.to_string(),
            trusted: trusted.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        });
    }
    if now >= certificate.valid_before() {
        return Err(VerifyError::Expired { expired_at: rfc3339(certificate.valid_before()) });
    }
    Ok(match certificate.valid_after().checked_sub(now) {
        None | Some(0) => Validity::Now,
        Some(wait) if wait <= SOON_SECONDS => Validity::Soon { in_seconds: wait },
        Some(wait) => Validity::Later { in_seconds: wait },
    })
}

/// Trusted CA fingerprints: from `SHA256:…` fingerprints, from OpenSSH public key lines (or files
/// of them, as in `TrustedUserCAKeys`), and from the default pin file when it exists.
pub fn trusted_fingerprints(keys: &[String], fingerprints: &[String], pin_file: Option<&Path>) -> Result<Vec<Fingerprint>, VerifyError> {
    let mut trusted = Vec::new();
    for fingerprint in fingerprints {
        trusted.push(fingerprint.parse::<Fingerprint>().map_err(|err| VerifyError::BadPin {
            source_name: fingerprint.clone(),
            message: format!("{err}: write it as ssh-keygen -l prints it, SHA256:…"),
        })?);
    }
    let mut sources: Vec<(String, String)> = Vec::new();
    for key in keys {
        if Path::new(key).is_file() {
            let text =
                std::fs::read_to_string(key).map_err(|err| VerifyError::BadPin { source_name: key.clone(), message: err.to_string() })?;
            sources.push((key.clone(), text));
        } else {
            sources.push(("--ca-key".into(), key.clone()));
        }
    }
    if let Some(path) = pin_file.filter(|p| p.exists()) {
        let text = std::fs::read_to_string(path)
            .map_err(|err| VerifyError::BadPin { source_name: path.display().to_string(), message: err.to_string() })?;
        sources.push((path.display().to_string(), text));
    }
    for (source_name, text) in sources {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            // `@cert-authority PATTERN KEY` lines of known_hosts are accepted too.
            let line = match line.strip_prefix("@cert-authority") {
                Some(rest) => rest.trim_start().split_once(' ').map(|(_, key)| key).unwrap_or(""),
                None => line,
            };
            let key = PublicKey::from_openssh(line).map_err(|err| VerifyError::BadPin {
                source_name: source_name.clone(),
                message: format!("{err}: each line must be an OpenSSH public key (as `sshca ca-key ENV` prints it)"),
            })?;
            trusted.push(key.fingerprint(HashAlg::Sha256));
        }
    }
    Ok(trusted)
}

/// `$XDG_CONFIG_HOME/sshca/trusted_ca.pub` (or `~/.config/…`): CA keys get_key trusts by default.
pub fn default_pin_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("sshca").join("trusted_ca.pub"))
}

pub fn rfc3339(unix: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix.min(i64::MAX as u64) as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "forever".to_owned())
}
