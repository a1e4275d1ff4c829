//! `sshca_proto`: what every part of sshca shares and none of it needs AWS for. The wire contract
//! of `sign_key` ([`request`], its [`proof`] of identity, its [`error`]s and their body, the
//! [`approval`]s of just-in-time access), the
//! OpenSSH KRL codec ([`krl`]), how durations are written for people ([`time`]), and the one way
//! a file that sshd or ssh reads is replaced ([`fs`]). The server-side tools (`sshca doctor`,
//! `sshca metrics`) build on this alone.

pub mod approval;
pub mod error;
pub mod fs;
pub mod krl;
pub mod proof;
pub mod request;
pub mod time;
