//! The command line of `get_key`, shared by its two executables: `get_key` (links, `ensure` while
//! the certificate is good: no AWS SDK in it, so it starts as fast as a small program) and
//! `get_key-request` (`request`, and `ensure` when a certificate is due), which `get_key` runs
//! for those.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{default_ssh_dir, Options, Report};

#[derive(Parser)]
#[command(
    name = "get_key",
    version,
    about = "Install an SSH certificate next to the private key it certifies: from an sshca download link, or asked for with your AWS identity",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The download link your admin sent (quote it: it contains '&').
    #[arg(required = true)]
    pub url: Option<String>,
    #[command(flatten)]
    pub install: InstallArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Ask sign_key for a certificate of your key, proving who you are with your AWS credentials.
    #[command(after_help = "Example: get_key request -e prod --create-key --audience sshca:prod -r 'INC-1234' -t 2h")]
    Request(RequestArgs),
    /// Do nothing while the installed certificate has enough validity left; else `request`.
    #[command(after_help = "Example: get_key ensure -e prod --audience sshca:prod --min-validity 15m -q")]
    Ensure(EnsureArgs),
    /// The installed certificates: principals, serial, validity, CA, agent, host KRL; exit 0 only
    /// when every one is good for --min-validity.
    #[command(after_help = "Example: get_key status -e prod --min-validity 1h")]
    Status(StatusArgs),
    /// Remove the installed certificates and their ssh-agent entries (never a private key).
    #[command(after_help = "Example: get_key logout -e prod")]
    Logout(LogoutArgs),
    /// Print the shell completion script (bash, zsh, fish…): `source <(get_key completions bash)`.
    #[command(after_help = "Example: source <(get_key completions bash)")]
    Completions { shell: crate::docs::Shell },
    /// Write the man pages (get_key.1 and one per subcommand) into a directory.
    #[command(after_help = "Example: get_key man ~/.local/share/man/man1")]
    Man { dir: PathBuf },
}

#[derive(Args)]
pub struct StatusArgs {
    /// Only this environment's certificates.
    #[arg(short, long)]
    pub environment: Option<String>,
    /// A certificate with less than this left is not good.
    #[arg(long, value_parser = crate::when::duration, default_value = "15m")]
    pub min_validity: u64,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Only this environment's certificates.
    #[arg(short, long)]
    pub environment: Option<String>,
}

#[derive(Args)]
pub struct InstallArgs {
    /// Where your keys are [default: ~/.ssh].
    #[arg(long, global = true)]
    pub ssh_dir: Option<PathBuf>,
    /// The private key the certificate is for (default: for a link, the matching key found in
    /// the ssh dir; for request/ensure, ~/.ssh/id_ed25519_<env>).
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Only accept certificates of this CA: a public key line or a file of them (repeatable).
    /// ~/.config/sshca/trusted_ca.pub is read too when it exists.
    #[arg(long, global = true, conflicts_with = "ca_fingerprint")]
    pub ca_key: Vec<String>,
    /// Only accept certificates of the CA with this fingerprint (SHA256:…; repeatable).
    #[arg(long, global = true)]
    pub ca_fingerprint: Vec<String>,
    /// Do not add the certificate to ssh-agent.
    #[arg(long, global = true)]
    pub no_agent: bool,
    /// Replace a different, still valid certificate without keeping a backup.
    #[arg(long, global = true)]
    pub force: bool,
    /// Print what was done as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on success.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct RequestArgs {
    /// The environment (staging, production…).
    #[arg(short, long)]
    pub environment: String,
    /// Make a key at --key (default ~/.ssh/id_ed25519_<env>) when there is none.
    #[arg(long)]
    pub create_key: bool,
    /// The kind of key --create-key makes: ed25519, or a security key (FIDO: ed25519-sk,
    /// ecdsa-sk; made by ssh-keygen, which asks for a touch and honours SSH_SK_PROVIDER).
    #[arg(long, value_enum, default_value = "ed25519")]
    pub key_type: KeyType,
    /// A principal to ask for (repeatable); default: what your access rule gives you.
    #[arg(short = 'n', long = "principal", value_delimiter = ',')]
    pub principals: Vec<String>,
    /// Lifetime: 30m, +8h, 1d; default: the environment's.
    #[arg(short = 't', long, value_parser = crate::when::duration, allow_hyphen_values = true)]
    pub ttl: Option<u64>,
    /// Why (in the audit trail); break glass needs a real one, e.g. the incident.
    #[arg(short, long, default_value = sshca_proto::request::DEFAULT_REQUEST_REASON)]
    pub reason: String,
    /// The sign_key function (name or ARN).
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    pub function: String,
    /// The deployment's audience for proofs of identity (in the block of `sshca config ENV --client`).
    #[arg(long, env = "SSHCA_AUDIENCE")]
    pub audience: String,
    /// Claim the certificate of this approved access request (under a rule that requires
    /// approval, the first ask records one and prints its id).
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Under a rule that requires approval: wait this long (e.g. 30m) for the approvals, then
    /// install the certificate; a progress line shows where the request stands.
    #[arg(long, value_parser = crate::when::duration, value_name = "DURATION")]
    pub wait: Option<u64>,
    /// Break glass: approve your own request, for an incident (only where your rule allows it;
    /// the reason is required, the certificate short, and everyone is notified).
    #[arg(long)]
    pub break_glass: bool,
}

