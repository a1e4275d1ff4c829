//! CA rotation with overlap: announce a next key, promote it, retire the old one.

use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{ArgGroup, Args, ValueEnum};
use sign_key::admin::{self, CaKeySpec};
use sign_key::aws::Aws;
use sign_key::ca::KmsCaKeys;
use sign_key::issuer::read_policy;
use sign_key::{CaKeyRef, CertKind, S3Store};

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
    let mut policy = read_policy(store.as_ref(), &args.environment).await?;
    let kinds: &[CertKind] = match args.role {
        Role::User => &[CertKind::User],
        Role::Host => &[CertKind::Host],
        Role::Both => &[CertKind::User, CertKind::Host],
    };
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
            *next = Some(match &args.next_ca_key {
                Some(key_id) => CaKeyRef::Kms { key_id: key_id.clone() },
                None => admin::create_ca_key(aws, store.as_ref(), &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?,
            });
            eprintln!("{name} CA: next key {:?} announced; it signs nothing until --promote", next.as_ref().unwrap());
        } else if args.promote {
            if next.is_none() {
                bail!("the {name} CA has no next key to promote: start with --create-next");
            }
            if previous.is_some() {
                bail!("the {name} CA still has a previous key: retire it first (--retire), once its certificates have expired");
            }
            *previous = current.take();
            *current = next.take();
            eprintln!("{name} CA: the next key is current now; the old one stays trusted until --retire");
        } else if args.retire {
            match previous.take() {
                Some(old) => eprintln!("{name} CA: retired {old:?}; its certificates are refused once servers get the new `sshca config`"),
                None => eprintln!("{name} CA: no previous key to retire"),
            }
        }
    }
    admin::write_policy(store.as_ref(), &KmsCaKeys::new(aws.kms.clone(), store.clone()), &policy).await?;
    eprintln!("now distribute the trusted keys: sshca config {}", args.environment);
    Ok(())
}
