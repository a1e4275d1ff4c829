//! CA rotation with overlap: announce a next key, promote it, retire the old one.

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, ValueEnum};
use sshca_aws::create_key::{create_ca_key, CaKeySpec};
use sshca_aws::Aws;
use sshca_core::admin::{self, RotationStep};
use sshca_core::environment::read_policy;
use sshca_core::{CaKeyRef, CertKind};

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

impl RotateArgs {
    /// The step these flags ask for; `created` are the keys made for `--create-next`.
    fn step(&self, created: Vec<(CertKind, CaKeyRef)>) -> RotationStep {
        if self.promote {
            RotationStep::Promote
        } else if self.retire {
            RotationStep::Retire
        } else {
            RotationStep::Announce { given: self.next_ca_key.clone().map(|key_id| CaKeyRef::Kms { key_id }), created }
        }
    }
}

pub async fn rotate(aws: &Aws, bucket: &str, audit_bucket: Option<&str>, args: RotateArgs) -> Result<()> {
    let env = aws.environment(bucket, audit_bucket);
    let store = env.store().as_ref();
    let kinds: &[CertKind] = match args.role {
        Role::User => &[CertKind::User],
        Role::Host => &[CertKind::Host],
        Role::Both => &[CertKind::User, CertKind::Host],
    };
    // Refused before any key is created: a rotation under way, nothing to rotate…
    let placeholder: Vec<(CertKind, CaKeyRef)> = kinds.iter().map(|&k| (k, CaKeyRef::Kms { key_id: "(to be created)".into() })).collect();
    admin::rotate(read_policy(store, &args.environment).await?, &args.step(placeholder), kinds)?;
    let mut created = Vec::new();
    if args.create_next {
        for &kind in kinds {
            created.push((kind, create_ca_key(aws, store, &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?));
        }
    }
    let step = args.step(created);
    let mut said = Vec::new();
    admin::update_policy(&env, &args.environment, |current| {
        let current = current.with_context(|| format!("environment {:?} has no policy: `sshca init` it first", args.environment))?;
        let (policy, messages) = admin::rotate(current, &step, kinds)?;
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
