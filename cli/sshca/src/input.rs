//! Reading what a command is given: a file, an http(s) URL, or standard input (`-`).

use std::io::Read;

use anyhow::{Context, Result};

pub(crate) fn read_public_key(source: &str) -> Result<String> {
    let bytes = read_input(source, "the public key")?;
    String::from_utf8(bytes).with_context(|| format!("{source} is not text: pass an OpenSSH .pub file"))
}

/// Reads `what` from a file, an http(s) URL, or standard input (`-`).
pub(crate) fn read_input(source: &str, what: &str) -> Result<Vec<u8>> {
    if source == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).with_context(|| format!("reading {what} from standard input"))?;
        Ok(bytes)
    } else if source.starts_with("http://") || source.starts_with("https://") {
        get_key::download::fetch(source).with_context(|| format!("fetching {what} from {source}"))
    } else {
        std::fs::read(source).with_context(|| format!("reading {what} {source}"))
    }
}
