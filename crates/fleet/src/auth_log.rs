//! sshd's own log lines about logins (`LogLevel VERBOSE`), counted: certificate logins by
//! principal, CA and result (accepted, or why not), and plain-key logins by result.
//!
//! ```text
//! Accepted publickey for deploy from 10.0.0.9 port 52764 ssh2: ED25519-CERT SHA256:… ID jane#7 (serial 7) CA ECDSA SHA256:…
//! Certificate invalid: expired
//! Failed publickey for deploy from 10.0.0.9 port 52786 ssh2: ED25519-CERT SHA256:… ID old#9 (serial 9) CA ECDSA SHA256:…
//! Accepted publickey for root from 10.0.0.9 port 52792 ssh2: ED25519 SHA256:…
//! ```
//!
//! Why a certificate was refused is logged on the line before its `Failed publickey` line, by the
//! same sshd process; syslog and journal lines carry that process's id (`sshd[1234]: `).

use std::collections::HashMap;

pub const CERT_AUTH: &str = "ssh_cert_auth_total";
pub const KEY_AUTH: &str = "ssh_key_auth_total";

/// One counted series: a metric and its labels, in order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub metric: &'static str,
    pub labels: Vec<(&'static str, String)>,
}

/// Reads log lines one at a time, remembering each sshd process's last refusal reason.
#[derive(Debug, Default)]
pub struct Scanner {
    reasons: HashMap<String, &'static str>,
}

impl Scanner {
    /// The series `line` counts once, if any.
    pub fn scan(&mut self, line: &str) -> Option<Series> {
        let (process, message) = split_prefix(line);
        if let Some(reason) = refusal_reason(message) {
            self.reasons.insert(process.to_owned(), reason);
            return None;
        }
        let (accepted, rest) = if let Some(rest) = message.strip_prefix("Accepted publickey for ") {
            (true, rest)
        } else if let Some(rest) = message.strip_prefix("Failed publickey for ") {
            (false, rest)
        } else {
            return None;
        };
        let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
        let user = rest.split_whitespace().next()?.to_owned();
        let key = rest.split_once("ssh2: ")?.1;
        let key_type = key.split_whitespace().next()?;
        let reason = self.reasons.remove(process);
        if !key_type.ends_with("-CERT") {
            let result = if accepted { "accepted" } else { "rejected" };
            return Some(Series { metric: KEY_AUTH, labels: vec![("result", result.to_owned())] });
        }
        let ca = key.rsplit_once(" CA ").and_then(|(_, ca)| ca.split_whitespace().last()).unwrap_or("unknown").to_owned();
        let result = if accepted { "accepted" } else { reason.unwrap_or("rejected") };
        Some(Series { metric: CERT_AUTH, labels: vec![("principal", user), ("ca", ca), ("result", result.to_owned())] })
    }
}

/// The sshd process a line is from (`sshd[1234]`, or "" without a syslog prefix) and its message.
fn split_prefix(line: &str) -> (&str, &str) {
    let line = line.trim_end();
    match line.find("sshd[").and_then(|start| line[start..].find("]: ").map(|end| (start, start + end))) {
        Some((start, end)) => (&line[start..end + 1], &line[end + 3..]),
        None => ("", line),
    }
}

fn refusal_reason(message: &str) -> Option<&'static str> {
    if message.starts_with("Certificate does not contain an authorized principal") {
        Some("wrong_principal")
    } else if message.starts_with("Certificate invalid: expired") {
        Some("expired")
    } else if message.starts_with("Certificate invalid: not yet valid") {
        Some("not_yet_valid")
    } else if message.starts_with("Certificate invalid") {
        Some("invalid")
    } else if message.starts_with("Authentication key ") && message.contains(" revoked by file ") {
        Some("revoked")
    } else if message.contains("is not listed in") || message.contains("CA key not trusted") {
        Some("untrusted_ca")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "SHA256:3z+jP2MrJpMnLjZMl/ToMv8c9GnMnzflowAWiYpPhUo";

    #[test]
    fn certificate_logins_count_by_principal_ca_and_why() {
        let log = format!(
            "Accepted publickey for root from 127.0.0.1 port 1 ssh2: ED25519-CERT SHA256:a ID alice#7 (serial 7) CA ED25519 {CA}\n\
             Certificate does not contain an authorized principal\n\
             Failed publickey for root from 127.0.0.1 port 2 ssh2: ED25519-CERT SHA256:b ID bob#8 (serial 8) CA ED25519 {CA}\n\
             Nov 25 15:47:03 web1 sshd[77]: Authentication key ED25519-CERT SHA256:c revoked by file /etc/ssh/krl\n\
             Nov 25 15:47:03 web1 sshd[78]: Failed publickey for invalid user eve from 10.0.0.1 port 3 ssh2: ED25519 SHA256:e\n\
             Nov 25 15:47:03 web1 sshd[77]: Failed publickey for deploy from 10.0.0.1 port 4 ssh2: ED25519-CERT SHA256:c ID c#10 (serial 10) CA ECDSA {CA}\n\
             Accepted publickey for root from 127.0.0.1 port 5 ssh2: ED25519 SHA256:d\n\
             Starting session: command for root from 127.0.0.1 port 5 id 0\n"
        );
        let mut scanner = Scanner::default();
        let series: Vec<Series> = log.lines().filter_map(|line| scanner.scan(line)).collect();
        let cert = |principal: &str, result: &str| Series {
            metric: CERT_AUTH,
            labels: vec![("principal", principal.into()), ("ca", CA.into()), ("result", result.into())],
        };
        let key = |result: &str| Series { metric: KEY_AUTH, labels: vec![("result", result.into())] };
        assert_eq!(
            series,
            [cert("root", "accepted"), cert("root", "wrong_principal"), key("rejected"), cert("deploy", "revoked"), key("accepted")]
        );
    }
}
