//! `sshca doctor`: what is wrong with a server's sshd against its environment, why it matters,
//! and the line or command that fixes it. The failures that hurt are found here before a login
//! fails: a missing next CA key before a promotion, an expired host certificate, a KRL that stopped
//! refreshing, plain keys still accepted.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};

pub use sshca_proto::time::human_duration_approx as human;

use crate::sshd::EffectiveConfig;

/// The CA keys an environment's servers must trust, each with its role (`current`, `next`,
/// `previous`).
#[derive(Debug, Clone, Default)]
pub struct CaKeys {
    pub user: Vec<(String, PublicKey)>,
    pub host: Vec<(String, PublicKey)>,
}

impl CaKeys {
    /// The role `sshca` writes in a CA key's comment: `sshca ENV user CA (next)`.
    pub fn role_of(key: &PublicKey) -> String {
        let comment = key.comment();
        ["next", "previous"].into_iter().find(|role| comment.ends_with(&format!("({role})"))).unwrap_or("current").to_owned()
    }

    /// Reads what `sshca config ENV --only user-ca-keys` and `--only known-hosts` print: user CA
    /// lines, and `@cert-authority PATTERN KEY` lines for the host CA.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = CaKeys::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (host, key_text) = match line.strip_prefix("@cert-authority ") {
                Some(rest) => (true, rest.trim_start().split_once(' ').map(|(_, key)| key).unwrap_or_default()),
                None => (false, line),
            };
            let key = PublicKey::from_openssh(key_text).map_err(|err| format!("{line:?} is not a CA key line: {err}"))?;
            let role = Self::role_of(&key);
            if host {
                keys.host.push((role, key))
            } else {
                keys.user.push((role, key))
            }
        }
        Ok(keys)
    }
}

/// What the server should look like beyond the CA keys.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub environment: String,
    /// Names the host certificate must cover.
    pub names: Vec<String>,
    /// The host certificate must have more than this left (seconds): the renewal window.
    pub renew_within: u64,
    /// The KRL must have been refreshed within this (seconds).
    pub krl_max_age: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The sshd keyword the finding is about.
    pub check: &'static str,
    pub healthy: bool,
    /// What is there, or what is wrong.
    pub what: String,
    /// Why it matters (empty when healthy).
    pub why: String,
    /// The line or command that fixes it (empty when healthy).
    pub fix: String,
}

fn good(check: &'static str, what: String) -> Finding {
    Finding { check, healthy: true, what, why: String::new(), fix: String::new() }
}

fn bad(check: &'static str, what: String, why: &str, fix: String) -> Finding {
    Finding { check, healthy: false, what, why: why.to_owned(), fix }
}

/// Every check, healthy ones included, in a fixed order.
pub fn check(config: &EffectiveConfig, cas: &CaKeys, expect: &Expectations, now: u64) -> Vec<Finding> {
    let mut findings = trusted_user_ca_keys(config, cas, expect);
    findings.extend(host_certificates(config, cas, expect, now));
    findings.push(revoked_keys(config, expect, now));
    findings.push(match config.get("authorizedkeysfile") {
        None => good("AuthorizedKeysFile", "none: only certificates log in".into()),
        Some(files) => bad(
            "AuthorizedKeysFile",
            format!("{files}: plain keys listed there are accepted"),
            "keys in authorized_keys files log in outside sshca: no expiry, no audit record, no revocation",
            "AuthorizedKeysFile none".into(),
        ),
    });
    findings.push(match config.get("passwordauthentication") {
        Some("no") => good("PasswordAuthentication", "no".into()),
        other => bad(
            "PasswordAuthentication",
            other.unwrap_or("yes").to_owned(),
            "passwords can be guessed and phished, and bypass certificates altogether",
            "PasswordAuthentication no".into(),
        ),
    });
    findings
}

