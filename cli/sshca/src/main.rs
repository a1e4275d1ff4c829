//! `sshca`: the admin command line of sshca. Sets up an environment's CA, signs keys, prints
//! the CA keys servers and clients must trust.

mod hosts;
mod invoke;
mod revocation;
mod rotate;
mod when;

use std::io::Read;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use sign_key::admin::{self, CaKeySpec};
use sign_key::aws::Aws;
use sign_key::ca::KmsCaKeys;
use sign_key::issuer::{read_policy, unix_now};
use sign_key::policy::human_duration;
use sign_key::{Caller, CertKind, IssueError, Issuer, Policy, S3Store, SignRequest, SignResponse};

use crate::when::When;

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
    Init(InitArgs),
    /// Sign a user's (or host's) public key; prints the download link for `get_key`.
    Sign(SignArgs),
    /// Print an environment's CA public key (for TrustedUserCAKeys or known_hosts).
    CaKey(CaKeyArgs),
    /// Print what servers and clients must be configured with (sshd_config, CA keys, known_hosts).
    Config(hosts::ConfigArgs),
    /// Renew a host's certificate when it is due (for a systemd timer).
    RenewHost(hosts::RenewHostArgs),
    /// Rotate CA keys with overlap: --create-next, then --promote, then --retire.
    Rotate(rotate::RotateArgs),
    /// Revoke certificates by serial, key id, user or public key; republishes the KRL.
    Revoke(revocation::RevokeArgs),
    /// Fetch the environment's OpenSSH KRL (for sshd's RevokedKeys), or a link to it.
    Krl(revocation::KrlArgs),
    /// List issuances and revocations from the audit trail, newest first.
    Audit(revocation::AuditArgs),
    /// Print a certificate and its audit records.
    Show(revocation::ShowArgs),
}

#[derive(Args)]
struct InitArgs {
    environment: String,
    /// KMS key id or ARN of the user CA (an asymmetric SIGN_VERIFY key).
    #[arg(long)]
    user_ca_key: Option<String>,
    /// KMS key id or ARN of the host CA.
    #[arg(long)]
    host_ca_key: Option<String>,
    /// Create the user and host CA keys that the environment does not have yet.
    #[arg(long)]
    create_keys: bool,
    /// Key spec for --create-keys: ECC_NIST_P256, ECC_NIST_P384, RSA_3072, RSA_4096,
    /// ECC_NIST_EDWARDS25519 (where KMS has it) or ED25519_SEALED.
    #[arg(long, default_value = "ECC_NIST_P256", value_parser = str::parse::<CaKeySpec>)]
    key_spec: CaKeySpec,
    /// KMS symmetric key that seals ED25519_SEALED CA keys (created when not given).
    #[arg(long)]
    seal_key: Option<String>,
    /// Default principals of user certificates (also the allowed ones unless --allowed-principals).
    #[arg(long, value_delimiter = ',')]
    principals: Option<Vec<String>>,
    /// Principals user certificates may carry; `*` and `?` are wildcards (e.g. 'deploy,web-*').
    #[arg(long, value_delimiter = ',')]
    allowed_principals: Option<Vec<String>>,
    /// Host names host certificates may carry (e.g. '*.example.com').
    #[arg(long, value_delimiter = ',')]
    allowed_host_principals: Option<Vec<String>>,
    /// Critical options requests may set (e.g. force-command,source-address).
    #[arg(long, value_delimiter = ',')]
    allowed_critical_options: Option<Vec<String>>,
    /// Default lifetime of user certificates (e.g. 2h).
    #[arg(long, value_parser = parse_duration)]
    default_ttl: Option<u64>,
    /// Longest lifetime of user certificates (e.g. 24h).
    #[arg(long, value_parser = parse_duration)]
    max_ttl: Option<u64>,
    /// Longest lifetime of host certificates (e.g. 90d).
    #[arg(long, value_parser = parse_duration)]
    host_max_ttl: Option<u64>,
    /// Create the bucket first if it does not exist.
    #[arg(long)]
    create_bucket: bool,
}

