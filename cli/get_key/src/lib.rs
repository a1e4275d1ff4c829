//! `get_key`: installs an SSH certificate from its sshca download link next to the private key
//! it certifies, after checking it, and hands it to the running ssh-agent.
//!
//! Order matters: download → parse → verify (signature, pinned CA, validity) → find the key →
//! install atomically → agent. Nothing in the ssh directory changes before every check passed.

pub mod agent;
pub mod cli;
pub mod docs;
pub mod download;
pub mod ensure;
pub mod host_krl;
pub mod install;
pub mod keys;
pub mod status;
pub mod verify;
pub mod when;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, HashAlg};
use thiserror::Error;

use crate::agent::AgentOutcome;
use crate::install::Installed;
use crate::verify::Validity;

#[derive(Debug, Error)]
pub enum GetKeyError {
    #[error(transparent)]
    Download(#[from] download::DownloadError),
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error(
        "no private key in {dir} matches the certificate's key ({fingerprint}): put the key there, or name it with --key PATH{skipped}"
    )]
    NoMatchingKey { dir: String, fingerprint: String, skipped: String },
    #[error("{path} is not the key this certificate certifies ({fingerprint}): name the right one with --key, or leave --key out to search {dir}")]
    KeyMismatch { path: String, fingerprint: String, dir: String },
    #[error("cannot read the key {path}: {message}")]
    UnreadableKey { path: String, message: String },
    #[error("cannot read the ssh directory {dir}: {source}; pass the right one with --ssh-dir")]
    SshDir { dir: String, source: std::io::Error },
    #[error("{path} can be read by others (mode {mode:o}), so ssh will not use it: run `chmod 600 {path}`, then get_key again")]
    UnprotectedKey { path: String, mode: u32 },
    #[error("{dir} can be written by others (mode {mode:o}), who could swap the certificate: run `chmod go-w {dir}`, then get_key again")]
    UnsafeDir { dir: String, mode: u32 },
    #[error("{dir} can be written by others (mode {mode:o}) and is not sticky, so they could move {key_dir} away and put their own in its place: run `chmod go-w {dir}` (or `chmod +t {dir}` if it is shared, like /tmp), then get_key again")]
    UnsafeAncestor { dir: String, key_dir: String, mode: u32 },
    #[error(transparent)]
    Install(#[from] install::InstallError),
    #[error("{0}")]
    Request(String),
    #[error("this is a host certificate: a host installs its own with `sshca renew-host`; get_key installs user certificates only")]
    HostCertificate,
}

/// What to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub ssh_dir: PathBuf,
    /// The private key to install next to; searched for in `ssh_dir` when `None`.
    pub key: Option<PathBuf>,
    /// Pinned CA keys (lines or files) and fingerprints; `pin_file` is read too when it exists.
    pub ca_keys: Vec<String>,
    pub ca_fingerprints: Vec<String>,
    pub pin_file: Option<PathBuf>,
    /// The ssh-agent socket to add the certificate to, if any.
    pub agent_socket: Option<PathBuf>,
    pub force: bool,
}

/// What was done, for people (`Display`) and programs (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub certificate_path: PathBuf,
    pub key_path: PathBuf,
    /// "installed" or "unchanged".
    pub action: &'static str,
    pub backup: Option<PathBuf>,
    pub key_id: String,
    pub serial: u64,
    pub cert_type: &'static str,
    pub principals: Vec<String>,
    pub valid_after: u64,
    pub valid_before: u64,
    /// "now", or when the certificate becomes valid.
    pub valid_from: String,
    pub ca_fingerprint: String,
    /// What happened with ssh-agent.
    pub agent: String,
    /// Files of the ssh directory that could not be read while searching, with why.
    pub skipped: Vec<String>,
    /// What happened with the environment's KRL for `RevokedHostKeys` (`get_key request` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_krl: Option<String>,
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

pub fn run(options: &Options) -> Result<Report, GetKeyError> {
    let trusted = verify::trusted_fingerprints(&options.ca_keys, &options.ca_fingerprints, options.pin_file.as_deref())?;
    let body = download::fetch(&options.url)?;
    install_certificate(options, &verify::parse(&body)?, &trusted)
}

