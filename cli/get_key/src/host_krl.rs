//! The environment's KRL on a user's machine, for ssh's `RevokedHostKeys` (the block of
//! `sshca config ENV --client` names it): a revoked host certificate is refused like an unknown
//! host. It is refreshed with every certificate `get_key request` gets, never revoking less than
//! before; where there is none yet, an empty one is written, because ssh refuses every host while
//! the file is missing.

use std::path::{Path, PathBuf};

use crate::download::{self, DownloadError};

/// Where the KRL of `environment` goes: beside the key it certifies.
pub fn path(key: &Path, environment: &str) -> PathBuf {
    let dir = key.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!("sshca_{environment}_revoked_hosts.krl"))
}

/// Replaces the KRL at `path` with the one at `url` (404: nothing was ever revoked), or makes
/// sure there is one when there is no link.
pub fn refresh(path: &Path, url: Option<&str>) -> Result<&'static str, String> {
    let Some(url) = url else {
        return ensure_exists(path).map(|_| "kept");
    };
    match download::fetch(url) {
        Ok(krl) => {
            // a KRL ssh cannot read would make it refuse every host: only a valid one replaces it
            sshca_proto::krl::summarize(&krl).map_err(|why| format!("the environment's KRL is not one: {why}"))?;
            // …and none un-revokes a host here, whoever wrote it at the KRL's key
            let (kept, dropped) = match std::fs::read(path) {
                Ok(installed) => sshca_proto::krl::keeping_revocations(&installed, &krl)
                    .map_err(|why| format!("the environment's KRL is not one sshca publishes: {why}"))?,
                Err(_) => (krl, 0),
            };
            let what = if dropped == 0 { "refreshed" } else { "refreshed, keeping the revocations the published KRL dropped" };
            write_atomically(path, &kept).map(|_| what)
        }
        // nothing published: nothing was revoked, or someone deleted it; either way keep what is here
        Err(DownloadError::NotFound) => ensure_exists(path).map(|_| "nothing published"),
        Err(err) => Err(err.to_string()),
    }
}

/// Writes an empty KRL at `path` unless a file is there.
pub fn ensure_exists(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    write_atomically(path, &empty())
}

fn empty() -> Vec<u8> {
    sshca_proto::krl::encode(&sshca_proto::krl::Revoked::default(), 0, crate::unix_now(), "sshca: nothing revoked")
}

/// Whole or not at all, never through a symbolic link: as certificates are installed.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::install::write_atomically(path, bytes).map_err(|err| err.to_string())
}
