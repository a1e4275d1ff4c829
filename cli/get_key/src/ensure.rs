//! `get_key ensure`: runs on every ssh connection (through `Match exec`), so while the installed
//! certificate is good it must cost about what starting a process costs: files only, no network,
//! no AWS SDK.

use std::path::{Path, PathBuf};

use ssh_key::certificate::CertType;
use ssh_key::{Fingerprint, PublicKey};

use crate::verify;

/// `Ok` when the certificate next to `key` is a user certificate for that key, from a trusted CA
/// (when any is pinned), valid now and for at least `min_validity` more seconds; otherwise why not.
pub fn still_valid(key: &Path, min_validity: u64, trusted: &[Fingerprint], now: u64) -> Result<(), String> {
    let certificate_path = PathBuf::from(format!("{}-cert.pub", key.display()));
    let body = std::fs::read(&certificate_path).map_err(|_| format!("there is no certificate {}", certificate_path.display()))?;
    let certificate = verify::parse(&body).map_err(|err| err.to_string())?;
    if certificate.cert_type() != CertType::User {
        return Err("the installed certificate is not a user certificate".into());
    }
    // Its signature was verified when it was installed; whoever could have replaced it since can
    // write ~/.ssh. The CA is still checked against the pins: a rotation makes a new one due.
    let ca = certificate.signature_key().fingerprint(ssh_key::HashAlg::Sha256);
    if !trusted.is_empty() && !trusted.contains(&ca) {
        return Err(format!("the installed certificate is from a CA that is not pinned ({ca})"));
    }
    if certificate.valid_after() > now {
        return Err("the installed certificate is not valid yet".into());
    }
    let public_path = PathBuf::from(format!("{}.pub", key.display()));
    let public_key = std::fs::read_to_string(&public_path)
        .ok()
        .and_then(|line| PublicKey::from_openssh(line.trim()).ok())
        .ok_or_else(|| format!("cannot read the public key {}", public_path.display()))?;
    if public_key.key_data() != certificate.public_key() {
        return Err(format!("the installed certificate is for another key than {}", key.display()));
    }
    let left = certificate.valid_before().saturating_sub(now);
    if left < min_validity {
        return Err(format!("the installed certificate expires in {}", crate::human(left)));
    }
    Ok(())
}
