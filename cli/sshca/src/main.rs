//! `sshca`: the admin command line of sshca. Sets up an environment's CA, signs keys, prints
//! the CA keys servers and clients must trust.

mod commands;
mod input;
mod roles;
mod signer;

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use sshca_aws::s3::S3Store;
use sshca_aws::Aws;
use sshca_client::Lambda;
use sshca_core::{CertKind, IssueError};

use crate::commands::{certs, doctor, hosts, init, metrics, requests, revocation, rotate, show_policy, sign, verify};
use crate::signer::{Signer, Target};

#[derive(Parser)]
#[command(name = "sshca", version, about = "Admin CLI of sshca, a serverless SSH certificate authority")]
struct Cli {
    /// The bucket that holds policies, serials, certificates and the audit trail.
    #[arg(long, env = "SSHCA_BUCKET", global = true)]
    bucket: Option<String>,
    /// A separate bucket for the audit trail (e.g. one with S3 Object Lock); default: --bucket.
    #[arg(long, env = "SSHCA_AUDIT_BUCKET", global = true)]
    audit_bucket: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update an environment: its CA keys and its policy. Prints the CA public keys.
    #[command(
        after_help = "Example: sshca init prod --create-bucket --create-keys --allowed-principals 'deploy,{user}' --rules rules.json"
    )]
    Init(init::InitArgs),
    /// Sign a user's (or host's) public key; prints the download link for `get_key`.
    #[command(after_help = "Example: sshca sign -e prod -u jane -p jane.pub --principal deploy -t +8h -r 'INC-1234'")]
    Sign(sign::SignArgs),
    /// Show an environment's policy: its audience, limits and access rules.
    #[command(after_help = "Example: sshca show-policy prod")]
    ShowPolicy(show_policy::ShowPolicyArgs),
    /// On a server: check its effective sshd configuration against the environment.
    #[command(after_help = "Example: sshca doctor prod -n web1.example.com")]
    Doctor(doctor::DoctorArgs),
    /// On a server: sshd's logins and the host certificate's and KRL's ages as Prometheus metrics.
    #[command(after_help = "Example: sshca metrics --log /var/log/auth.log -o /var/lib/node_exporter/sshca.prom")]
    Metrics(metrics::MetricsArgs),
    /// Print an environment's CA public key (for TrustedUserCAKeys or known_hosts).
    #[command(after_help = "Example: sshca ca-key prod --host --known-hosts '*.example.com'")]
    CaKey(CaKeyArgs),
    /// Print what servers and clients must be configured with (sshd_config, CA keys, known_hosts).
    #[command(after_help = "Example: sshca config prod --only sshd-config > /etc/ssh/sshd_config.d/sshca.conf")]
    Config(hosts::ConfigArgs),
    /// Renew a host's certificate when it is due (for a systemd timer).
    #[command(after_help = "Example: sshca renew-host -e prod --reload-command 'systemctl reload ssh'")]
    RenewHost(hosts::RenewHostArgs),
    /// Rotate CA keys with overlap: --create-next, then --promote, then --retire.
    #[command(after_help = "Example: sshca rotate prod --create-next")]
    Rotate(rotate::RotateArgs),
    /// Revoke certificates by serial, key id, user or public key; republishes the KRL.
    #[command(after_help = "Example: sshca revoke prod --serial 42 -r 'laptop stolen'")]
    Revoke(revocation::RevokeArgs),
    /// Fetch the environment's OpenSSH KRL (for sshd's RevokedKeys), or a link to it.
    #[command(after_help = "Example: sshca krl prod -o /etc/ssh/sshca_revoked.krl")]
    Krl(revocation::KrlArgs),
    /// List issuances and revocations from the audit trail, newest first.
    #[command(after_help = "Example: sshca audit prod --since -1d --break-glass")]
    Audit(revocation::AuditArgs),
    /// Check the CA's books: certificates, records, serials, leases, counter, KRL, CA keys.
    #[command(after_help = "Example: sshca verify prod --json")]
    Verify(verify::VerifyArgs),
    /// Print a certificate and its audit records.
    #[command(after_help = "Example: sshca show prod 42")]
    Show(revocation::ShowArgs),
    /// The certificates issued, and who has access right now (--active).
    #[command(after_help = "Example: sshca certs prod --active --user jane")]
    Certs(certs::CertsArgs),
    /// List the access requests waiting for approval (just-in-time access).
    #[command(after_help = "Example: sshca requests prod")]
    Requests(requests::RequestsArgs),
    /// Approve an access request, with your own proof of identity.
    #[command(after_help = "Example: sshca approve prod 0f8fad5b-d9cb-469f-a165-70867728950e -r 'go ahead'")]
    Approve(requests::VerdictArgs),
    /// Deny an access request (-r says why).
    #[command(after_help = "Example: sshca deny prod 0f8fad5b-d9cb-469f-a165-70867728950e -r 'not during the freeze'")]
    Deny(requests::VerdictArgs),
    /// Print the shell completion script (bash, zsh, fish…): `source <(sshca completions bash)`.
    #[command(after_help = "Example: source <(sshca completions bash)")]
    Completions { shell: get_key::docs::Shell },
    /// Write the man pages (sshca.1 and one per subcommand) into a directory.
    #[command(after_help = "Example: sshca man /usr/local/share/man/man1")]
    Man { dir: std::path::PathBuf },
}

