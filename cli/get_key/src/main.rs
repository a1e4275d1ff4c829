//! `get_key '<url>'`: install the certificate behind an sshca download link.

use std::path::PathBuf;

use clap::Parser;
use get_key::{default_ssh_dir, run, Options};

#[derive(Parser)]
#[command(name = "get_key", version, about = "Install an SSH certificate from its sshca download link next to the private key it certifies")]
struct Cli {
    /// The download link your admin sent (quote it: it contains '&').
    url: String,
    /// Where your keys are [default: ~/.ssh].
    #[arg(long)]
    ssh_dir: Option<PathBuf>,
    /// The private key the certificate is for (default: the matching key found in the ssh dir).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Only accept certificates of this CA: a public key line or a file of them (repeatable).
    /// ~/.config/sshca/trusted_ca.pub is read too when it exists.
    #[arg(long, conflicts_with = "ca_fingerprint")]
    ca_key: Vec<String>,
    /// Only accept certificates of the CA with this fingerprint (SHA256:…; repeatable).
    #[arg(long)]
    ca_fingerprint: Vec<String>,
    /// Do not add the certificate to ssh-agent.
    #[arg(long)]
    no_agent: bool,
    /// Replace a different, still valid certificate without keeping a backup.
    #[arg(long)]
    force: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
}

fn main() {
    let cli = Cli::parse();
    let options = Options {
        url: cli.url,
        ssh_dir: cli.ssh_dir.unwrap_or_else(default_ssh_dir),
        key: cli.key,
        ca_keys: cli.ca_key,
        ca_fingerprints: cli.ca_fingerprint,
        pin_file: get_key::verify::default_pin_file(),
        agent_socket: if cli.no_agent { None } else { std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from) },
        force: cli.force,
    };
    match run(&options) {
        Ok(report) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
            } else if !cli.quiet {
                for note in &report.skipped {
                    eprintln!("note: skipped {note}");
                }
                println!("{report}");
            }
        }
        Err(err) => {
            eprintln!("get_key: {err}");
            std::process::exit(1);
        }
    }
}