#[derive(Args)]
struct SignArgs {
    #[arg(short, long)]
    environment: Option<String>,
    /// The user (for --host: the host, default its first name); it becomes the key id with the serial.
    #[arg(short, long, required_unless_present_any = ["host", "request"])]
    username: Option<String>,
    /// Public key to sign: a file, an http(s) URL, or - for standard input. Kept for next time;
    /// without it, the key kept from an earlier request is used.
    #[arg(short = 'p', long)]
    public_key: Option<String>,
    /// A principal for the certificate (repeat, or separate with commas); default: the environment's.
    #[arg(long = "principal", short = 'n', value_delimiter = ',')]
    principals: Vec<String>,
    /// Why the certificate is needed (recorded in the audit trail).
    #[arg(short, long)]
    reason: Option<String>,
    /// Expiry: +30m, +2h, +1d, +1w, or YYYYMMDDHHMMSS (UTC); default: the environment's TTL.
    #[arg(short = 't', long = "expires", value_parser = When::parse, allow_hyphen_values = true)]
    expires: Option<When>,
    /// Start of validity: +0m, -5m, or YYYYMMDDHHMMSS (UTC); default: now (minus the clock-skew allowance).
    #[arg(short = 's', long = "start", value_parser = When::parse, allow_hyphen_values = true)]
    start: Option<When>,
    /// Sign a host certificate (principals are the host's names).
    #[arg(long)]
    host: bool,
    /// Only upload the public key (to the environment, or to all environments without -e).
    #[arg(long)]
    upload: bool,
    /// Run the issuing logic here with your AWS credentials instead of invoking the Lambda.
    #[arg(long)]
    local: bool,
    /// Send this signing request JSON (the function's documented contract; a file or - for
    /// standard input) instead of one built from the flags.
    #[arg(long, value_name = "FILE")]
    request: Option<String>,
    /// The deployed sign_key function to invoke (name or ARN).
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    function: String,
    /// Who asks (recorded in the audit trail); default: $USER.
    #[arg(long)]
    requested_by: Option<String>,
    /// Print the whole response as JSON.
    #[arg(long)]
    json: bool,
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

pub(crate) fn parse_duration(text: &str) -> Result<u64> {
    let relative = if text.starts_with('+') { text.to_owned() } else { format!("+{text}") };
    match When::parse(&relative)? {
        When::Relative(seconds) if seconds > 0 => Ok(seconds as u64),
        _ => bail!("{text:?} is not a positive duration: write it as 30m, 2h, 1d or 1w"),
    }
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
    let config = sign_key::aws::config_loader().load().await;
    let aws = Aws::from_config(&config);
    let bucket = || cli.bucket.clone().context("no bucket: pass --bucket NAME or set SSHCA_BUCKET");
    let audit_bucket = cli.audit_bucket.as_deref();
    match cli.command {
        Command::Init(args) => init(&aws, &bucket()?, args).await,
        Command::Sign(args) if args.upload => upload(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::Sign(args) if args.local => sign(&Signer::Local(Box::new(aws.issuer(&bucket()?, audit_bucket))), args).await,
        Command::Sign(args) => sign(&Signer::Lambda(invoke::Lambda::new(&config, &args.function)), args).await,
        Command::Config(args) => hosts::config(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::RenewHost(args) if args.local() => hosts::renew_host(&Signer::Local(Box::new(aws.issuer(&bucket()?, audit_bucket))), args).await,
        Command::RenewHost(args) => {
            let lambda = invoke::Lambda::new(&config, args.function());
            hosts::renew_host(&Signer::Lambda(lambda), args).await
        }
        Command::Rotate(args) => rotate::rotate(&aws, &bucket()?, args).await,
        Command::Revoke(args) => revocation::revoke(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::Krl(args) => revocation::krl(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::Audit(args) => revocation::audit(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::Show(args) => revocation::show(&aws.issuer(&bucket()?, audit_bucket), args).await,
        Command::CaKey(args) => {
            let kind = if args.host { CertKind::Host } else { CertKind::User };
            let key = aws.issuer(&bucket()?, audit_bucket).ca_public_key(&args.environment, kind).await?;
            let line = key.to_openssh()?;
            match args.known_hosts {
                Some(pattern) => println!("@cert-authority {pattern} {line}"),
                None => println!("{line}"),
            }
            Ok(())
        }
    }
}

async fn init(aws: &Aws, bucket: &str, args: InitArgs) -> Result<()> {
    if args.create_bucket {
        create_bucket(aws, bucket).await?;
    }
    let store = Arc::new(S3Store::new(aws.s3.clone(), bucket));
    let mut policy = match read_policy(store.as_ref(), &args.environment).await {
        Ok(policy) => policy,
        Err(IssueError::UnknownEnvironment(_)) => Policy::new(&args.environment),
        Err(err) => return Err(err.into()),
    };
    policy.environment = args.environment.clone();
    if let Some(principals) = args.principals {
        if args.allowed_principals.is_none() {
            policy.allowed_principals = principals.clone();
        }
        policy.default_principals = principals;
    }
    if let Some(allowed) = args.allowed_principals {
        policy.allowed_principals = allowed;
    }
    if let Some(allowed) = args.allowed_host_principals {
        policy.allowed_host_principals = allowed;
    }
    if let Some(options) = args.allowed_critical_options {
        policy.allowed_critical_options = options;
    }
    policy.default_ttl = args.default_ttl.unwrap_or(policy.default_ttl);
    policy.max_ttl = args.max_ttl.unwrap_or(policy.max_ttl);
    policy.host_max_ttl = args.host_max_ttl.unwrap_or(policy.host_max_ttl);
    if policy.default_ttl > policy.max_ttl {
        policy.default_ttl = policy.max_ttl;
    }
    // Checked before any key is created, so a bad flag leaves nothing behind.
    policy.validate()?;

    for (kind, given) in [(CertKind::User, args.user_ca_key), (CertKind::Host, args.host_ca_key)] {
        let slot = match kind {
            CertKind::User => &mut policy.user_ca,
            CertKind::Host => &mut policy.host_ca,
        };
        if let Some(key_id) = given {
            *slot = Some(sign_key::CaKeyRef::Kms { key_id });
        } else if args.create_keys && slot.is_none() {
            let created = admin::create_ca_key(aws, store.as_ref(), &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?;
            eprintln!("created {} CA key {created:?} ({})", kind.as_str(), args.key_spec);
            *slot = Some(created);
        }
    }
    let ca_keys = KmsCaKeys::new(aws.kms.clone(), store.clone());
    let ca_public_keys = admin::write_policy(store.as_ref(), &ca_keys, &policy).await?;
    eprintln!(
        "environment {:?} ready in s3://{bucket}: default principals {:?}, allowed {:?}, TTL {} (max {})",
        args.environment,
        policy.default_principals,
        policy.allowed_principals,
        human_duration(policy.default_ttl),
        human_duration(policy.max_ttl)
    );
    for key in ca_public_keys {
        println!("{}", key.to_openssh()?);
    }
    Ok(())
}

async fn create_bucket(aws: &Aws, bucket: &str) -> Result<()> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match aws.s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(err) if matches!(err.code(), Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")) => Ok(()),
        Err(err) => Err(anyhow::anyhow!("could not create bucket {bucket:?}: {}", aws_sdk_s3::error::DisplayErrorContext(err))),
    }
}

pub(crate) fn read_public_key(source: &str) -> Result<String> {
    let bytes = read_input(source, "the public key")?;
    String::from_utf8(bytes).with_context(|| format!("{source} is not text: pass an OpenSSH .pub file"))
}

/// Reads `what` from a file, an http(s) URL, or standard input (`-`).
fn read_input(source: &str, what: &str) -> Result<Vec<u8>> {
    if source == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).with_context(|| format!("reading {what} from standard input"))?;
        Ok(bytes)
    } else if source.starts_with("http://") || source.starts_with("https://") {
        get_key::download::fetch(source).with_context(|| format!("fetching {what} from {source}"))
    } else {
        std::fs::read(source).with_context(|| format!("reading {what} {source}"))
    }
}

/// Keeps a user's public key in the bucket (with the caller's own credentials).
async fn upload(issuer: &Issuer, args: SignArgs) -> Result<()> {
    let key = read_public_key(args.public_key.as_deref().context("--upload needs the key: -p KEY.pub")?)?;
    let username = args.username.context("whose key? pass -u USER")?;
    let key = issuer.cache_public_key(args.environment.as_deref(), &username, &key).await?;
    let scope = args.environment.map(|e| format!("environment {e:?}")).unwrap_or_else(|| "all environments".into());
    eprintln!("kept {} key {} of {username} for {scope}", key.algorithm(), key.fingerprint(Default::default()));
    Ok(())
}

/// Where a signing request goes: the issuing logic in this process, or the deployed function.
pub(crate) enum Signer {
    Local(Box<Issuer>),
    Lambda(invoke::Lambda),
}

impl Signer {
    pub(crate) async fn sign(&self, request: &SignRequest) -> Result<SignResponse> {
        match self {
            Signer::Local(issuer) => {
                let caller = Caller { request_id: uuid::Uuid::new_v4().to_string(), identity: None };
                Ok(issuer.issue(request, &caller).await?)
            }
            Signer::Lambda(lambda) => lambda.sign(request).await,
        }
    }
}

async fn sign(signer: &Signer, args: SignArgs) -> Result<()> {
    if let Some(source) = &args.request {
        let body = read_input(source, "the request")?;
        let request = sign_key::lambda::parse_request_bytes(&body)?;
        let response = signer.sign(&request).await?;
        return print_response(&response, args.json);
    }
    let public_key = args.public_key.as_deref().map(read_public_key).transpose()?;
    let environment = args.environment.context("which environment? pass -e ENV")?;
    let now = unix_now();
    let (ttl, valid_before) = match args.expires {
        Some(When::Relative(seconds)) if seconds <= 0 => bail!("-t must lie in the future (e.g. +2h)"),
        Some(When::Relative(seconds)) => (Some(seconds as u64), None),
        Some(absolute) => (None, Some(absolute.at(now))),
        None => (None, None),
    };
    let request = SignRequest {
        environment,
        username: match args.username {
            Some(username) => username,
            None => args.principals.first().cloned().context("a host certificate needs the host's names: -n web1.example.com")?,
        },
        public_key,
        principals: (!args.principals.is_empty()).then_some(args.principals),
        reason: args.reason.unwrap_or_default(),
        valid_after: args.start.map(|start| start.at(now)),
        valid_before,
        ttl,
        cert_type: if args.host { CertKind::Host } else { CertKind::User },
        extensions: None,
        critical_options: None,
        requested_by: args.requested_by.or_else(|| std::env::var("USER").ok()),
    };
    let response = signer.sign(&request).await?;
    print_response(&response, args.json)
}

fn print_response(response: &SignResponse, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
        return Ok(());
    }
    eprintln!(
        "signed {} (serial {}), valid until {}; the link works until {}. Send the user:\n  get_key '{}'",
        response.key_id,
        response.serial,
        get_key::verify::rfc3339(response.valid_before),
        get_key::verify::rfc3339(response.url_expires_at),
        response.download_url
    );
    println!("{}", response.download_url);
    Ok(())
}

