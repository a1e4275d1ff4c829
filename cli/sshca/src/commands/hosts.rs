//! Hosts: what servers and clients must be configured with (`sshca config`), and keeping a
//! host's certificate fresh (`sshca renew-host`, run by a systemd timer).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use sshca_core::policy::human_duration;
use sshca_core::time::unix_now;
use sshca_core::{CertKind, Environment, SignRequest};

use crate::parse_duration;
use crate::signer::Signer;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// The lines for sshd_config.
    SshdConfig,
    /// The user CA keys, for the file TrustedUserCAKeys names.
    UserCaKeys,
    /// The `@cert-authority` lines for clients' known_hosts.
    KnownHosts,
}

#[derive(Args)]
pub struct ConfigArgs {
    environment: String,
    /// Host names the host CA vouches for, in known_hosts pattern syntax.
    #[arg(long, default_value = "*")]
    host_pattern: String,
    /// Print only this part, ready to redirect to its file.
    #[arg(long, value_enum, conflicts_with = "client")]
    only: Option<Part>,
    /// Print the client side for users: the ~/.ssh/config block that gets a certificate with
    /// `get_key ensure` before connecting, and the known_hosts lines for the environment's hosts.
    #[arg(long)]
    client: bool,
    /// For --client: the key users certify [default: ~/.ssh/id_ed25519_<env>].
    #[arg(long, requires = "client")]
    key: Option<String>,
    /// For --client: the sign_key function users invoke.
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    function: String,
    /// Print, for each login user, the /etc/ssh/auth_principals/<user> file the access rules imply.
    #[arg(long, conflicts_with_all = ["client", "only"])]
    principals_files: bool,
    /// For --principals-files: PRINCIPAL=USER, a principal that logs in as another user than the
    /// one of its own name (repeatable), e.g. root-oncall=root.
    #[arg(long, requires = "principals_files")]
    login_for: Vec<String>,
}

impl ConfigArgs {
    /// Whether what is printed has known_hosts lines for the pattern `*`.
    fn trusts_every_host(&self) -> bool {
        self.host_pattern == "*" && matches!(self.only, None | Some(Part::KnownHosts))
    }
}

pub const USER_CA_FILE: &str = "/etc/ssh/sshca_user_ca.pub";

pub async fn config(env: &Environment, args: ConfigArgs) -> Result<()> {
    if args.client {
        return client_config(env, &args).await;
    }
    if args.principals_files {
        print!("{}", super::principals::principals_files(&*env.policy(&args.environment).await?, &args.login_for)?);
        return Ok(());
    }
    let environment = &args.environment;
    let user_keys = env.trusted_ca_keys(environment, CertKind::User).await?;
    // An environment may have no host CA yet: then there is nothing for known_hosts.
    let host_keys = env.trusted_ca_keys(environment, CertKind::Host).await.unwrap_or_default();
    // `@cert-authority *` (the default pattern) trusts the host CA for every host: refused, as
    // --client refuses it, for an environment whose policy names no host names.
    if !host_keys.is_empty() && args.trusts_every_host() {
        host_names(environment, &env.policy(environment).await?.allowed_host_principals)?;
    }
    let sshd_config = format!(
        "TrustedUserCAKeys {USER_CA_FILE}\n\
         AuthorizedPrincipalsFile /etc/ssh/auth_principals/%u\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n\
         HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n\
         RevokedKeys /etc/ssh/sshca_revoked.krl\n"
    );
    let user_ca_keys: String = user_keys.iter().map(|k| k.to_openssh().map(|l| l + "\n")).collect::<Result<_, _>>()?;
    let known_hosts: String = host_keys
        .iter()
        .map(|k| k.to_openssh().map(|l| format!("@cert-authority {} {l}\n", args.host_pattern)))
        .collect::<Result<_, _>>()?;
    match args.only {
        Some(Part::SshdConfig) => print!("{sshd_config}"),
        Some(Part::UserCaKeys) => print!("{user_ca_keys}"),
        Some(Part::KnownHosts) => print!("{known_hosts}"),
        None => {
            let pattern = &args.host_pattern;
            print!(
                "# sshca environment {environment:?}. During a CA rotation both keys are listed: keep them all.\n\
                 #\n\
                 # 1. Every server: sshca config {environment} --only sshd-config > /etc/ssh/sshd_config.d/sshca.conf\n\
                 #    (each user's allowed principals go in /etc/ssh/auth_principals/<user>, one per line;\n\
                 #    the revocation list: sshca krl {environment} -o /etc/ssh/sshca_revoked.krl)\n\
                 {sshd_config}\
                 #\n\
                 # 2. Every server: sshca config {environment} --only user-ca-keys > {USER_CA_FILE}\n\
                 {user_ca_keys}\
                 #\n\
                 # 3. Every client: sshca config {environment} --only known-hosts --host-pattern '{pattern}' >> ~/.ssh/known_hosts\n\
                 {known_hosts}"
            );
        }
    }
    Ok(())
}

