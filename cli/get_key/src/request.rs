//! `get_key request`: a user gets a certificate for themselves in one command. The user's AWS
//! identity (SSO profile, instance role, environment) is proven to `sign_key`, which signs the
//! user's key for what the environment's access rules give that identity; the certificate comes
//! back in the answer and is installed like `get_key URL` installs one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::{install_certificate, verify, GetKeyError, Options, Report};

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub environment: String,
    /// The private key to certify; its public key is `<key>.pub`.
    pub key: PathBuf,
    /// Make an Ed25519 key at `key` when there is none.
    pub create_key: bool,
    /// The principals to ask for; the access rule's when empty.
    pub principals: Vec<String>,
    /// Seconds; the environment's default when `None`.
    pub ttl: Option<u64>,
    pub reason: String,
    pub function: String,
    /// The deployment's audience for proofs (`sshca config ENV --client` prints it).
    pub audience: String,
}

/// The default key of an environment: `~/.ssh/id_ed25519_<env>`.
pub fn default_key(ssh_dir: &Path, environment: &str) -> PathBuf {
    ssh_dir.join(format!("id_ed25519_{environment}"))
}

/// Asks `sign_key` for a certificate of `ask.key` and installs it as `options` says.
pub fn request(ask: &Ask, options: &Options) -> Result<Report, GetKeyError> {
    sign_key::request::check_environment(&ask.environment).map_err(|err| GetKeyError::Request(err.to_string()))?;
    let trusted = verify::trusted_fingerprints(&options.ca_keys, &options.ca_fingerprints, options.pin_file.as_deref())?;
    let public_key = public_key_of(ask)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| GetKeyError::Request(format!("cannot start: {err}")))?;
    let response = runtime.block_on(ask_function(ask, public_key)).map_err(|err| GetKeyError::Request(format!("{err:#}")))?;
    let certificate = verify::parse(response.certificate.as_bytes())?;
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
    install_certificate(&options, &certificate, &trusted)
}

async fn ask_function(ask: &Ask, public_key: String) -> anyhow::Result<sign_key::SignResponse> {
    let config = sign_key::aws::config_loader().load().await;
    let requested_by = format!(
        "get_key request by {} on {}",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "?".into())
    );
    let mut request = sign_key::SignRequest {
        environment: ask.environment.clone(),
        public_key: Some(public_key),
        principals: (!ask.principals.is_empty()).then(|| ask.principals.clone()),
        reason: ask.reason.clone(),
        ttl: ask.ttl,
        requested_by: Some(requested_by),
        ..Default::default()
    };
    sshca_client::prove(&config, &ask.audience, &mut request).await?;
    sshca_client::Lambda::new(&config, &ask.function).sign(&request).await
}

/// The public key line of `ask.key`, making the key pair first when asked to.
fn public_key_of(ask: &Ask) -> Result<String, GetKeyError> {
    let public = PathBuf::from(format!("{}.pub", ask.key.display()));
    if !ask.key.exists() {
        if !ask.create_key {
            return Err(GetKeyError::Request(format!(
                "there is no key {}: add --create-key to make an Ed25519 key there, or name yours with --key PATH",
                ask.key.display()
            )));
        }
        create_key(&ask.key, &public, &ask.environment)?;
    }
    std::fs::read_to_string(&public).map_err(|err| GetKeyError::UnreadableKey {
        path: public.display().to_string(),
        message: format!("{err}: the public key must be next to the private key"),
    })
}

/// Writes a new Ed25519 key pair: the private key only readable by its owner, created anew
/// (never over an existing file).
fn create_key(private: &Path, public: &Path, environment: &str) -> Result<(), GetKeyError> {
    let failed = |err: &dyn std::fmt::Display| GetKeyError::Request(format!("cannot create the key {}: {err}", private.display()));
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).map_err(|err| failed(&err))?;
    key.set_comment(format!("sshca {environment}"));
    let pem = key.to_openssh(LineEnding::LF).map_err(|err| failed(&err))?;
    let public_line = key.public_key().to_openssh().map_err(|err| failed(&err))?;
    if let Some(dir) = private.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| failed(&err))?;
    }
    let write = |path: &Path, mode: u32, body: &[u8]| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
        file.write_all(body)?;
        file.sync_all()
    };
    write(private, 0o600, pem.as_bytes()).map_err(|err| failed(&err))?;
    if let Err(err) = write(public, 0o644, format!("{public_line}\n").as_bytes()) {
        let _ = std::fs::remove_file(private);
        return Err(failed(&err));
    }
    Ok(())
}
