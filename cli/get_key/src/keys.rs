//! Finding the private key a certificate certifies.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, PublicKey};

/// Private key files are small; a larger file is not one and is not read whole.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Files of the ssh directory that are never private keys.
const NOT_KEYS: [&str; 5] = ["known_hosts", "known_hosts.old", "config", "authorized_keys", "environment"];

/// A private key whose public half matches the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub path: PathBuf,
}

/// The outcome of a scan: the matching keys and the files that could not be read (with why).
#[derive(Debug, Default)]
pub struct Scan {
    pub matches: Vec<Match>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// The public key of the private key at `path`: from `<path>.pub` when present, else from the
/// private key file itself (its public half is readable without the passphrase). `Ok(None)` when
/// the file is no private key.
pub fn public_key_of(path: &Path) -> Result<Option<KeyData>, String> {
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    if let Ok(text) = fs::read_to_string(&pub_path) {
        if let Ok(key) = PublicKey::from_openssh(text.trim()) {
            return Ok(Some(key.key_data().clone()));
        }
    }
    let mut file = fs::File::open(path).map_err(|err| err.to_string())?;
    let mut head = Vec::new();
    file.by_ref().take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut head).map_err(|err| err.to_string())?;
    if head.len() as u64 > MAX_KEY_FILE_BYTES || !head.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
        return Ok(None);
    }
    PrivateKey::from_openssh(&head)
        .map(|key| Some(key.public_key().key_data().clone()))
        .map_err(|err| format!("looks like a private key but cannot be read: {err}"))
}

/// Scans `dir` (not recursively) for private keys whose public key is `wanted`.
pub fn scan(dir: &Path, wanted: &KeyData) -> std::io::Result<Scan> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut scan = Scan::default();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let ignored =
            name.starts_with('.') || name.ends_with(".pub") || name.ends_with(".bak") || name.ends_with(".tmp") || NOT_KEYS.contains(&name);
        if ignored || !path.is_file() {
            continue;
        }
        match public_key_of(&path) {
            Ok(Some(key)) if &key == wanted => scan.matches.push(Match { path }),
            Ok(_) => {}
            Err(why) => scan.skipped.push((path, why)),
        }
    }
    Ok(scan)
}
