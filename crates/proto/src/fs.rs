//! The one way sshca replaces a file that ssh, sshd or a metrics collector reads: whole or not at
//! all (a temporary file in the same directory, synced, then renamed over the target), never
//! through a symbolic link, mode 0644. sshd refuses every key while its KRL is half-written, ssh
//! every host while `RevokedHostKeys` is; a certificate must never be half a certificate.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} is a symbolic link: sshca never writes through links; remove it and run the command again")]
    Symlink(PathBuf),
    #[error("could not write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Writes `bytes` to `target` atomically (see the module's comment).
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io { path: target.to_owned(), source };
    if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(WriteError::Symlink(target.to_owned()));
    }
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The temporary file is hidden and removed on any failure (tempfile deletes it on drop).
    let mut temp = tempfile::Builder::new().prefix(".sshca-").suffix(".tmp").tempfile_in(dir).map_err(io_error)?;
    temp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(io_error)?;
    temp.write_all(bytes).map_err(io_error)?;
    temp.as_file().sync_all().map_err(io_error)?;
    // rename(2) replaces a symlink itself rather than following it, and is atomic in one directory.
    temp.persist(target).map_err(|err| io_error(err.error))?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("krl");
        write_atomically(&target, b"one").unwrap();
        write_atomically(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("link")).unwrap();
        assert!(matches!(write_atomically(&dir.path().join("link"), b"x"), Err(WriteError::Symlink(_))));
        assert!(!elsewhere.exists());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".sshca-"))
            .collect();
        assert!(left.is_empty(), "no temporary file is left behind");
    }
}
