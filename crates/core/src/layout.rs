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

/// An environment's whole audit trail (issuance records by day, leases, revocations).
pub fn audit_trail(environment: &str) -> String {
    format!("audit/{environment}/")
}

/// The issuance records of one day.
pub fn audit_day(environment: &str, (year, month, day): (i32, u8, u8)) -> String {
    format!("{}{year:04}/{month:02}/{day:02}/", audit_trail(environment))
}

/// One audit record. Serials are zero-padded so that a day's records list in issuance order;
/// the date prefix lets a reader list only the days it wants.
pub fn audit_entry(environment: &str, date: (i32, u8, u8), serial: u64, event: &str) -> String {
    format!("{}{serial:020}-{event}.json", audit_day(environment, date))
}

/// Whether `key` is one of the environment's dated issuance records (not a lease, a revocation
/// or a probe).
pub fn is_dated_record(environment: &str, key: &str) -> bool {
    key.strip_prefix(&audit_trail(environment)).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// The serial a dated issuance record's name gives (`…/<serial>-<event>.json`).
pub fn dated_record_serial(environment: &str, key: &str) -> Option<u64> {
    let name = key.rsplit('/').next().filter(|_| is_dated_record(environment, key))?;
    name.split_once('-')?.0.parse().ok()
}

/// Where an environment's certificate objects live.
pub fn certificates(environment: &str) -> String {
    format!("certs/{environment}/")
}

pub fn certificate(environment: &str, username: &str, serial: u64) -> String {
    format!("{}{username}/{serial:020}-cert.pub", certificates(environment))
}

/// The user and serial a certificate object's name gives.
pub fn certificate_of(environment: &str, key: &str) -> Option<(String, u64)> {
    let (user, file) = key.strip_prefix(&certificates(environment))?.rsplit_once('/')?;
    Some((user.to_owned(), file.strip_suffix("-cert.pub")?.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let record = audit_entry("staging", (2026, 12, 1), 42, "issued");
        assert_eq!(record, "audit/staging/2026/12/01/00000000000000000042-issued.json");
        assert!(is_dated_record("staging", &record) && !is_dated_record("staging", &serial_lease("staging", 1)));
        assert_eq!(dated_record_serial("staging", &record), Some(42));
        assert_eq!(certificate_of("staging", &certificate("staging", "jane", 7)), Some(("jane".to_owned(), 7)));
        assert_eq!(revocation_version("staging", &revocation("staging", u64::MAX)), Some(u64::MAX));
        assert_eq!(revocation_version("staging", "audit/staging/revocations/+5.json"), None);
    }
}