/// Verifies `certificate` (signature, a CA in `trusted` when any is pinned, validity) and
/// installs it next to its key, then in the agent.
pub fn install_certificate(options: &Options, certificate: &Certificate, trusted: &[ssh_key::Fingerprint]) -> Result<Report, GetKeyError> {
    if certificate.cert_type() != CertType::User {
        return Err(GetKeyError::HostCertificate);
    }
    let certificate = certificate.clone();
    let now = unix_now();
    let validity = verify::check(&certificate, trusted, now)?;
    let (key_path, skipped) = find_key(options, &certificate)?;

    check_permissions(&key_path)?;
    let certificate_path = PathBuf::from(format!("{}-cert.pub", key_path.display()));
    let installed = install::install(&certificate_path, &certificate, options.force, now)?;
    let lifetime = u32::try_from(certificate.valid_before().saturating_sub(now)).unwrap_or(u32::MAX);
    let agent = match &options.agent_socket {
        None => "not used (no SSH_AUTH_SOCK, or --no-agent)".to_owned(),
        Some(socket) => match agent::add(socket, &key_path, &certificate, lifetime) {
            Ok(AgentOutcome::Added { lifetime, replaced }) => format!(
                "added to ssh-agent for {}{}",
                human(u64::from(lifetime)),
                if replaced > 0 { format!(", replacing {replaced} older certificate(s) of this key") } else { String::new() }
            ),
            Ok(AgentOutcome::AddedWithSshAdd { lifetime }) => format!("added to ssh-agent with ssh-add for {}", human(u64::from(lifetime))),
            Err(why) => format!("not added to ssh-agent: {why}"),
        },
    };
    let (action, backup) = match installed {
        Installed::Written { backup } => ("installed", backup),
        Installed::Unchanged => ("unchanged", None),
    };
    Ok(Report {
        certificate_path,
        key_path,
        action,
        backup,
        key_id: certificate.key_id().to_owned(),
        serial: certificate.serial(),
        cert_type: match certificate.cert_type() {
            CertType::User => "user",
            CertType::Host => "host",
        },
        principals: certificate.valid_principals().to_vec(),
        valid_after: certificate.valid_after(),
        valid_before: certificate.valid_before(),
        valid_from: match validity {
            Validity::Now => "now".to_owned(),
            Validity::Soon { in_seconds } | Validity::Later { in_seconds } => {
                format!("{} (in {})", verify::rfc3339(certificate.valid_after()), human(in_seconds))
            }
        },
        ca_fingerprint: certificate.signature_key().fingerprint(HashAlg::Sha256).to_string(),
        agent,
        skipped,
        host_krl: None,
    })
}

/// Refuses what ssh itself would refuse or what would let others tamper: a private key readable
/// by others, a key directory others can write to, or a directory above it that others can
/// rearrange.
fn check_permissions(key_path: &Path) -> Result<(), GetKeyError> {
    use std::os::unix::fs::MetadataExt;
    let mode = |path: &Path| std::fs::metadata(path).map(|m| m.mode() & 0o7777).ok();
    if let Some(mode) = mode(key_path).filter(|mode| mode & 0o077 != 0) {
        return Err(GetKeyError::UnprotectedKey { path: key_path.display().to_string(), mode });
    }
    let dir = key_path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Sticky or not: the sticky bit keeps others from renaming our files, not from creating the
    // `-cert.pub` name first, owning what ssh then reads.
    if let Some(mode) = mode(dir).filter(|mode| mode & 0o022 != 0) {
        return Err(GetKeyError::UnsafeDir { dir: dir.display().to_string(), mode });
    }
    // Every directory above, up to `/`, along the path as given and along the real one behind its
    // symlinks: whoever may write to one that is not sticky can rename what is below it and put
    // their own in its place. In a sticky one (like /tmp) only an entry's owner can.
    let given = std::path::absolute(dir).ok();
    let real = std::fs::canonicalize(dir).ok();
    for ancestor in given.iter().chain(real.iter()).flat_map(|path| path.ancestors().skip(1)) {
        if let Some(mode) = mode(ancestor).filter(|mode| mode & 0o022 != 0 && mode & 0o1000 == 0) {
            return Err(GetKeyError::UnsafeAncestor { dir: ancestor.display().to_string(), key_dir: dir.display().to_string(), mode });
        }
    }
    Ok(())
}

