//! Shell completions (`clap_complete`) and man pages (`clap_mangen`), generated from a program's
//! clap definitions, so they never drift from `--help`: `sshca completions`/`sshca man` and
//! `get_key completions`/`get_key man`.

use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Writes `command`'s completion script for `shell` to standard output.
pub fn completions(mut command: clap::Command, shell: Shell) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}

/// Writes a man page for `command` and each of its subcommands into `dir`; the pages written.
pub fn man_pages(command: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(command, dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}
