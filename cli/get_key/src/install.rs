//! Installing the certificate file: all or nothing, never through a symbolic link.

use std::fs;
use std::path::{Path, PathBuf};

use ssh_key::Certificate;

/// What happened to `<key>-cert.pub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Written; the certificate that was there before (still valid, and different) was kept here.
    Written { backup: Option<PathBuf> },
    /// The very same certificate was already there.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0} is a symbolic link: get_key never writes through links; remove it and run get_key again")]
    Symlink(PathBuf),
    #[error("could not write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Installs `certificate` at `target` via a temporary file in the same directory and a rename,
/// so `target` holds either the old or the new certificate, never a part of one. A different
/// certificate that is still valid at `now` is kept as `<target>.bak` unless `force`.
pub fn install(target: &Path, certificate: &Certificate, force: bool, now: u64) -> Result<Installed, InstallError> {
    let line = certificate
        .to_openssh()
        .map_err(|err| InstallError::Io { path: target.to_owned(), source: std::io::Error::other(err.to_string()) })?;
    let mut backup = None;
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(InstallError::Symlink(target.to_owned())),
        Ok(_) => {
            let existing = fs::read_to_string(target).ok().and_then(|text| Certificate::from_openssh(text.trim()).ok());
            match existing {
                Some(existing) if existing == *certificate => return Ok(Installed::Unchanged),
                Some(existing) if !force && existing.valid_before() > now => {
                    let backup_path = PathBuf::from(format!("{}.bak", target.display()));
                    write_atomically(&backup_path, format!("{}\n", existing.to_openssh().unwrap_or_default()).as_bytes())?;
                    backup = Some(backup_path);
                }
                _ => {}
            }
        }
        Err(_) => {}
    }
    write_atomically(target, format!("{line}\n").as_bytes())?;
    Ok(Installed::Written { backup })
}

/// Writes `bytes` to `target` in the ssh directory: whole or not at all, never through a
/// symbolic link, mode 0644.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), InstallError> {
    sshca_proto::fs::write_atomically(target, bytes).map_err(|err| match err {
        sshca_proto::fs::WriteError::Symlink(path) => InstallError::Symlink(path),
        sshca_proto::fs::WriteError::Io { path, source } => InstallError::Io { path, source },
    })
}
