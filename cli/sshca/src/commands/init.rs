//! `sshca init`: create or update an environment: its CA keys, its policy and its access rules.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use sign_key::access::{AccessRule, Grant};
use sign_key::admin::{self, CaKeySpec};
use sign_key::aws::Aws;
use sign_key::ca::KmsCaKeys;
use sign_key::issuer::read_policy;
use sign_key::policy::human_duration;
use sign_key::{CaKeyRef, CertKind, IssueError, Policy, S3Store};

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

pub async fn init(aws: &Aws, config: &aws_config::SdkConfig, bucket: &str, args: InitArgs) -> Result<()> {
    if args.create_bucket {
        create_bucket(aws, bucket).await?;
    }
    let store = Arc::new(S3Store::new(aws.s3.clone(), bucket));
    // Before anything is written: a server that ignores conditional creates is no place for a CA.
    sign_key::store::refuse_ignored_conditions(store.as_ref(), sign_key::layout::conditional_create_probe(false)).await?;
    let existing = match read_policy(store.as_ref(), &args.environment).await {
        Ok(policy) => Some(policy),
        Err(IssueError::UnknownEnvironment(_)) => None,
        Err(err) => return Err(err.into()),
    };
    // Read once: the change may be applied again (stdin cannot be read twice). Rules on roles are
    // bound to the roles' unique ids as they are written.
    let caller = caller(aws).await?;
    let iam = aws_sdk_iam::Client::new(config);
    let mut rules = args.rules.as_deref().map(read_rules).transpose()?;
    let mut admins: Vec<AccessRule> = args.admins.iter().map(|pattern| AccessRule::admin(pattern)).collect();
    crate::roles::bind(&iam, &caller.account, rules.iter_mut().flatten().chain(admins.iter_mut())).await?;
    let rules = rules.as_deref();
    // Checked before any key is created, so a bad flag leaves nothing behind.
    let preview = configure(existing, &args, rules, &admins, bucket, &[], None)?;
    let me = match preview.access.rules.iter().any(|rule| rule.grant == Grant::Admin) {
        true => None,
        false => Some(caller.admin_rule()),
    };
    configure(preview.clone().into(), &args, None, &[], bucket, &[], me.as_ref())?.validate()?;
    let mut created = Vec::new();
    for (kind, given, slot) in
        [(CertKind::User, &args.user_ca_key, &preview.user_ca), (CertKind::Host, &args.host_ca_key, &preview.host_ca)]
    {
        if given.is_none() && args.create_keys && slot.is_none() {
            let key = admin::create_ca_key(aws, store.as_ref(), &args.environment, kind, args.key_spec, args.seal_key.as_deref()).await?;
            eprintln!("created {} CA key {key:?} ({})", kind.as_str(), args.key_spec);
            created.push((kind, key));
        }
    }
    let ca_keys = KmsCaKeys::new(aws.kms.clone(), aws.sts.clone(), store.clone());
    let (policy, ca_public_keys) = admin::update_policy(store.as_ref(), &ca_keys, &args.environment, |current| {
        configure(current, &args, rules, &admins, bucket, &created, me.as_ref())
    })
    .await?;
    sign_key::revoke::publish_empty_krl(store.as_ref(), &args.environment).await?;
    if let Some(me) = &me {
        eprintln!("access: {} (you) is the environment's admin; add others with --admin or --rules", me.arn);
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

/// The policy `args` make of `current` (a new one when `None`): applied again to whatever
/// someone else wrote in between, so it must not depend on anything but its inputs. `created`
/// are CA keys made for the slots that were empty; `me`, the caller's ARN, becomes the first
/// admin when no rule is one.
fn configure(
    current: Option<Policy>,
    args: &InitArgs,
    rules: Option<&[AccessRule]>,
    admins: &[AccessRule],
    bucket: &str,
    created: &[(CertKind, CaKeyRef)],
    me: Option<&AccessRule>,
) -> Result<Policy> {
    let mut policy = current.unwrap_or_else(|| Policy::new(&args.environment));
    policy.environment = args.environment.clone();
    if let Some(principals) = args.principals.clone() {
        if args.allowed_principals.is_none() {
            policy.allowed_principals = principals.clone();
        }
        policy.default_principals = principals;
    }
    if let Some(allowed) = args.allowed_principals.clone() {
        policy.allowed_principals = allowed;
    }
    if let Some(allowed) = args.allowed_host_principals.clone() {
        policy.allowed_host_principals = allowed;
    }
    if let Some(options) = args.allowed_critical_options.clone() {
        policy.allowed_critical_options = options;
    }
    policy.default_ttl = args.default_ttl.unwrap_or(policy.default_ttl);
    policy.max_ttl = args.max_ttl.unwrap_or(policy.max_ttl);
    policy.host_max_ttl = args.host_max_ttl.unwrap_or(policy.host_max_ttl);
    policy.host_default_ttl = args.host_default_ttl.unwrap_or(policy.host_default_ttl);
    policy.default_ttl = policy.default_ttl.min(policy.max_ttl);
    policy.host_default_ttl = policy.host_default_ttl.min(policy.host_max_ttl);
    set_access(&mut policy, args, rules, admins, bucket, me);
    for (kind, given) in [(CertKind::User, &args.user_ca_key), (CertKind::Host, &args.host_ca_key)] {
        let slot = match kind {
            CertKind::User => &mut policy.user_ca,
            CertKind::Host => &mut policy.host_ca,
        };
        if let Some(key_id) = given {
            *slot = Some(CaKeyRef::Kms { key_id: key_id.clone() });
        } else if slot.is_none() {
            *slot = created.iter().find(|(k, _)| *k == kind).map(|(_, key)| key.clone());
        }
    }
    Ok(policy)
}

/// Creates the bucket like the template's: versioned (an overwritten record keeps its old version),
/// encrypted at rest, no public access. A server without one of these is told about, not refused.
async fn create_bucket(aws: &Aws, bucket: &str) -> Result<()> {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use aws_sdk_s3::types::{
        BucketVersioningStatus, PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
        ServerSideEncryptionConfiguration, ServerSideEncryptionRule, VersioningConfiguration,
    };
    match aws.s3.create_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(err) if matches!(err.code(), Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")) => return Ok(()),
        Err(err) => anyhow::bail!("could not create bucket {bucket:?}: {}", aws_sdk_s3::error::DisplayErrorContext(err)),
    }
    let unsupported = |what: &str, err: &dyn ProvideErrorMetadata| {
        eprintln!(
            "warning: bucket {bucket:?} is created, but its server did not take {what} ({}): set it up yourself",
            err.code().unwrap_or("error")
        );
    };
    let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    if let Err(err) = aws.s3.put_bucket_versioning().bucket(bucket).versioning_configuration(versioning).send().await {
        unsupported("versioning", &err);
    }
    let by_default = ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build()?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build())
        .build()?;
    if let Err(err) = aws.s3.put_bucket_encryption().bucket(bucket).server_side_encryption_configuration(encryption).send().await {
        unsupported("default encryption", &err);
    }
    let private = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .block_public_policy(true)
        .ignore_public_acls(true)
        .restrict_public_buckets(true)
        .build();
    if let Err(err) = aws.s3.put_public_access_block().bucket(bucket).public_access_block_configuration(private).send().await {
        unsupported("the public access block", &err);
    }
    Ok(())
}

/// The access part of the policy: rules, admins, audience, whether proofs are required.
fn set_access(
    policy: &mut Policy,
    args: &InitArgs,
    rules: Option<&[AccessRule]>,
    admins: &[AccessRule],
    bucket: &str,
    me: Option<&AccessRule>,
) {
    let access = &mut policy.access;
    if let Some(rules) = rules {
        access.rules = rules.to_vec();
    }
    for admin in admins.iter().rev() {
        if !access.rules.iter().any(|rule| rule.arn == admin.arn && rule.grant == Grant::Admin) {
            access.rules.insert(0, admin.clone());
        }
    }
    if let Some(me) = me.filter(|_| !access.rules.iter().any(|rule| rule.grant == Grant::Admin)) {
        access.rules.insert(0, me.clone());
    }
    if let Some(audience) = &args.audience {
        access.audience = audience.clone();
    } else if access.audience.is_empty() {
        access.audience = format!("sshca:{bucket}:{}", policy.environment);
    }
    if args.allow_unproven {
        access.allow_unproven = true;
    }
    if args.require_proof {
        access.allow_unproven = false;
    }
}

fn read_rules(source: &str) -> Result<Vec<AccessRule>> {
    let rules = read_input(source, "the access rules")?;
    serde_json::from_slice(&rules).with_context(|| format!("{source} is not a JSON list of access rules (see infra/access-rules.json)"))
}

/// Who runs `sshca init`, as STS names the caller's own credentials.
struct Caller {
    arn: String,
    user_id: String,
    account: String,
}

impl Caller {
    /// The first admin: the caller, or for a session of a role, the role itself (every session
    /// of it, bound to its unique id), never one session name the role's users choose.
    fn admin_rule(&self) -> AccessRule {
        let session_of = self.arn.rsplit_once('/').filter(|_| self.arn.contains(":assumed-role/"));
        match (session_of, self.user_id.split_once(':')) {
            (Some((role, _)), Some((role_id, _))) => {
                AccessRule { role_ids: vec![role_id.to_owned()], ..AccessRule::admin(&format!("{role}/*")) }
            }
            _ => AccessRule::admin(&self.arn),
        }
    }
}

async fn caller(aws: &Aws) -> Result<Caller> {
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
    Ok(Caller {
        arn: answer.arn().context("STS named no ARN for your identity")?.to_owned(),
        user_id: answer.user_id().unwrap_or_default().to_owned(),
        account: answer.account().unwrap_or_default().to_owned(),
    })
}