/// The client side: users' ssh asks for a certificate when it has none good enough (`Match exec`
/// runs `get_key ensure`, which costs a process start while the certificate is good), and trusts
/// host certificates of the environment's host CA for its host names only.
async fn client_config(env: &Environment, args: &ConfigArgs) -> Result<()> {
    let environment = &args.environment;
    let policy = env.policy(environment).await?;
    let hosts = host_names(environment, &policy.allowed_host_principals)?;
    // What goes into `Match … exec "…"` runs in every user's shell on every connection: only
    // characters that neither the shell nor ssh's % tokens give a meaning.
    let plain = |text: &str, extra: &str| text.chars().all(|c| c.is_ascii_alphanumeric() || "._:@/+=,-".contains(c) || extra.contains(c));
    if !plain(&hosts, "*?") {
        bail!("environment {environment:?} has host name patterns that cannot go into an ssh config line ({hosts:?}): fix them with `sshca init {environment} --allowed-host-principals …`");
    }
    let user_cas = env.trusted_ca_keys(environment, CertKind::User).await?;
    let pins: String = user_cas.iter().map(|key| format!(" --ca-fingerprint {}", key.fingerprint(Default::default()))).collect();
    let key = args.key.clone().unwrap_or_else(|| format!("~/.ssh/id_ed25519_{environment}"));
    for (what, value) in
        [("--key", key.as_str()), ("--function", args.function.as_str()), ("the audience", policy.access.audience.as_str())]
    {
        if !plain(value.strip_prefix("~/").unwrap_or(value), "") {
            bail!("{what} {value:?} cannot go into the shell command of an ssh config line: use letters, digits and . _ : @ / + = , -");
        }
    }
    let host_cas = env.trusted_ca_keys(environment, CertKind::Host).await.unwrap_or_default();
    let known_hosts: String =
        host_cas.iter().map(|k| k.to_openssh().map(|line| format!("@cert-authority {hosts} {line}\n"))).collect::<Result<_, _>>()?;
    print!(
        "# sshca environment {environment:?}, for users.\n\
         # 1. ~/.ssh/config: before connecting to these hosts, get a certificate with your AWS identity\n\
         #    (`aws sso login` first); while the certificate is good this asks nobody.\n\
         Match host {hosts} exec \"get_key ensure -e {environment} --key {key} --audience {audience} --function {function}{pins} --create-key -q\"\n\
         \x20   IdentityFile {key}\n\
         \x20   CertificateFile {key}-cert.pub\n\
         \x20   IdentitiesOnly yes\n\
         \x20   RevokedHostKeys {krl}\n\
         #\n\
         # 2. ~/.ssh/known_hosts: trust host certificates of the environment's host CA for its hosts only\n\
         {known_hosts}",
        audience = policy.access.audience,
        function = args.function,
        krl = get_key::host_krl::path(std::path::Path::new(&key), environment).display(),
    );
    Ok(())
}

/// The known_hosts pattern of the environment's host names (its policy's allowed_host_principals),
/// or why there is none.
fn host_names(environment: &str, allowed_host_principals: &[String]) -> Result<String> {
    if allowed_host_principals.is_empty() {
        bail!(
            "environment {environment:?} names no host names, and `@cert-authority *` would trust its host CA for every host: set them with `sshca init {environment} --allowed-host-principals '*.example.com'`"
        );
    }
    Ok(allowed_host_principals.join(","))
}

#[derive(Args)]
pub struct RenewHostArgs {
    #[arg(short, long)]
    environment: String,
    /// The host's names (the certificate's principals), e.g. web1.example.com,10.0.0.5. Leave
    /// them out where the environment's host rule names hosts after their EC2 instance.
    #[arg(short = 'n', long = "principal", value_delimiter = ',')]
    names: Vec<String>,
    /// The host's private key; its certificate is `<key>-cert.pub` next to it.
    #[arg(short, long, default_value = "/etc/ssh/ssh_host_ed25519_key")]
    key: PathBuf,
    /// Renew when the current certificate expires within this time (e.g. 7d).
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    within: u64,
    /// Lifetime of the new certificate (default: the environment's host lifetime, host_default_ttl).
    #[arg(short = 't', long, value_parser = parse_duration)]
    ttl: Option<u64>,
    #[arg(short, long, default_value = "scheduled host certificate renewal")]
    reason: String,
    /// Run after a renewal (e.g. 'systemctl reload ssh'), through `sh -c`.
    #[arg(long)]
    reload_command: Option<String>,
    /// Renew even when the certificate is not due.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    local: bool,
    #[arg(long, env = "SSHCA_FUNCTION", default_value = "sign_key")]
    function: String,
    /// The deployment's audience for proofs of identity (`sshca show-policy ENV` shows it).
    #[arg(long, env = "SSHCA_AUDIENCE")]
    audience: Option<String>,
}

