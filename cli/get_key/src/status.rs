//! `get_key status` and `get_key logout`: the certificates installed in the ssh directory — each
//! `<key>-cert.pub` next to its private key, its environment named by the key
//! (`id_<type>_<env>`) or by the host KRL beside it — what each is good for, and taking them away
//! again (the certificate files and their ssh-agent entries, never a private key).

use std::path::{Path, PathBuf};

use serde::Serialize;
use ssh_key::{Certificate, HashAlg};

use crate::verify::rfc3339;

/// One installed certificate.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub key: PathBuf,
    pub certificate: PathBuf,
    /// The environment, when the key's name or a host KRL beside it says.
    pub environment: Option<String>,
    pub principals: Vec<String>,
    pub serial: u64,
    pub valid_after: u64,
    pub valid_before: u64,
    pub ca_fingerprint: String,
    /// Whether the ssh-agent of `SSH_AUTH_SOCK` holds this certificate (`None`: no agent).
    pub in_agent: Option<bool>,
    /// Whether the environment's host KRL beside the key was refreshed within a day.
    pub host_krl_fresh: Option<bool>,
    /// `good`, `expiring` (less than the minimum validity left), `expired` or `not-yet-valid`.
    pub state: &'static str,
}

/// The environment a key of this name is for (`id_ed25519_prod` → `prod`).
fn environment_of(key: &Path) -> Option<String> {
    let name = key.file_name()?.to_str()?;
    let rest = name.strip_prefix("id_")?;
    let (_, environment) = rest.split_once('_')?;
    sshca_proto::request::check_environment(environment).ok().map(|_| environment.to_owned())
}

/// Every user certificate in `ssh_dir` that lies next to its private key, of `environment` when given.
pub fn installed(ssh_dir: &Path, environment: Option<&str>, min_validity: u64, now: u64) -> Result<Vec<Installed>, String> {
    let entries = std::fs::read_dir(ssh_dir).map_err(|err| format!("cannot read {}: {err}", ssh_dir.display()))?;
    let agent: Option<Vec<Certificate>> = std::env::var_os("SSH_AUTH_SOCK")
        .and_then(|socket| crate::agent::identities(Path::new(&socket)).ok())
        .map(|identities| identities.into_iter().flatten().collect());
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(key) = path.to_str().and_then(|p| p.strip_suffix("-cert.pub")).map(PathBuf::from) else { continue };
        if !key.exists() {
            continue;
        }
        let Ok(certificate) =
            std::fs::read_to_string(&path).map_err(|_| ()).and_then(|text| Certificate::from_openssh(text.trim()).map_err(|_| ()))
        else {
            continue;
        };
        if certificate.cert_type() != ssh_key::certificate::CertType::User {
            continue;
        }
        let named = environment_of(&key);
        if environment.is_some_and(|wanted| named.as_deref() != Some(wanted)) {
            continue;
        }
        let krl_fresh = named.as_deref().map(|environment| {
            std::fs::metadata(crate::host_krl::path(&key, environment))
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age.as_secs() < 86_400)
        });
        let (after, before) = (certificate.valid_after(), certificate.valid_before());
        let state = if now < after {
            "not-yet-valid"
        } else if now >= before {
            "expired"
        } else if before - now < min_validity {
            "expiring"
        } else {
            "good"
        };
        found.push(Installed {
            in_agent: agent.as_ref().map(|held| {
                held.iter().any(|c| {
                    c.public_key() == certificate.public_key() && c.serial() == certificate.serial() && c.nonce() == certificate.nonce()
                })
            }),
            host_krl_fresh: krl_fresh,
            key,
            certificate: path,
            environment: named,
            principals: certificate.valid_principals().to_vec(),
            serial: certificate.serial(),
            valid_after: after,
            valid_before: before,
            ca_fingerprint: certificate.signature_key().fingerprint(HashAlg::Sha256).to_string(),
            state,
        });
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// One line per certificate, for people.
pub fn table(installed: &[Installed]) -> String {
    let yes_no = |value: Option<bool>| match value {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    };
    installed
        .iter()
        .map(|c| {
            format!(
                "{}  {}  env {}  principals {}  serial {}  until {}  CA {}  agent {}  host KRL fresh {}\n",
                c.state,
                c.key.display(),
                c.environment.as_deref().unwrap_or("?"),
                c.principals.join(","),
                c.serial,
                rfc3339(c.valid_before),
                c.ca_fingerprint,
                yes_no(c.in_agent),
                yes_no(c.host_krl_fresh)
            )
        })
        .collect()
}

/// Removes each certificate file and its agent entries; what was removed, one line each.
pub fn logout(installed: &[Installed]) -> Result<Vec<String>, String> {
    let socket = std::env::var_os("SSH_AUTH_SOCK");
    let mut done = Vec::new();
    for certificate in installed {
        let parsed = std::fs::read_to_string(&certificate.certificate).ok().and_then(|text| Certificate::from_openssh(text.trim()).ok());
        let from_agent = match (&socket, &parsed) {
            (Some(socket), Some(parsed)) => crate::agent::remove(Path::new(socket), parsed).unwrap_or(0),
            _ => 0,
        };
        std::fs::remove_file(&certificate.certificate)
            .map_err(|err| format!("cannot remove {}: {err}", certificate.certificate.display()))?;
        done.push(format!("removed {} ({} agent entries)", certificate.certificate.display(), from_agent));
    }
    Ok(done)
}
