//! `get_key`: install an SSH certificate next to its key: from a download link
//! (`get_key '<url>'`), or asked for with your own AWS identity (`get_key request`, and
//! `get_key ensure` for ssh's `Match exec`).

use std::path::PathBuf;
use std::process::exit;

use clap::{Args, Parser, Subcommand};
use get_key::request::{default_key, Ask};
use get_key::{default_ssh_dir, Options, Report};

#[derive(Parser)]
#[command(
    name = "get_key",
    version,
    about = "Install an SSH certificate next to the private key it certifies: from an sshca download link, or asked for with your AWS identity",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The download link your admin sent (quote it: it contains '&').
    #[arg(required = true)]
    url: Option<String>,
    #[command(flatten)]
    install: InstallArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Ask sign_key for a certificate of your key, proving who you are with your AWS credentials.
    Request(RequestArgs),
    /// Do nothing while the installed certificate has enough validity left; else `request`.
    Ensure(EnsureArgs),
}

#[derive(Args)]
struct InstallArgs {
    /// Where your keys are [default: ~/.ssh].
    #[arg(long, global = true)]
    ssh_dir: Option<PathBuf>,
    /// The private key the certificate is for (default: for a link, the matching key found in
    /// the ssh dir; for request/ensure, ~/.ssh/id_ed25519_<env>).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// Only accept certificates of this CA: a public key line or a file of them (repeatable).
    /// ~/.config/sshca/trusted_ca.pub is read too when it exists.
    #[arg(long, global = true, conflicts_with = "ca_fingerprint")]
    ca_key: Vec<String>,
    /// Only accept certificates of the CA with this fingerprint (SHA256:…; repeatable).
    #[arg(long, global = true)]
    ca_fingerprint: Vec<String>,
    /// Do not add the certificate to ssh-agent.
    #[arg(long, global = true)]
    no_agent: bool,
    /// Replace a different, still valid certificate without keeping a backup.
    #[arg(long, global = true)]
    force: bool,
    /// Print what was done as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing on success.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Args)]
struct RequestArgs {
    /// The environment (staging, production…).
    #[arg(short, long)]
    environment: String,
    /// Make an Ed25519 key at --key (default ~/.ssh/id_ed25519_<env>) when there is none.
    #[arg(long)]
    create_key: bool,
    /// A principal to ask for (repeatable); default: what your access rule gives you.
    #[arg(short = 'n', long = "principal", value_delimiter = ',')]
    principals: Vec<String>,
    /// Lifetime: 30m, +8h, 1d; default: the environment's.
    #[arg(short = 't', long, value_parser = get_key::when::duration, allow_hyphen_values = true)]
    ttl: Option<u64>,
    #[arg(short, long, default_value = "get_key request")]
    reason: String,
    /// The sign_key function (name or ARN).
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    function: String,
    /// The deployment's audience for proofs of identity (in the block of `sshca config ENV --client`).
    #[arg(long, env = "SSHCA_AUDIENCE")]
    audience: String,
}

#[derive(Args)]
struct EnsureArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Ask for a new certificate when the installed one has less than this left.
    #[arg(long, value_parser = get_key::when::duration, default_value = "15m")]
    min_validity: u64,
}

fn main() {
    let cli = Cli::parse();
    let install = &cli.install;
    let ssh_dir = install.ssh_dir.clone().unwrap_or_else(default_ssh_dir);
    let options = |url: String, key: Option<PathBuf>| Options {
        url,
        ssh_dir: ssh_dir.clone(),
        key,
        ca_keys: install.ca_key.clone(),
        ca_fingerprints: install.ca_fingerprint.clone(),
        pin_file: get_key::verify::default_pin_file(),
        agent_socket: if install.no_agent { None } else { std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from) },
        force: install.force,
    };
    let ask = |args: &RequestArgs| Ask {
        environment: args.environment.clone(),
        key: install.key.clone().unwrap_or_else(|| default_key(&ssh_dir, &args.environment)),
        create_key: args.create_key,
        principals: args.principals.clone(),
        ttl: args.ttl,
        reason: args.reason.clone(),
        function: args.function.clone(),
        audience: args.audience.clone(),
    };
    let outcome = match &cli.command {
        None => get_key::run(&options(cli.url.clone().unwrap_or_default(), install.key.clone())),
        Some(Command::Request(args)) => get_key::request::request(&ask(args), &options(String::new(), None)),
        Some(Command::Ensure(args)) => {
            let ask = ask(&args.request);
            let options = options(String::new(), None);
            let trusted = get_key::verify::trusted_fingerprints(&options.ca_keys, &options.ca_fingerprints, options.pin_file.as_deref());
            let why = match &trusted {
                Ok(trusted) => get_key::ensure::still_valid(&ask.key, args.min_validity, trusted, get_key::unix_now()),
                Err(err) => Err(err.to_string()),
            };
            match why {
                Ok(()) => exit(0),
                Err(why) => {
                    if !install.quiet {
                        eprintln!("get_key: {why}: asking for a new certificate");
                    }
                    get_key::request::request(&ask, &options)
                }
            }
        }
    };
    match outcome {
        Ok(report) => print_report(&report, install),
        Err(err) => {
            eprintln!("get_key: {err}");
            exit(1);
        }
    }
}

fn print_report(report: &Report, install: &InstallArgs) {
    if install.json {
        println!("{}", serde_json::to_string_pretty(report).expect("a report serializes"));
    } else if !install.quiet {
        for note in &report.skipped {
            eprintln!("note: skipped {note}");
        }
        println!("{report}");
    }
}
