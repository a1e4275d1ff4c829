//! `get_key request`: a user gets a certificate for themselves in one command. The user's AWS
//! identity (SSO profile, instance role, environment) is proven to `sign_key`, which signs the
//! user's key for what the environment's access rules give that identity; the certificate comes
//! back in the answer and is installed like `get_key URL` installs one.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use get_key::cli::{Ask, KeyType};
use get_key::{host_krl, install_certificate, verify, GetKeyError, Options, Report};
use sshca_proto::approval::PendingAnswer;
use sshca_proto::request::Answer;

/// Asks `sign_key` for a certificate of `ask.key` and installs it as `options` says.
pub fn request(ask: &Ask, options: &Options) -> Result<Report, GetKeyError> {
    sshca_proto::request::check_environment(&ask.environment).map_err(|err| GetKeyError::Request(err.to_string()))?;
    let trusted = verify::trusted_fingerprints(&options.ca_keys, &options.ca_fingerprints, options.pin_file.as_deref())?;
    let public_key = public_key_of(ask)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| GetKeyError::Request(format!("cannot start: {err}")))?;
    let response = runtime.block_on(ask_function(ask, public_key)).map_err(|err| GetKeyError::Request(format!("{err:#}")))?;
    let certificate = verify::parse(response.certificate.as_bytes())?;
    if certificate.cert_type() != ssh_key::certificate::CertType::User {
        return Err(GetKeyError::Request("the function answered with a host certificate; get_key installs only user certificates".into()));
    }
    // Without a pinned CA, the CA that the function (reached with your own credentials) names.
    let trusted = if trusted.is_empty() {
        vec![response
            .ca_fingerprint
            .parse()
            .map_err(|_| GetKeyError::Request(format!("the function named no usable CA fingerprint ({:?})", response.ca_fingerprint)))?]
    } else {
        trusted
    };
    let options = Options { key: Some(ask.key.clone()), ..options.clone() };
    let mut report = install_certificate(&options, &certificate, &trusted)?;
    let krl = host_krl::path(&ask.key, &ask.environment);
    report.host_krl = Some(match host_krl::refresh(&krl, response.krl_url.as_deref()) {
        Ok(what) => format!("{} ({what})", krl.display()),
        Err(why) => format!("{} not refreshed: {why}", krl.display()),
    });
    Ok(report)
}

async fn ask_function(ask: &Ask, public_key: String) -> anyhow::Result<sshca_proto::request::SignResponse> {
    let config = sshca_aws::config_loader().load().await;
    let requested_by = format!(
        "get_key request by {} on {}",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "?".into())
    );
    let request = sshca_proto::request::SignRequest {
        environment: ask.environment.clone(),
        public_key: Some(public_key),
        principals: (!ask.principals.is_empty()).then(|| ask.principals.clone()),
        reason: ask.reason.clone(),
        ttl: ask.ttl,
        requested_by: Some(requested_by),
        access_request: ask.request_id.clone(),
        break_glass: ask.break_glass,
        ..Default::default()
    };
    let lambda = sshca_client::Lambda::new(&config, &ask.function);
    let send = |access_request: Option<String>| {
        let mut request = sshca_proto::request::SignRequest { access_request, ..request.clone() };
        let (config, lambda) = (&config, &lambda);
        async move {
            sshca_client::prove(config, &ask.audience, &mut request).await?;
            lambda.ask(&request).await
        }
    };
    let waiting = |err: &anyhow::Error| err.to_string().contains("approvals it needs");
    let pending = match (send(ask.request_id.clone()).await, &ask.request_id) {
        (Ok(Answer::Pending(PendingAnswer { pending })), _) => pending,
        (Ok(answer), _) => return sshca_client::invoke::expect_certificate(answer),
        // claiming a request that still waits: wait for it, when asked to
        (Err(err), Some(id)) if waiting(&err) && ask.wait.is_some() => return wait_for(&send, id, ask.wait.unwrap_or_default()).await,
        (Err(err), _) => return Err(err),
    };
    let id = &pending.request_id;
    eprintln!(
        "access request {id} is recorded: it needs {} approval(s) by {} within {}.\n  an approver runs: {}",
        pending.count,
        pending.approvers.join(", "),
        sshca_proto::time::human_duration(pending.expires_at.saturating_sub(sshca_proto::time::unix_now())),
        pending.approve_command
    );
    let Some(wait) = ask.wait else {
        anyhow::bail!(
            "no certificate yet: once it is approved, get it with `get_key request -e {} --request-id {id}` (or ask with --wait 30m)",
            ask.environment
        );
    };
    wait_for(&send, id, wait).await
}

