//! `sshca doctor --client`: a user machine's side. Host certificates are trusted only where
//! known_hosts says so (and only for the environment's hosts), ssh asks for a certificate by
//! itself only with the `Match exec` block, too many keys in the agent make servers close the
//! connection before the certificate is tried, and a certificate about to expire fails mid-task.

use std::path::PathBuf;

use ssh_key::certificate::CertType;
use ssh_key::Certificate;

use crate::doctor::{human, CaKeys, Finding};

/// What the user's machine holds.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    pub known_hosts: String,
    pub ssh_config: String,
    /// Certificates installed in the ssh directory.
    pub certificates: Vec<(PathBuf, Certificate)>,
    /// What ssh-agent holds (`None`: no agent), each a certificate or a plain key (`None`).
    pub agent: Option<Result<Vec<Option<Certificate>>, String>>,
}

/// sshd's default `MaxAuthTries`: an agent offering more keys than this is cut off.
const MAX_AUTH_TRIES: usize = 6;

fn good(check: &'static str, what: String) -> Finding {
    Finding { check, healthy: true, what, why: String::new(), fix: String::new() }
}

fn bad(check: &'static str, what: String, why: &str, fix: String) -> Finding {
    Finding { check, healthy: false, what, why: why.to_owned(), fix }
}

pub fn check(environment: &str, state: &ClientState, cas: &CaKeys, min_validity: u64, now: u64) -> Vec<Finding> {
    let block = format!("sshca config {environment} --client");
    let mut findings = known_hosts(state, cas, &block);
    findings.push(
        if state.ssh_config.lines().any(|line| line.contains("exec") && line.contains(&format!("get_key ensure -e {environment} "))) {
            good("ssh config", format!("a Match block runs `get_key ensure -e {environment}` before connecting"))
        } else {
            bad(
                "ssh config",
                format!("no Match block runs `get_key ensure -e {environment}`"),
                "ssh does not get a certificate by itself: every expiry means a failed login first",
                format!("add the first part of `{block}` to ~/.ssh/config"),
            )
        },
    );
    findings.push(match &state.agent {
        None => good("ssh-agent", "no agent: ssh offers only the keys its config names".into()),
        Some(Err(why)) => bad(
            "ssh-agent",
            format!("SSH_AUTH_SOCK is set but the agent cannot be asked: {why}"),
            "ssh waits on a dead agent",
            "start ssh-agent again, or unset SSH_AUTH_SOCK".into(),
        ),
        Some(Ok(entries)) if entries.len() > MAX_AUTH_TRIES - 1 => bad(
            "ssh-agent",
            format!("{} keys and certificates in the agent", entries.len()),
            "servers close the connection after MaxAuthTries (6) attempts, before the certificate is tried",
            "ssh-add -D (and keep `IdentitiesOnly yes`, as the Match block sets)".into(),
        ),
        Some(Ok(entries)) => good("ssh-agent", format!("{} keys and certificates in the agent", entries.len())),
    });
    findings.push(certificates(environment, state, cas, min_validity, now));
    findings
}

fn known_hosts(state: &ClientState, cas: &CaKeys, block: &str) -> Vec<Finding> {
    const CHECK: &str = "known_hosts";
    let lines: Vec<(String, ssh_key::PublicKey)> = state
        .known_hosts
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("@cert-authority ")?;
            let (patterns, key) = rest.trim_start().split_once(' ')?;
            Some((patterns.to_owned(), ssh_key::PublicKey::from_openssh(key.trim()).ok()?))
        })
        .collect();
    let mut findings = Vec::new();
    for (role, ca) in &cas.host {
        match lines.iter().find(|(_, key)| key.key_data() == ca.key_data()) {
            None => findings.push(bad(
                CHECK,
                format!("no @cert-authority line for the {role} host CA"),
                "ssh cannot check these servers, and asks to trust each on first use",
                format!("add the second part of `{block}` to ~/.ssh/known_hosts"),
            )),
            Some((patterns, _)) if patterns.split(',').any(|p| p == "*") => findings.push(bad(
                CHECK,
                format!("the {role} host CA is trusted for every host ({patterns})"),
                "whoever holds that CA could impersonate any server you connect to, not only the environment's",
                format!("scope the line to the environment's host names, as `{block}` prints it"),
            )),
            Some(_) => {}
        }
    }
    if findings.is_empty() {
        findings
            .push(good(CHECK, format!("@cert-authority lines for {} host CA key(s), scoped to the environment's hosts", cas.host.len())));
    }
    findings
}

fn certificates(environment: &str, state: &ClientState, cas: &CaKeys, min_validity: u64, now: u64) -> Finding {
    const CHECK: &str = "certificates";
    let ours = state.certificates.iter().filter(|(_, certificate)| {
        certificate.cert_type() == CertType::User && cas.user.iter().any(|(_, ca)| ca.key_data() == certificate.signature_key())
    });
    let mut count = 0;
    for (path, certificate) in ours {
        count += 1;
        let left = certificate.valid_before().saturating_sub(now);
        if left < min_validity {
            let what = if left == 0 { "has expired".to_owned() } else { format!("expires in {}", human(left)) };
            return bad(
                CHECK,
                format!("{} {what}", path.display()),
                "ssh presents it and the server refuses it",
                format!("get_key request -e {environment} (or keep the Match block's `get_key ensure`, which renews it)"),
            );
        }
    }
    good(CHECK, format!("{count} certificate(s) of the environment installed, each with more than {} left", human(min_validity)))
}
