//! `get_key`: installs an SSH certificate from its sshca download link next to the private key
//! it certifies, after checking it.

pub mod download;
