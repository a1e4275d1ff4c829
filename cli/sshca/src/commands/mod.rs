//! One file per `sshca` subcommand: its arguments, and the calls into the libraries that do the work.

pub mod certs;
pub mod doctor;
pub mod hosts;
pub mod init;
pub mod metrics;
pub mod principals;
pub mod requests;
pub mod revocation;
pub mod rotate;
pub mod show_policy;
pub mod sign;
pub mod verify;