impl RenewHostArgs {
    pub fn local(&self) -> bool {
        self.local
    }
    pub fn function(&self) -> &str {
        &self.function
    }
    pub fn audience(&self) -> Option<String> {
        self.audience.clone()
    }
}

/// Why the current certificate needs renewing, or `None` when it does not.
fn renewal_due(certificate: &Path, names: &[String], within: u64, now: u64) -> Option<String> {
    let Ok(text) = std::fs::read_to_string(certificate) else {
        return Some("there is no certificate yet".into());
    };
    let Ok(current) = ssh_key::Certificate::from_openssh(text.trim()) else {
        return Some("the current certificate cannot be read".into());
    };
    if !names.is_empty() && current.valid_principals() != names {
        return Some(format!("its names {:?} differ from {names:?}", current.valid_principals()));
    }
    let left = current.valid_before().saturating_sub(now);
    (left <= within).then(|| format!("it expires in {}", human_duration(left)))
}

pub async fn renew_host(signer: &Signer, args: RenewHostArgs) -> Result<()> {
    let certificate_path = PathBuf::from(format!("{}-cert.pub", args.key.display()));
    let now = unix_now();
    let reason = match renewal_due(&certificate_path, &args.names, args.within, now) {
        Some(reason) => reason,
        None if args.force => "--force".into(),
        None => {
            eprintln!("{} is not due for renewal (it expires in more than {})", certificate_path.display(), human_duration(args.within));
            return Ok(());
        }
    };
    let public_key_path = PathBuf::from(format!("{}.pub", args.key.display()));
    let public_key = std::fs::read_to_string(&public_key_path)
        .with_context(|| format!("reading the host's public key {}", public_key_path.display()))?;
    let request = SignRequest {
        environment: args.environment.clone(),
        username: args.names.first().cloned().unwrap_or_default(),
        public_key: Some(public_key),
        principals: (!args.names.is_empty()).then(|| args.names.clone()),
        reason: args.reason.clone(),
        ttl: args.ttl,
        cert_type: CertKind::Host,
        requested_by: Some(format!("renew-host on {}", args.names.first().map_or("its instance", String::as_str))),
        ..Default::default()
    };
    let response = signer.sign(request).await?;
    // The certificate came from our own signer; check it all the same before it replaces a working one.
    let certificate = get_key::verify::parse(response.certificate.as_bytes())?;
    let pinned = [response.ca_fingerprint.parse().context("the CA fingerprint of the response")?];
    get_key::verify::check(&certificate, &pinned, unix_now())?;
    get_key::install::install(&certificate_path, &certificate, true, now)?;
    eprintln!(
        "renewed {} ({reason}): serial {}, valid until {}",
        certificate_path.display(),
        response.serial,
        get_key::verify::rfc3339(response.valid_before)
    );
    if let Some(command) = &args.reload_command {
        let status = std::process::Command::new("sh").arg("-c").arg(command).status()?;
        if !status.success() {
            bail!("the certificate was renewed, but {command:?} failed ({status})");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_need_the_environments_host_names() {
        let err = host_names("prod", &[]).unwrap_err().to_string();
        assert!(err.contains("names no host names") && err.contains("sshca init prod --allowed-host-principals"), "{err}");
        assert_eq!(host_names("prod", &["*.example.com".to_owned(), "10.0.0.5".to_owned()]).unwrap(), "*.example.com,10.0.0.5");
        let args = |host_pattern: &str, only: Option<Part>| ConfigArgs {
            environment: "prod".into(),
            host_pattern: host_pattern.into(),
            only,
            client: false,
            key: None,
            function: "sign_key".into(),
            principals_files: false,
            login_for: Vec::new(),
        };
        assert!(args("*", None).trusts_every_host() && args("*", Some(Part::KnownHosts)).trusts_every_host());
        assert!(!args("*.example.com", None).trusts_every_host() && !args("*", Some(Part::SshdConfig)).trusts_every_host());
        assert!(!args("*", Some(Part::UserCaKeys)).trusts_every_host());
    }
}
