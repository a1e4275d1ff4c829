//! `sshca sign`: sign a user's (or host's) public key, here (`--local`) or through the function.

use anyhow::{bail, Context, Result};
use clap::Args;
use sshca_core::time::unix_now;
use sshca_core::{CertKind, Issuer, SignRequest, SignResponse};

use crate::input::{read_input, read_public_key};
use crate::signer::Signer;
use get_key::when::When;

#[derive(Args)]
pub struct SignArgs {
    #[arg(short, long)]
    environment: Option<String>,
    /// The user (for --host: the host, default its first name); it becomes the key id with the
    /// serial. Leave it out to sign for yourself: your proven AWS identity names you.
    #[arg(short, long)]
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
    pub upload: bool,
    /// Run the issuing logic here with your AWS credentials instead of invoking the Lambda.
    #[arg(long)]
    pub local: bool,
    /// Send this signing request JSON (the function's documented contract; a file or - for
    /// standard input) instead of one built from the flags.
    #[arg(long, value_name = "FILE")]
    request: Option<String>,
    /// The deployed sign_key function to invoke (name or ARN).
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    pub function: String,
    /// A free-text label of who asks (recorded as such; the audit trail names your proven AWS
    /// identity as the caller); default: $USER.
    #[arg(long)]
    requested_by: Option<String>,
    /// The deployment's audience for proofs of identity (`sshca show-policy ENV` shows it);
    /// default: read from the environment's policy in the bucket.
    #[arg(long, env = "SSHCA_AUDIENCE")]
    pub audience: Option<String>,
    /// Print the whole response as JSON.
    #[arg(long)]
    json: bool,
}

/// Keeps a user's public key in the bucket (with the caller's own credentials).
pub async fn upload(issuer: &Issuer, args: SignArgs) -> Result<()> {
    let key = read_public_key(args.public_key.as_deref().context("--upload needs the key: -p KEY.pub")?)?;
    let username = args.username.context("whose key? pass -u USER")?;
    let key = issuer.cache_public_key(args.environment.as_deref(), &username, &key).await?;
    let scope = args.environment.map(|e| format!("environment {e:?}")).unwrap_or_else(|| "all environments".into());
    eprintln!("kept {} key {} of {username} for {scope}", key.algorithm(), key.fingerprint(Default::default()));
    Ok(())
}

pub async fn sign(signer: &Signer, args: SignArgs) -> Result<()> {
    if let Some(source) = &args.request {
        let body = read_input(source, "the request")?;
        let request = sshca_core::request::parse_request_bytes(&body)?;
        let response = signer.sign(request).await?;
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
            None if args.host => {
                args.principals.first().cloned().context("a host certificate needs the host's names: -n web1.example.com")?
            }
            None => String::new(),
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
        access_request: None,
        break_glass: false,
        verdict: None,
        nonce: None,
        identity: None,
    };
    let response = signer.sign(request).await?;
    print_response(&response, args.json)
}

fn print_response(response: &SignResponse, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
        return Ok(());
    }
    eprintln!(
        "signed {} (serial {}) for key {}, valid until {}; asked by {}; the link works until {}. Send the user:\n  get_key --ca-fingerprint {} '{}'",
        response.key_id,
        response.serial,
        response.public_key_fingerprint,
        get_key::verify::rfc3339(response.valid_before),
        response.caller.as_deref().unwrap_or("an unproven caller"),
        get_key::verify::rfc3339(response.url_expires_at),
        response.ca_fingerprint,
        response.download_url
    );
    println!("{}", response.download_url);
    Ok(())
}