fn trusted_user_ca_keys(config: &EffectiveConfig, cas: &CaKeys, expect: &Expectations) -> Vec<Finding> {
    const CHECK: &str = "TrustedUserCAKeys";
    let target = config.get("trustedusercakeys").unwrap_or("/etc/ssh/sshca_user_ca.pub");
    let fix = format!("sshca config {} --only user-ca-keys > {target}", expect.environment);
    let Some(file) = config.get("trustedusercakeys") else {
        return vec![bad(
            CHECK,
            "not set".into(),
            "no sshca certificate can log in to this server",
            format!("{fix}; then add `TrustedUserCAKeys /etc/ssh/sshca_user_ca.pub` to sshd_config"),
        )];
    };
    let trusted: Vec<PublicKey> = match std::fs::read_to_string(file) {
        Ok(text) => text.lines().filter_map(|line| PublicKey::from_openssh(line.trim()).ok()).collect(),
        Err(err) => return vec![bad(CHECK, format!("{file} cannot be read ({err})"), "sshd refuses every certificate", fix)],
    };
    let mut findings = Vec::new();
    for (role, key) in &cas.user {
        if trusted.iter().any(|t| t.key_data() == key.key_data()) {
            continue;
        }
        let why = if role == "next" {
            "after `sshca rotate --promote` every new certificate is signed by it: this server would lock everyone out"
        } else {
            "certificates signed by it are refused here"
        };
        findings.push(bad(CHECK, format!("{file} lacks the {role} user CA key {}", key.fingerprint(HashAlg::Sha256)), why, fix.clone()));
    }
    if findings.is_empty() {
        let roles: Vec<&str> = cas.user.iter().map(|(role, _)| role.as_str()).collect();
        findings.push(good(CHECK, format!("{file} trusts the {} user CA key(s)", roles.join(", "))));
    }
    findings
}

fn host_certificates(config: &EffectiveConfig, cas: &CaKeys, expect: &Expectations, now: u64) -> Vec<Finding> {
    const CHECK: &str = "HostCertificate";
    let renew = format!(
        "sshca renew-host -e {} -n {} --force (and check its timer: systemctl status sshca-renew-host.timer)",
        expect.environment,
        if expect.names.is_empty() { "HOST_NAMES".to_owned() } else { expect.names.join(",") }
    );
    let files = config.all("hostcertificate");
    if files.is_empty() {
        return vec![bad(
            CHECK,
            "not set".into(),
            "clients cannot check this server against the host CA, and fall back to trust-on-first-use prompts",
            format!("{renew}; then add `HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub` to sshd_config"),
        )];
    }
    let host_keys: Vec<PublicKey> = config.all("hostkey").iter().filter_map(|path| host_public_key(Path::new(path))).collect();
    files
        .iter()
        .map(|file| match host_certificate(file, cas, &host_keys, expect, now) {
            Ok(what) => good(CHECK, what),
            Err((what, why)) => bad(CHECK, format!("{file}: {what}"), why, renew.clone()),
        })
        .collect()
}

fn host_certificate(
    file: &str,
    cas: &CaKeys,
    host_keys: &[PublicKey],
    expect: &Expectations,
    now: u64,
) -> Result<String, (String, &'static str)> {
    const UNCHECKED: &str = "clients cannot check this server, and fall back to trust-on-first-use prompts";
    let text = std::fs::read_to_string(file).map_err(|err| (format!("cannot be read ({err})"), UNCHECKED))?;
    let certificate = Certificate::from_openssh(text.trim()).map_err(|err| (format!("is not a certificate ({err})"), UNCHECKED))?;
    if certificate.cert_type() != CertType::Host {
        return Err(("is a user certificate, not a host certificate".into(), UNCHECKED));
    }
    let ca = certificate.signature_key();
    if !cas.host.iter().any(|(_, key)| key.key_data() == ca) {
        return Err((
            format!("is signed by another CA ({}), not the environment's host CA", ca.fingerprint(HashAlg::Sha256)),
            "clients that trust the environment's host CA refuse this server",
        ));
    }
    if certificate.verify_signature().is_err() {
        return Err(("has a signature that does not verify".into(), UNCHECKED));
    }
    if !host_keys.iter().any(|key| key.key_data() == certificate.public_key()) {
        return Err(("certifies a key that is none of this server's HostKeys".into(), UNCHECKED));
    }
    let missing: Vec<&String> = expect.names.iter().filter(|name| !certificate.valid_principals().contains(name)).collect();
    if !missing.is_empty() {
        return Err((
            format!("does not cover {missing:?} (it names {:?})", certificate.valid_principals()),
            "clients reaching the server by those names refuse it",
        ));
    }
    let valid_before = certificate.valid_before();
    if valid_before <= now {
        return Err((format!("expired {} ago", human(now - valid_before)), UNCHECKED));
    }
    let left = valid_before - now;
    if left <= expect.renew_within {
        return Err((
            format!("expires in {}, within the renewal window ({}): renewal is not happening", human(left), human(expect.renew_within)),
            "when it expires, clients fall back to trust-on-first-use prompts",
        ));
    }
    Ok(format!("{file}: {:?}, signed by the host CA, {} left", certificate.valid_principals(), human(left)))
}

