//! `sshca_fleet`: the server side of sshca. A CA is only as good as the servers that trust it:
//! [`doctor`] checks a server's effective sshd configuration ([`sshd`]) against the environment's
//! CA keys, and [`metrics`] turns sshd's own log lines ([`auth_log`]) and the server's host
//! certificate and KRL into Prometheus metrics for node_exporter's textfile collector; [`client`]
//! checks a user's machine.

pub mod auth_log;
pub mod client;
pub mod doctor;
pub mod metrics;
pub mod sshd;
