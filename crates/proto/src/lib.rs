//! `sshca_proto`: what every part of sshca shares and none of it needs AWS for. The OpenSSH KRL
//! codec ([`krl`]), how durations are written for people ([`time`]), and the one way a file that
//! sshd or ssh reads is replaced ([`fs`]). The server-side tools (`sshca doctor`, `sshca metrics`)
//! and `get_key ensure` build on this alone.

pub mod fs;
pub mod krl;
pub mod time;
