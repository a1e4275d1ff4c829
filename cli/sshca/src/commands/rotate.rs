//! CA rotation with overlap: announce a next key, promote it, retire the old one.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, ValueEnum};
use sign_key::admin::{self, CaKeySpec};
use sign_key::aws::Aws;
use sign_key::ca::KmsCaKeys;
use sign_key::issuer::read_policy;
use sign_key::{CaKeyRef, CertKind, Policy, S3Store};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    User,
    Host,
    Both,
}

#[derive(Args)]
#[command(group(ArgGroup::new("action").required(true).args(["create_next", "next_ca_key", "promote", "retire"])))]
pub struct RotateArgs {
    environment: String,
    /// Which CA to rotate.
    #[arg(long, value_enum, default_value = "both")]
    role: Role,
    /// Step 1: create the next CA key (then distribute `sshca config` to servers and clients).
    #[arg(long)]
    create_next: bool,
    /// Step 1, with an existing KMS key as the next CA.
    #[arg(long)]
    next_ca_key: Option<String>,
    #[arg(long, default_value = "ECC_NIST_P256", value_parser = str::parse::<CaKeySpec>)]
    key_spec: CaKeySpec,
    #[arg(long)]
    seal_key: Option<String>,
    /// Step 2: the next key becomes current and signs from now on; the current one becomes previous.
    #[arg(long)]
    promote: bool,
    /// Step 3: forget the previous key (once its certificates have expired), then distribute `sshca config` again.
    #[arg(long)]
    retire: bool,
}

pub async fn rotate(aws: &Aws, bucket: &str, args: RotateArgs) -> Result<()> {
    let store = Arc::new(S3Store::new(aws.s3.clone(), bucket));
    let kinds: &[CertKind] = match args.role {
        Role::User => &[CertKind::User],
        Role::Host => &[CertKind::Host],
        Role::Both => &[CertKind::User, CertKind::Host],
    };
    // Refused before any key is created: a rotation under way, nothing to rotate…
    let placeholder: Vec<(CertKind, CaKeyRef)> = kinds.iter().map(|&k| (k, CaKeyRef::Kms { key_id: "(to be created)".into() })).collect();
    rotated(read_policy(store.as_ref(), &args.environment).await?, &args, kinds, &placeholder)?;
    let mut created = Vec::new();
    if args.create_next {
        for &kind in kinds {
            created.push((
                kind,
                admin::create_ca_key(aws, store.as_ref(), &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?,
            ));
        }
    }
    let ca_keys = KmsCaKeys::new(aws.kms.clone(), aws.sts.clone(), store.clone());
    let mut said = Vec::new();
    admin::update_policy(store.as_ref(), &ca_keys, &args.environment, |current| {
        let current = current.with_context(|| format!("environment {:?} has no policy: `sshca init` it first", args.environment))?;
        let (policy, messages) = rotated(current, &args, kinds, &created)?;
        said = messages;
        Ok::<_, anyhow::Error>(policy)
    })
    .await?;
    for message in said {
        eprintln!("{message}");
    }
    eprintln!("now distribute the trusted keys: sshca config {}", args.environment);
    Ok(())
}

/// `policy` after the step `args` asks for, and what was done; `created` are the keys made for
/// `--create-next`. Applied again to whatever someone else wrote in between.
fn rotated(mut policy: Policy, args: &RotateArgs, kinds: &[CertKind], created: &[(CertKind, CaKeyRef)]) -> Result<(Policy, Vec<String>)> {
    let mut said = Vec::new();
    for &kind in kinds {
        let name = kind.as_str();
        let [current, next, previous] = policy.ca_slots(kind);
        if current.is_none() {
            bail!("environment {:?} has no {name} CA to rotate: `sshca init` it first", args.environment);
        }
        if args.create_next || args.next_ca_key.is_some() {
            if next.is_some() {
                bail!("a rotation of the {name} CA is under way already: promote it (--promote) first");
            }
            let key = match &args.next_ca_key {
                Some(key_id) => CaKeyRef::Kms { key_id: key_id.clone() },
                None => created.iter().find(|(k, _)| *k == kind).map(|(_, key)| key.clone()).context("no key was created")?,
            };
            said.push(format!("{name} CA: next key {key:?} announced; it signs nothing until --promote"));
            *next = Some(key);
        } else if args.promote {
            if next.is_none() {
                bail!("the {name} CA has no next key to promote: start with --create-next");
            }
            if previous.is_some() {
                bail!("the {name} CA still has a previous key: retire it first (--retire), once its certificates have expired");
            }
            *previous = current.take();
            *current = next.take();
            said.push(format!("{name} CA: the next key is current now; the old one stays trusted until --retire"));
        } else if args.retire {
            said.push(match previous.take() {
                Some(old) => format!("{name} CA: retired {old:?}; its certificates are refused once servers get the new `sshca config`"),
                None => format!("{name} CA: no previous key to retire"),
            });
        }
    }
    Ok((policy, said))
}