fn find_key(options: &Options, certificate: &Certificate) -> Result<(PathBuf, Vec<String>), GetKeyError> {
    let fingerprint = certificate.public_key().fingerprint(HashAlg::Sha256).to_string();
    if let Some(path) = &options.key {
        let key = keys::public_key_of(path).map_err(|message| GetKeyError::UnreadableKey { path: path.display().to_string(), message })?;
        if key.as_ref() != Some(certificate.public_key()) {
            return Err(GetKeyError::KeyMismatch {
                path: path.display().to_string(),
                fingerprint,
                dir: options.ssh_dir.display().to_string(),
            });
        }
        return Ok((path.clone(), Vec::new()));
    }
    let dir = &options.ssh_dir;
    let scan =
        keys::scan(dir, certificate.public_key()).map_err(|source| GetKeyError::SshDir { dir: dir.display().to_string(), source })?;
    let skipped: Vec<String> = scan.skipped.iter().map(|(path, why)| format!("{}: {why}", path.display())).collect();
    match scan.matches.into_iter().next() {
        Some(found) => Ok((found.path, skipped)),
        None => Err(GetKeyError::NoMatchingKey {
            dir: dir.display().to_string(),
            fingerprint,
            skipped: if skipped.is_empty() { String::new() } else { format!(" (could not read: {})", skipped.join("; ")) },
        }),
    }
}

/// `2h30m`-style durations.
pub use sshca_proto::time::human_duration_approx as human;

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.action {
            "unchanged" => writeln!(f, "{} already holds this certificate; nothing changed", self.certificate_path.display())?,
            _ => writeln!(f, "installed {} (for {})", self.certificate_path.display(), self.key_path.display())?,
        }
        if let Some(backup) = &self.backup {
            writeln!(f, "  the previous certificate is kept in {}", backup.display())?;
        }
        writeln!(f, "  key id:     {}", self.key_id)?;
        writeln!(f, "  serial:     {}", self.serial)?;
        writeln!(f, "  type:       {} certificate", self.cert_type)?;
        writeln!(f, "  principals: {}", self.principals.join(", "))?;
        writeln!(f, "  valid from: {}", self.valid_from)?;
        let remaining = self.valid_before.saturating_sub(unix_now());
        writeln!(f, "  expires:    {} (in {})", verify::rfc3339(self.valid_before), human(remaining))?;
        writeln!(f, "  CA:         {}", self.ca_fingerprint)?;
        write!(f, "  agent:      {}", self.agent)?;
        if let Some(krl) = &self.host_krl {
            write!(f, "\n  host KRL:   {krl}")?;
        }
        Ok(())
    }
}

/// The default ssh directory, `~/.ssh`.
pub fn default_ssh_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| Path::new(".").to_owned()).join(".ssh")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `<temp>/shared/ssh/id_ed25519`, with `shared` and `ssh` in the given modes. Tests run as root,
    /// so they check modes, not who may actually write.
    fn key_under(shared: u32, ssh: u32) -> (tempfile::TempDir, PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("shared").join("ssh");
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("id_ed25519");
        std::fs::write(&key, "a private key").unwrap();
        chmod(&key, 0o600);
        chmod(&dir, ssh);
        chmod(&temp.path().join("shared"), shared);
        (temp, key)
    }

    #[test]
    fn a_key_directory_others_can_write_to_is_refused_even_when_sticky() {
        for ssh in [0o1777, 0o1770, 0o777, 0o720] {
            let (_temp, key) = key_under(0o755, ssh);
            let err = check_permissions(&key).unwrap_err();
            assert!(matches!(&err, GetKeyError::UnsafeDir { mode, .. } if *mode == ssh), "{ssh:o}: {err}");
            assert!(err.to_string().contains("chmod go-w"), "{err}");
        }
        for ssh in [0o700, 0o755, 0o1700] {
            let (_temp, key) = key_under(0o755, ssh);
            assert!(check_permissions(&key).is_ok(), "{ssh:o}");
        }
    }

    #[test]
    fn a_directory_above_that_others_can_rearrange_is_refused() {
        for shared in [0o777, 0o770, 0o757] {
            let (temp, key) = key_under(shared, 0o700);
            let err = check_permissions(&key).unwrap_err();
            assert!(
                matches!(&err, GetKeyError::UnsafeAncestor { dir, mode, .. } if *mode == shared && Path::new(dir).ends_with("shared")),
                "{shared:o}: {err}"
            );
            assert!(err.to_string().contains("chmod go-w"), "{err}");
            // reached through a symlink, the real path is checked too
            let link = temp.path().join("link");
            std::os::unix::fs::symlink(key.parent().unwrap(), &link).unwrap();
            assert!(matches!(check_permissions(&link.join("id_ed25519")), Err(GetKeyError::UnsafeAncestor { .. })), "{shared:o}");
        }
        // a sticky one, like /tmp, lets nobody move another's directory
        for shared in [0o1777, 0o1770, 0o755, 0o700] {
            let (_temp, key) = key_under(shared, 0o700);
            assert!(check_permissions(&key).is_ok(), "{shared:o}");
        }
    }
}
