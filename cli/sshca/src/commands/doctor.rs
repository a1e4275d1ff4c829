//! `sshca doctor ENV`: run on a server, checks its effective sshd configuration against the
//! environment; a short table (colour on a terminal), or `--json`. Exit code 0 only when healthy.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use get_key::when::When;
use sshca_core::time::unix_now;
use sshca_core::{CertKind, Environment};
use sshca_fleet::client::ClientState;
use sshca_fleet::doctor::{self, CaKeys, Expectations, Finding};
use sshca_fleet::sshd::EffectiveConfig;

use crate::parse_duration;

#[derive(Args)]
pub struct DoctorArgs {
    environment: String,
    #[arg(long, default_value = "/etc/ssh/sshd_config")]
    sshd_config: PathBuf,
    /// The sshd whose `-T` reads the configuration.
    #[arg(long, default_value = "/usr/sbin/sshd")]
    sshd: PathBuf,
    /// A name the host certificate must cover (repeatable).
    #[arg(short = 'n', long = "name", value_delimiter = ',')]
    names: Vec<String>,
    /// The host certificate must have more than this left (the renewal window).
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    within: u64,
    /// The KRL must have been refreshed within this.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    krl_max_age: u64,
    /// The environment's CA keys from a file instead of its policy (offline): what
    /// `sshca config ENV --only user-ca-keys` and `--only known-hosts` print.
    #[arg(long, value_name = "FILE")]
    ca_keys: Option<PathBuf>,
    /// Check this user machine instead: known_hosts, the ssh config block, ssh-agent, certificates.
    #[arg(long)]
    client: bool,
    /// For --client: the ssh directory [default: ~/.ssh].
    #[arg(long, requires = "client")]
    ssh_dir: Option<PathBuf>,
    /// For --client: certificates must have this much left.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    min_validity: u64,
    /// Check as of another time (+30d: will this server still be healthy then?).
    #[arg(long, value_parser = When::parse, allow_hyphen_values = true)]
    at: Option<When>,
    #[arg(long)]
    json: bool,
}

impl DoctorArgs {
    pub fn offline(&self) -> bool {
        self.ca_keys.is_some()
    }
}

/// The environment's CA keys: from `--ca-keys`, else from the policy (`env`).
pub async fn doctor(env: Option<&Environment>, args: DoctorArgs) -> Result<()> {
    let cas = match (&args.ca_keys, env) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading the CA keys {}", file.display()))?;
            CaKeys::parse(&text).map_err(anyhow::Error::msg)?
        }
        (None, Some(env)) => {
            let with_roles = |keys: Vec<ssh_key::PublicKey>| keys.into_iter().map(|key| (CaKeys::role_of(&key), key)).collect();
            CaKeys {
                user: with_roles(env.trusted_ca_keys(&args.environment, CertKind::User).await?),
                host: with_roles(env.trusted_ca_keys(&args.environment, CertKind::Host).await.unwrap_or_default()),
            }
        }
        (None, None) => anyhow::bail!("no CA keys: pass --bucket (read access to the policy) or --ca-keys FILE"),
    };
    let now = args.at.map_or_else(unix_now, |at| at.at(unix_now()));
    let findings = if args.client {
        let ssh_dir = args.ssh_dir.clone().unwrap_or_else(get_key::default_ssh_dir);
        sshca_fleet::client::check(&args.environment, &client_state(&ssh_dir), &cas, args.min_validity, now)
    } else {
        let config = EffectiveConfig::read(&args.sshd, &args.sshd_config).map_err(anyhow::Error::msg)?;
        let expect = Expectations {
            environment: args.environment.clone(),
            names: args.names.clone(),
            renew_within: args.within,
            krl_max_age: args.krl_max_age,
        };
        doctor::check(&config, &cas, &expect, now)
    };
    let problems = findings.iter().filter(|f| !f.healthy).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"healthy": problems == 0, "findings": findings}))?);
    } else {
        print_table(&args.environment, &findings, problems, std::io::stdout().is_terminal());
    }
    if problems > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// What a user's machine holds: its ssh files, the certificates in its ssh directory, its agent.
fn client_state(ssh_dir: &std::path::Path) -> ClientState {
    let read = |name: &str| std::fs::read_to_string(ssh_dir.join(name)).unwrap_or_default();
    let certificates = std::fs::read_dir(ssh_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with("-cert.pub"))
        .filter_map(|path| Some((path.clone(), ssh_key::Certificate::from_openssh(std::fs::read_to_string(&path).ok()?.trim()).ok()?)))
        .collect();
    let agent =
        std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(|socket| get_key::agent::identities(std::path::Path::new(&socket)));
    ClientState { known_hosts: read("known_hosts"), ssh_config: read("config"), certificates, agent }
}

fn print_table(environment: &str, findings: &[Finding], problems: usize, colour: bool) {
    let paint = |text: &str, code: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
    let verdict = if problems == 0 { paint("healthy", "32") } else { paint(&format!("{problems} problem(s)"), "31;1") };
    println!("sshca doctor {environment}: {verdict}");
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for finding in findings {
        let status = if finding.healthy { paint("ok  ", "32") } else { paint("FAIL", "31;1") };
        println!("  {status}  {:<width$}  {}", finding.check, finding.what);
        if !finding.healthy {
            println!("        {:<width$}  why: {}", "", finding.why);
            println!("        {:<width$}  fix: {}", "", finding.fix);
        }
    }
}
