//! Where everything lives in the bucket. Environment and user names are validated before they
//! get here (see [`crate::request`]), so they cannot escape their prefix.

use crate::request::CertKind;

/// The environment's policy, written by `sshca init`.
pub fn policy(environment: &str) -> String {
    format!("config/{environment}.json")
}

/// The environment's serial counter (compare-and-swap on its entity tag).
pub fn serial_counter(environment: &str) -> String {
    format!("serial/{environment}.json")
}

/// The audit record of a lease of serials starting at `first` (see [`crate::serial`]).
pub fn serial_lease(environment: &str, first: u64) -> String {
    format!("{}{first:020}.json", serial_leases(environment))
}

pub fn serial_leases(environment: &str) -> String {
    format!("audit/{environment}/leases/")
}

/// The revocation records of an environment, one per version.
pub fn revocations(environment: &str) -> String {
    format!("audit/{environment}/revocations/")
}

pub fn revocation(environment: &str, version: u64) -> String {
    format!("{}{version:020}.json", revocations(environment))
}

/// The version a revocation record's name gives, if `key` is such a name exactly.
pub fn revocation_version(environment: &str, key: &str) -> Option<u64> {
    let version = key.strip_prefix(&revocations(environment))?.strip_suffix(".json")?.parse().ok()?;
    (key == revocation(environment, version)).then_some(version)
}

/// The environment's published OpenSSH KRL (sshd's `RevokedKeys`, clients' `RevokedHostKeys`).
pub fn krl(environment: &str) -> String {
    format!("krl/{environment}.krl")
}

/// A sealed (KMS-encrypted) Ed25519 CA private key; `id` tells the keys of one role apart, so a
/// rotation's next key never collides with the current one.
pub fn sealed_ca_key(environment: &str, role: &str, id: &str) -> String {
    format!("ca/{environment}/{role}-ed25519-{id}.sealed")
}

/// One audit record. Serials are zero-padded so that a day's records list in issuance order;
/// the date prefix lets a reader list only the days it wants.
pub fn audit_entry(environment: &str, date: (i32, u8, u8), serial: u64, event: &str) -> String {
    let (year, month, day) = date;
    format!("audit/{environment}/{year:04}/{month:02}/{day:02}/{serial:020}-{event}.json")
}

pub fn certificate(environment: &str, username: &str, serial: u64) -> String {
    format!("certs/{environment}/{username}/{serial:020}-cert.pub")
}

/// The public key cache: users' keys per environment, or for every environment when
/// `environment` is `None`; hosts' keys apart from users', so neither can replace the other's.
pub fn cached_public_key(environment: Option<&str>, kind: CertKind, name: &str) -> String {
    match (kind, environment) {
        (CertKind::User, Some(environment)) => format!("keys/{environment}/{name}.pub"),
        (CertKind::User, None) => format!("keys/_all/{name}.pub"),
        (CertKind::Host, environment) => format!("host-keys/{}/{name}.pub", environment.unwrap_or("_all")),
    }
}

/// The object that tells whether a bucket's server honours conditional creates; the audit
/// bucket's lies under `audit/`, where the signer may write.
pub fn conditional_create_probe(audit: bool) -> &'static str {
    if audit {
        "audit/_probe/conditional-create"
    } else {
        "probe/conditional-create"
    }
}
