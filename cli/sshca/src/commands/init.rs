//! `sshca init`: create or update an environment: its CA keys, its policy and its access rules.

use anyhow::{Context, Result};
use clap::Args;
use sshca_aws::create_key::{create_ca_key, CaKeySpec};
use sshca_aws::Aws;
use sshca_core::access::{AccessRule, Grant};
use sshca_core::admin::{self, PolicyChange};
use sshca_core::environment::read_policy;
use sshca_core::time::human_duration;
use sshca_core::{CertKind, IssueError};

use crate::input::read_input;
use crate::parse_duration;

#[derive(Args)]
pub struct InitArgs {
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
    /// Public key types certified, e.g. 'sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com'
    /// for security keys only (a rule's `key_types` narrows it further).
    #[arg(long, value_delimiter = ',')]
    key_types: Option<Vec<String>>,
    /// IAM Identity Center's identity store (d-…), where rules that map groups read users' groups.
    #[arg(long)]
    identity_store_id: Option<String>,
    /// How long the function trusts the groups it read of a caller (at most 60s).
    #[arg(long, value_parser = parse_duration)]
    groups_ttl: Option<u64>,
    /// Default lifetime of user certificates (e.g. 2h).
    #[arg(long, value_parser = parse_duration)]
    default_ttl: Option<u64>,
    /// Longest lifetime of user certificates (e.g. 24h).
    #[arg(long, value_parser = parse_duration)]
    max_ttl: Option<u64>,
    /// Longest lifetime of host certificates (e.g. 90d).
    #[arg(long, value_parser = parse_duration)]
    host_max_ttl: Option<u64>,
    /// Lifetime of host certificates when a request names none (e.g. 30d).
    #[arg(long, value_parser = parse_duration)]
    host_default_ttl: Option<u64>,
    /// An ARN pattern whose identities are admins (repeatable), e.g.
    /// 'arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admins_*/*'. A new environment's
    /// first admin is whoever runs `sshca init`.
    #[arg(long = "admin", value_name = "ARN_PATTERN")]
    admins: Vec<String>,
    /// The access rules: a JSON list (file, or - for standard input) that replaces the
    /// environment's (see the README and infra/access-rules.json).
    #[arg(long, value_name = "FILE")]
    rules: Option<String>,
    /// Names this deployment in proofs of identity; default: sshca:<bucket>:<environment>.
    #[arg(long)]
    audience: Option<String>,
    /// Serve requests without a proof of identity, recorded as unproven (migrations only).
    #[arg(long, conflicts_with = "require_proof")]
    allow_unproven: bool,
    /// Refuse requests without a proof of identity (the default for new environments).
    #[arg(long)]
    require_proof: bool,
    /// Create the bucket first if it does not exist.
    #[arg(long)]
    create_bucket: bool,
}

impl InitArgs {
    /// The change these flags make, with the rules and admins as read (and bound).
    fn change(&self, bucket: &str, rules: Option<Vec<AccessRule>>, admins: Vec<AccessRule>) -> PolicyChange {
        PolicyChange {
            environment: self.environment.clone(),
            user_ca_key: self.user_ca_key.clone(),
            host_ca_key: self.host_ca_key.clone(),
            principals: self.principals.clone(),
            allowed_principals: self.allowed_principals.clone(),
            allowed_host_principals: self.allowed_host_principals.clone(),
            allowed_critical_options: self.allowed_critical_options.clone(),
            key_types: self.key_types.clone(),
            default_ttl: self.default_ttl,
            max_ttl: self.max_ttl,
            host_max_ttl: self.host_max_ttl,
            host_default_ttl: self.host_default_ttl,
            rules,
            admins,
            audience: self.audience.clone(),
            identity_store_id: self.identity_store_id.clone(),
            groups_ttl_seconds: self.groups_ttl,
            default_audience: format!("sshca:{bucket}:{}", self.environment),
            allow_unproven: match (self.allow_unproven, self.require_proof) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            created: Vec::new(),
            first_admin: None,
        }
    }
}