#[derive(Args)]
struct CaKeyArgs {
    environment: String,
    /// The host CA instead of the user CA.
    #[arg(long)]
    host: bool,
    /// Print it as a known_hosts `@cert-authority` line for hosts matching PATTERN.
    #[arg(long, value_name = "PATTERN")]
    known_hosts: Option<String>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(err) = run(cli).await {
        // the issuer's refusals carry the same errorType locally as through the function
        match err.downcast_ref::<IssueError>() {
            Some(refusal) => eprintln!("error: {}: {err:#}", refusal.error_type()),
            None => eprintln!("error: {err:#}"),
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Completions { shell } => {
            get_key::docs::completions(Cli::command(), *shell);
            return Ok(());
        }
        Command::Man { dir } => {
            for page in
                get_key::docs::man_pages(Cli::command(), dir).with_context(|| format!("writing the man pages into {}", dir.display()))?
            {
                println!("{}", page.display());
            }
            return Ok(());
        }
        _ => {}
    }
    let config = sshca_aws::config_loader().load().await;
    let aws = Aws::from_config(&config);
    let bucket = || cli.bucket.clone().context("no bucket: pass --bucket NAME or set SSHCA_BUCKET");
    let env = || Ok::<_, anyhow::Error>(aws.environment(&bucket()?, cli.audit_bucket.as_deref()));
    let issuer = || Ok::<_, anyhow::Error>(sshca_core::Issuer::new(env()?));
    let signer = |local: bool, function: &str, audience: Option<String>| -> Result<Signer> {
        let target = if local {
            Target::Local(Box::new(issuer()?))
        } else {
            let store = cli.bucket.as_ref().map(|bucket| Arc::new(S3Store::new(aws.s3.clone(), bucket)));
            Target::Lambda(Lambda::new(&config, function), store)
        };
        Ok(Signer { target, config: config.clone(), audience })
    };
    match cli.command {
        Command::Init(args) => init::init(&aws, &bucket()?, cli.audit_bucket.as_deref(), args).await,
        Command::Sign(args) if args.upload => sign::upload(&issuer()?, args).await,
        Command::Sign(args) => sign::sign(&signer(args.local, &args.function, args.audience.clone())?, args).await,
        Command::ShowPolicy(args) => show_policy::show_policy(&env()?, args).await,
        Command::Config(args) => hosts::config(&env()?, args).await,
        Command::RenewHost(args) => hosts::renew_host(&signer(args.local(), args.function(), args.audience())?, args).await,
        Command::Doctor(args) if args.offline() => doctor::doctor(None, args).await,
        Command::Doctor(args) => doctor::doctor(Some(&env()?), args).await,
        Command::Metrics(args) => metrics::metrics(args),
        Command::Rotate(args) => rotate::rotate(&aws, &bucket()?, cli.audit_bucket.as_deref(), args).await,
        Command::Revoke(args) => revocation::revoke(&env()?, args).await,
        Command::Krl(args) => revocation::krl(&env()?, args).await,
        Command::Audit(args) => revocation::audit(&env()?, args).await,
        Command::Show(args) => revocation::show(&env()?, args).await,
        Command::Verify(args) => verify::verify(&env()?, args).await,
        Command::Certs(args) => certs::certs(&env()?, args).await,
        Command::Requests(args) => requests::requests(&env()?, args).await,
        Command::Approve(args) => {
            requests::verdict(&signer(args.local, &args.function, args.audience.clone())?, env().ok().as_ref(), args, true).await
        }
        Command::Deny(args) => {
            requests::verdict(&signer(args.local, &args.function, args.audience.clone())?, env().ok().as_ref(), args, false).await
        }
        Command::Completions { .. } | Command::Man { .. } => unreachable!("answered before any AWS client is built"),
        Command::CaKey(args) => {
            let kind = if args.host { CertKind::Host } else { CertKind::User };
            let key = env()?.ca_public_key(&args.environment, kind).await?;
            let line = key.to_openssh()?;
            match args.known_hosts {
                Some(pattern) => println!("@cert-authority {pattern} {line}"),
                None => println!("{line}"),
            }
            Ok(())
        }
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<u64> {
    get_key::when::duration(text)
}
