//! Handing the key and certificate to a running ssh-agent, for as long as the certificate lives.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;

use ssh_agent_lib::blocking::Client;
use ssh_agent_lib::proto::{
    AddIdentity, AddIdentityConstrained, KeyConstraint, PrivateCredential, PrivateKeyData, PublicCredential, RemoveIdentity,
};
use ssh_key::private::{EcdsaKeypair, KeypairData};
use ssh_key::{Certificate, PrivateKey};

/// What was done with the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutcome {
    /// Added through the agent protocol; `replaced` older certificates of the key were removed.
    Added { lifetime: u32, replaced: usize },
    /// The key is passphrase-protected: added with `ssh-add -t`, which asks for the passphrase.
    AddedWithSshAdd { lifetime: u32 },
}

/// What the agent at `socket` holds: each a certificate, or a plain key (`None`).
pub fn identities(socket: &Path) -> Result<Vec<Option<Certificate>>, String> {
    let stream = UnixStream::connect(socket).map_err(|err| format!("cannot reach ssh-agent at {}: {err}", socket.display()))?;
    let identities = Client::new(stream).request_identities().map_err(|err| format!("ssh-agent refused: {err}"))?;
    Ok(identities
        .into_iter()
        .map(|identity| match identity.credential {
            PublicCredential::Cert(certificate) => Some(*certificate),
            _ => None,
        })
        .collect())
}

fn agent_error(err: ssh_agent_lib::error::AgentError) -> String {
    format!("ssh-agent refused: {err}")
}

/// Removes every certificate of `certificate`'s key from the agent at `socket`; how many.
pub fn remove(socket: &Path, certificate: &Certificate) -> Result<usize, String> {
    let stream = UnixStream::connect(socket).map_err(|err| format!("cannot reach ssh-agent at {}: {err}", socket.display()))?;
    let mut client = Client::new(stream);
    let mut removed = 0;
    for identity in client.request_identities().map_err(agent_error)? {
        if let PublicCredential::Cert(held) = &identity.credential {
            if held.public_key() == certificate.public_key() {
                client.remove_identity(RemoveIdentity { credential: identity.credential.clone() }).map_err(agent_error)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Adds `certificate` with the private key at `key_path` to the agent at `socket`, limited to
/// `lifetime` seconds, after removing older certificates of the same key.
pub fn add(socket: &Path, key_path: &Path, certificate: &Certificate, lifetime: u32) -> Result<AgentOutcome, String> {
    let key = PrivateKey::read_openssh_file(key_path).map_err(|err| format!("cannot read {}: {err}", key_path.display()))?;
    if key.is_encrypted() {
        // Decrypting needs the passphrase: ssh-add asks for it the way users expect, and loads
        // `<key>-cert.pub`, which is installed by now.
        let status = Command::new("ssh-add")
            .arg("-t")
            .arg(lifetime.to_string())
            .arg(key_path)
            .env("SSH_AUTH_SOCK", socket)
            .status()
            .map_err(|err| format!("could not run ssh-add: {err}"))?;
        return if status.success() {
            Ok(AgentOutcome::AddedWithSshAdd { lifetime })
        } else {
            Err(format!("ssh-add failed ({status}); add it yourself with: ssh-add -t {lifetime} {}", key_path.display()))
        };
    }
    let privkey = private_key_data(key.key_data())?;
    let stream = UnixStream::connect(socket).map_err(|err| format!("cannot reach ssh-agent at {}: {err}", socket.display()))?;
    let mut client = Client::new(stream);
    let mut replaced = 0;
    for identity in client.request_identities().map_err(agent_error)? {
        if let PublicCredential::Cert(old) = &identity.credential {
            if old.public_key() == certificate.public_key() && **old != *certificate {
                client.remove_identity(RemoveIdentity { credential: identity.credential.clone() }).map_err(agent_error)?;
                replaced += 1;
            }
        }
    }
    client
        .add_identity_constrained(AddIdentityConstrained {
            identity: AddIdentity {
                credential: PrivateCredential::Cert {
                    algorithm: key.algorithm(),
                    certificate: Box::new(certificate.clone()),
                    privkey,
                    comment: certificate.key_id().to_owned(),
                },
            },
            constraints: vec![KeyConstraint::Lifetime(lifetime)],
        })
        .map_err(agent_error)?;
    Ok(AgentOutcome::Added { lifetime, replaced })
}

fn private_key_data(keypair: &KeypairData) -> Result<PrivateKeyData, String> {
    use ssh_agent_lib::proto::EcdsaPrivateKey;
    Ok(match keypair {
        KeypairData::Ed25519(pair) => PrivateKeyData::Ed25519(pair.clone()),
        KeypairData::Rsa(pair) => PrivateKeyData::Rsa(pair.private.clone()),
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => PrivateKeyData::Ecdsa(EcdsaPrivateKey::NistP256(private.clone())),
        KeypairData::Ecdsa(EcdsaKeypair::NistP384 { private, .. }) => PrivateKeyData::Ecdsa(EcdsaPrivateKey::NistP384(private.clone())),
        KeypairData::Ecdsa(EcdsaKeypair::NistP521 { private, .. }) => PrivateKeyData::Ecdsa(EcdsaPrivateKey::NistP521(private.clone())),
        other => return Err(format!("{:?} keys cannot be added to the agent by get_key; use ssh-add", other.algorithm())),
    })
}