pub async fn init(aws: &Aws, bucket: &str, audit_bucket: Option<&str>, args: InitArgs) -> Result<()> {
    if args.create_bucket {
        sshca_aws::s3::create_bucket(&aws.s3, bucket).await.map_err(anyhow::Error::msg)?;
    }
    let env = aws.environment(bucket, audit_bucket);
    let store = env.store().as_ref();
    // Before anything is written: a server that ignores conditional creates is no place for a CA.
    sshca_core::store::refuse_ignored_conditions(store, sshca_core::layout::conditional_create_probe(false)).await?;
    let existing = match read_policy(store, &args.environment).await {
        Ok(policy) => Some(policy),
        Err(IssueError::UnknownEnvironment(_)) => None,
        Err(err) => return Err(err.into()),
    };
    // Read once: the change may be applied again (stdin cannot be read twice). Rules on roles are
    // bound to the roles' unique ids as they are written.
    let (caller_arn, caller_user_id, account) = caller(aws).await?;
    let mut rules = args.rules.as_deref().map(read_rules).transpose()?;
    let mut admins: Vec<AccessRule> = args.admins.iter().map(|pattern| AccessRule::admin(pattern)).collect();
    let identity_store =
        args.identity_store_id.clone().or_else(|| existing.as_ref().and_then(|policy| policy.access.identity_store_id.clone()));
    crate::roles::bind(aws, identity_store.as_deref(), &account, rules.iter_mut().flatten().chain(admins.iter_mut())).await?;
    let mut change = args.change(bucket, rules, admins);
    // Checked before any key is created, so a bad flag leaves nothing behind.
    let preview = change.apply(existing);
    if !preview.access.rules.iter().any(|rule| rule.grant == Grant::Admin) {
        change.first_admin = Some(sshca_aws::sts::admin_rule(&caller_arn, &caller_user_id));
    }
    PolicyChange { rules: None, admins: Vec::new(), ..change.clone() }.apply(Some(preview.clone())).validate(env.providers())?;
    for (kind, given, slot) in
        [(CertKind::User, &args.user_ca_key, &preview.user_ca), (CertKind::Host, &args.host_ca_key, &preview.host_ca)]
    {
        if given.is_none() && args.create_keys && slot.is_none() {
            let key = create_ca_key(aws, store, &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?;
            eprintln!("created {} CA key {key:?} ({})", kind.as_str(), args.key_spec);
            change.created.push((kind, key));
        }
    }
    let (policy, ca_public_keys) =
        admin::update_policy(&env, &args.environment, |current| Ok::<_, IssueError>(change.apply(current))).await?;
    sshca_core::revoke::publish_empty_krl(store, &args.environment).await?;
    if let Some(first) = &change.first_admin {
        eprintln!("access: {} (you) is the environment's admin; add others with --admin or --rules", first.arn);
    }
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

fn read_rules(source: &str) -> Result<Vec<AccessRule>> {
    let rules = read_input(source, "the access rules")?;
    serde_json::from_slice(&rules).with_context(|| format!("{source} is not a JSON list of access rules (see infra/access-rules.json)"))
}

/// Who runs `sshca init`, as STS names the caller's own credentials: ARN, user id, account.
async fn caller(aws: &Aws) -> Result<(String, String, String)> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let answer = aws.sts.get_caller_identity().send().await.map_err(|err| {
        let service = err.as_service_error();
        sshca_client::explain::call(
            "STS",
            service.and_then(|e| e.code()),
            service.and_then(|e| e.message()),
            "sts:GetCallerIdentity",
            "your identity",
        )
    })?;
    Ok((
        answer.arn().context("STS named no ARN for your identity")?.to_owned(),
        answer.user_id().unwrap_or_default().to_owned(),
        answer.account().unwrap_or_default().to_owned(),
    ))
}