/// A HostKey's public key: from `<key>.pub`, else from the private key itself.
fn host_public_key(private: &Path) -> Option<PublicKey> {
    let public = PathBuf::from(format!("{}.pub", private.display()));
    std::fs::read_to_string(public)
        .ok()
        .and_then(|text| PublicKey::from_openssh(text.trim()).ok())
        .or_else(|| PrivateKey::read_openssh_file(private).ok().map(|key| key.public_key().clone()))
}

fn revoked_keys(config: &EffectiveConfig, expect: &Expectations, now: u64) -> Finding {
    const CHECK: &str = "RevokedKeys";
    let target = config.get("revokedkeys").unwrap_or("/etc/ssh/sshca_revoked.krl");
    let refresh = format!("sshca krl {} -o {target} (and check its timer: systemctl status sshca-krl.timer)", expect.environment);
    let Some(file) = config.get("revokedkeys") else {
        return bad(
            CHECK,
            "not set".into(),
            "revoked certificates still log in until they expire",
            format!("{refresh}; then add `RevokedKeys /etc/ssh/sshca_revoked.krl` to sshd_config"),
        );
    };
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(err) => {
            return bad(CHECK, format!("{file} cannot be read ({err})"), "sshd refuses every key while its KRL is missing", refresh)
        }
    };
    let summary = match sshca_proto::krl::summarize(&bytes) {
        Ok(summary) => summary,
        Err(why) => {
            return bad(CHECK, format!("{file} is not a KRL: {why}"), "sshd refuses every key while its KRL is unreadable", refresh)
        }
    };
    let refreshed = std::fs::metadata(file).and_then(|m| m.modified()).ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
    let age = now.saturating_sub(refreshed.map(|d| d.as_secs()).unwrap_or(0));
    if age > expect.krl_max_age {
        return bad(
            CHECK,
            format!("{file} was last refreshed {} ago (more than {})", human(age), human(expect.krl_max_age)),
            "certificates revoked since then still log in here",
            refresh,
        );
    }
    good(CHECK, format!("{file}: version {}, {} revoked, refreshed {} ago", summary.version, summary.revoked, human(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_sshca_comments_and_host_lines_from_cert_authority() {
        let user = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sshca staging user CA (next)";
        let host = "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sshca staging host CA";
        let keys = CaKeys::parse(&format!("# comment\n{user}\n{host}\n")).unwrap();
        assert_eq!((keys.user.len(), keys.host.len()), (1, 1));
        assert_eq!((keys.user[0].0.as_str(), keys.host[0].0.as_str()), ("next", "current"));
        assert!(CaKeys::parse("not a key").is_err());
    }

    #[test]
    fn plain_keys_and_passwords_are_findings_with_their_fix() {
        let config = EffectiveConfig::parse("authorizedkeysfile .ssh/authorized_keys\npasswordauthentication yes\n");
        let expect = Expectations { environment: "staging".into(), names: vec![], renew_within: 0, krl_max_age: 3600 };
        let findings = check(&config, &CaKeys::default(), &expect, 0);
        let unhealthy: Vec<&str> = findings.iter().filter(|f| !f.healthy).map(|f| f.check).collect();
        assert_eq!(unhealthy, ["TrustedUserCAKeys", "HostCertificate", "RevokedKeys", "AuthorizedKeysFile", "PasswordAuthentication"]);
        assert!(findings.iter().any(|f| f.fix == "AuthorizedKeysFile none"));
    }
}
