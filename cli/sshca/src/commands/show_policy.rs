//! `sshca show-policy ENV`: what an environment allows and who may get what.

use anyhow::Result;
use clap::Args;
use sshca_core::access::Grant;
use sshca_core::environment::read_policy;
use sshca_core::policy::human_duration;
use sshca_core::Environment;

#[derive(Args)]
pub struct ShowPolicyArgs {
    environment: String,
    /// Print the stored policy as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn show_policy(env: &Environment, args: ShowPolicyArgs) -> Result<()> {
    sshca_core::request::check_environment(&args.environment)?;
    let policy = read_policy(env.store().as_ref(), &args.environment).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&policy)?);
        return Ok(());
    }
    let access = &policy.access;
    println!("environment {}", policy.environment);
    println!("  audience:          {}", if access.audience.is_empty() { "(none: run sshca init to set one)" } else { &access.audience });
    println!(
        "  proof of identity: {}",
        if access.allow_unproven { "optional (unproven requests are served and recorded as unproven)" } else { "required" }
    );
    println!(
        "  user certificates: principals {:?} (allowed {:?}), {} by default, at most {}",
        policy.default_principals,
        policy.allowed_principals,
        human_duration(policy.default_ttl),
        human_duration(policy.max_ttl)
    );
    println!(
        "  host certificates: names {:?}, {} by default, at most {}",
        policy.allowed_host_principals,
        human_duration(policy.host_default_ttl),
        human_duration(policy.host_max_ttl)
    );
    println!("  key types:         {}", policy.allowed_key_types.join(", "));
    if let Some(store) = &access.identity_store_id {
        println!(
            "  groups:            IAM groups, and IAM Identity Center's identity store {store} (read again after {}s)",
            access.groups_ttl_seconds
        );
    }
    println!("  access rules (the first that matches the caller's proven ARN applies):");
    if access.rules.is_empty() {
        println!("    none: nobody may sign; add rules with `sshca init {} --admin ARN` or --rules FILE", policy.environment);
    }
    for (index, rule) in access.rules.iter().enumerate() {
        let mut terms = vec![rule.grant.as_str().to_owned()];
        match rule.grant {
            Grant::Admin => terms.push("any user or host within the environment's policy".into()),
            Grant::User => terms.push(format!(
                "named by its {}",
                if rule.session_name_set_by_aws { "session name (set by AWS)" } else { "IAM user or role name" }
            )),
            Grant::Host => terms.push("host certificates only".into()),
        }
        if !rule.principals.is_empty() {
            terms.push(format!("principals {:?}", rule.principals));
        }
        if let Some(max_ttl) = rule.max_ttl {
            terms.push(format!("at most {}", human_duration(max_ttl)));
        }
        if let Some(extensions) = &rule.extensions {
            terms.push(format!("extensions {extensions:?}"));
        }
        if !rule.critical_options.is_empty() {
            terms.push(format!("critical options {:?}", rule.critical_options));
        }
        for (group, principals) in &rule.groups {
            terms.push(format!("group {group:?} → principals {principals:?}"));
        }
        if !rule.extension_values.is_empty() {
            terms.push(format!("extensions set from the identity {:?}", rule.extension_values));
        }
        if let Some(key_types) = &rule.key_types {
            terms.push(format!("only {} keys", key_types.join(", ")));
        }
        if let Some(approval) = &rule.approval {
            terms.push(format!(
                "only once approved by {} of {} (for at most {}, asked within {}){}",
                approval.count,
                approval.by.join(", "),
                human_duration(approval.max_ttl),
                human_duration(approval.expires_in),
                if rule.break_glass { "; break glass allowed" } else { "" }
            ));
        }
        if let Some(lookup_role) = &rule.lookup_role {
            terms.push(format!("looked up as {lookup_role}"));
        }
        println!("    {}. {}  →  {}", index + 1, rule.arn, terms.join("; "));
    }
    Ok(())
}