#[derive(Args)]
pub struct EnsureArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Ask for a new certificate when the installed one has less than this left.
    #[arg(long, value_parser = crate::when::duration, default_value = "15m")]
    pub min_validity: u64,
}

impl Cli {
    pub fn ssh_dir(&self) -> PathBuf {
        self.install.ssh_dir.clone().unwrap_or_else(default_ssh_dir)
    }

    /// How to install: from `url`, next to `key` (found in the ssh dir when `None`).
    pub fn options(&self, url: String, key: Option<PathBuf>) -> Options {
        let install = &self.install;
        Options {
            url,
            ssh_dir: self.ssh_dir(),
            key,
            ca_keys: install.ca_key.clone(),
            ca_fingerprints: install.ca_fingerprint.clone(),
            pin_file: crate::verify::default_pin_file(),
            agent_socket: if install.no_agent {
                None
            } else {
                std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from)
            },
            force: install.force,
        }
    }

    pub fn ask(&self, args: &RequestArgs) -> Ask {
        Ask {
            environment: args.environment.clone(),
            key: self.install.key.clone().unwrap_or_else(|| default_key(&self.ssh_dir(), &args.environment)),
            create_key: args.create_key,
            key_type: args.key_type,
            principals: args.principals.clone(),
            ttl: args.ttl,
            reason: args.reason.clone(),
            function: args.function.clone(),
            audience: args.audience.clone(),
            request_id: args.request_id.clone(),
            wait: args.wait,
            break_glass: args.break_glass,
        }
    }

    /// Prints what was done (unless `-q`), or the error; the process's exit code.
    pub fn report(&self, outcome: Result<Report, crate::GetKeyError>) -> i32 {
        match outcome {
            Ok(report) if self.install.json => {
                println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
                0
            }
            Ok(report) => {
                if !self.install.quiet {
                    for note in &report.skipped {
                        eprintln!("note: skipped {note}");
                    }
                    println!("{report}");
                }
                0
            }
            Err(err) => {
                eprintln!("get_key: {err}");
                1
            }
        }
    }
}

/// The kinds of key `--create-key` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    Ed25519,
    #[value(name = "ed25519-sk")]
    Ed25519Sk,
    #[value(name = "ecdsa-sk")]
    EcdsaSk,
}

impl KeyType {
    /// Its name for `ssh-keygen -t`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Ed25519Sk => "ed25519-sk",
            KeyType::EcdsaSk => "ecdsa-sk",
        }
    }
}

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub environment: String,
    /// The private key to certify; its public key is `<key>.pub`.
    pub key: PathBuf,
    /// Make a key at `key` when there is none.
    pub create_key: bool,
    /// Of this kind.
    pub key_type: KeyType,
    /// The principals to ask for; the access rule's when empty.
    pub principals: Vec<String>,
    /// Seconds; the environment's default when `None`.
    pub ttl: Option<u64>,
    pub reason: String,
    pub function: String,
    /// The deployment's audience for proofs (`sshca config ENV --client` prints it).
    pub audience: String,
    /// The approved access request to claim.
    pub request_id: Option<String>,
    /// Seconds to wait for approval.
    pub wait: Option<u64>,
    pub break_glass: bool,
}

/// The default key of an environment: `~/.ssh/id_ed25519_<env>`.
pub fn default_key(ssh_dir: &Path, environment: &str) -> PathBuf {
    ssh_dir.join(format!("id_ed25519_{environment}"))
}