/// Claims request `id` every 2 s until it is approved (or `wait` seconds have passed): claims are
/// refused until the approvals are in, each refusal saying how many there are.
async fn wait_for<F, Fut>(send: &F, id: &str, wait: u64) -> anyhow::Result<sshca_proto::request::SignResponse>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Answer>>,
{
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        match send(Some(id.to_owned())).await {
            Ok(answer) => {
                eprintln!();
                return sshca_client::invoke::expect_certificate(answer);
            }
            Err(err) if err.to_string().contains("approvals it needs") && started.elapsed().as_secs() < wait => {
                eprint!(
                    "\rwaiting for approval of {id}: {} of {} so far",
                    sshca_proto::time::human_duration(started.elapsed().as_secs()),
                    sshca_proto::time::human_duration(wait)
                );
            }
            Err(err) => {
                eprintln!();
                return Err(err);
            }
        }
    }
}

/// The public key line of `ask.key` (from `<key>.pub`, else from the private key), making the key
/// pair first when asked to.
fn public_key_of(ask: &Ask) -> Result<String, GetKeyError> {
    if !ask.key.exists() {
        if !ask.create_key {
            return Err(GetKeyError::Request(format!(
                "there is no key {}: add --create-key to make one there (--key-type ed25519-sk for a security key), or name yours with --key PATH",
                ask.key.display()
            )));
        }
        match ask.key_type {
            KeyType::Ed25519 => create_key(&ask.key, &ask.environment)?,
            security_key => create_security_key(&ask.key, &ask.environment, security_key)?,
        }
    }
    let unreadable = |message: String| GetKeyError::UnreadableKey { path: ask.key.display().to_string(), message };
    let key = get_key::keys::public_key_of(&ask.key).map_err(unreadable)?;
    let key = key.ok_or_else(|| unreadable("neither it nor its .pub file holds a public key ssh-key can read".into()))?;
    ssh_key::PublicKey::new(key, "").to_openssh().map_err(|err| unreadable(err.to_string()))
}

/// Writes a new Ed25519 key pair. The private key is written whole to a temporary file (only its
/// owner may read it) and then linked into place, never over an existing key (a concurrent
/// `get_key` may have made one: that one is used); the `.pub` file follows, and a missing one is
/// no harm (the public key is read from the private key then).
fn create_key(private: &Path, environment: &str) -> Result<(), GetKeyError> {
    let failed = |err: &dyn std::fmt::Display| GetKeyError::Request(format!("cannot create the key {}: {err}", private.display()));
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).map_err(|err| failed(&err))?;
    key.set_comment(format!("sshca {environment}"));
    let pem = key.to_openssh(LineEnding::LF).map_err(|err| failed(&err))?;
    let public_line = key.public_key().to_openssh().map_err(|err| failed(&err))?;
    let dir = private.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|err| failed(&err))?;
    let mut file = tempfile::Builder::new()
        .prefix(".get_key-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|err| failed(&err))?;
    file.write_all(pem.as_bytes()).and_then(|_| file.as_file().sync_all()).map_err(|err| failed(&err))?;
    match file.persist_noclobber(private) {
        Ok(_) => {}
        Err(err) if err.error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) => return Err(failed(&err.error)),
    }
    let mut public = tempfile::Builder::new().prefix(".get_key-").tempfile_in(dir).map_err(|err| failed(&err))?;
    public.write_all(format!("{public_line}\n").as_bytes()).map_err(|err| failed(&err))?;
    public.persist(PathBuf::from(format!("{}.pub", private.display()))).map_err(|err| failed(&err.error))?;
    Ok(())
}

/// Makes a security-key (FIDO) key pair with `ssh-keygen`, which talks to the key (a touch; its
/// provider from `SSH_SK_PROVIDER`): ssh-key cannot. It is made in a directory of its own next to
/// `private` and linked into place, never over an existing key.
fn create_security_key(private: &Path, environment: &str, kind: KeyType) -> Result<(), GetKeyError> {
    let failed = |err: &dyn std::fmt::Display| GetKeyError::Request(format!("cannot create the key {}: {err}", private.display()));
    let dir = private.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|err| failed(&err))?;
    let scratch = tempfile::Builder::new().prefix(".get_key-").tempdir_in(dir).map_err(|err| failed(&err))?;
    let made = scratch.path().join("key");
    let output = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", kind.as_str(), "-N", "", "-C", &format!("sshca {environment}"), "-f"])
        .arg(&made)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| failed(&format!("ssh-keygen could not run ({err}): install openssh-client")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(failed(&format!(
            "ssh-keygen -t {} failed: {}; plug in the security key (or set SSH_SK_PROVIDER) and touch it when it blinks",
            kind.as_str(),
            said.trim()
        )));
    }
    match std::fs::hard_link(&made, private) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(err) => return Err(failed(&err)),
    }
    let public = PathBuf::from(format!("{}.pub", private.display()));
    std::fs::rename(scratch.path().join("key.pub"), &public).map_err(|err| failed(&err))?;
    Ok(())
}
