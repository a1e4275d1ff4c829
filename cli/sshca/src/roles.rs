//! Binding access rules to what they name: rules on assumed roles to the roles themselves, and the
//! groups a rule maps to the groups themselves. An assumed-role ARN
//! (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) shows neither the role's path nor which of
//! several roles of one name (deleted and re-created) it is, so a rule that matched it by name
//! would also be met by a role that anyone with `iam:CreateRole` names the same way. STS's user id
//! of a session (`AROA…:SESSION`) does name the role: rules keep the unique ids of the roles they
//! meant when they were written, as Vault's AWS auth does (`resolve_aws_unique_ids`).

use std::collections::HashMap;

use anyhow::{bail, Result};
use sshca_aws::directory::{group_id, IDENTITY_CENTER_PATH, IDENTITY_CENTER_ROLE_PREFIX};
use sshca_aws::sts::assumed_role;
use sshca_aws::Aws;
use sshca_core::access::{AccessRule, Approval};
use sshca_core::pattern::matches_any;

struct Role {
    name: String,
    path: String,
    id: String,
}

/// Binds each rule on assumed roles anew (ids a rules file carries are not trusted: they could name
/// any role): the unique ids of this account's roles whose names match the rule's role pattern
/// (for Identity Center names, only those under Identity Center's own path). A rule that names no
/// existing role is refused. Each group a rule maps is bound to the group's unique id too. A rule
/// about a member account is bound with that account's roles, read as its `lookup_role`.
pub async fn bind<'a>(aws: &Aws, store: Option<&str>, account: &str, rules: impl IntoIterator<Item = &'a mut AccessRule>) -> Result<()> {
    let mut roles_by_account: HashMap<String, Vec<Role>> = HashMap::new();
    for rule in rules {
        rule.group_ids.clear();
        for group in rule.groups.keys() {
            let id = group_id(&aws.iam, &aws.identity_store, store, &rule.arn, group).await?;
            eprintln!("access: {} maps group {group:?}, bound to {id}", rule.arn);
            rule.group_ids.insert(group.clone(), id);
        }
        if let Some(approval) = rule.approval.as_mut() {
            bind_approvers(aws, account, approval, &mut roles_by_account).await?;
        }
        let Some((pattern, _)) = assumed_role(&rule.arn) else { continue };
        let pattern = pattern.to_owned();
        let rule_account = rule.arn.split(':').nth(4).unwrap_or_default().to_owned();
        let iam = match &rule.lookup_role {
            _ if rule_account == account => aws.iam.clone(),
            Some(lookup_role) => aws_sdk_iam::Client::new(&sshca_aws::as_role(&aws.config, lookup_role).await),
            None => bail!(
                "the access rule {:?} is about account {rule_account}, whose roles cannot be looked up from this one ({account}): deploy infra/member-account.yaml there and name its LookupRoleArn in the rule's \"lookup_role\"",
                rule.arn
            ),
        };
        if !roles_by_account.contains_key(&rule_account) {
            let roles = list_roles(&iam).await?;
            roles_by_account.insert(rule_account.clone(), roles);
        }
        let identity_center = pattern.starts_with(IDENTITY_CENTER_ROLE_PREFIX);
        let ids = ids_of(&roles_by_account[&rule_account], &pattern);
        if ids.is_empty() {
            let place = if identity_center {
                format!(" under {IDENTITY_CENTER_PATH} (where IAM Identity Center keeps its roles)")
            } else {
                String::new()
            };
            bail!("the access rule {:?} names no role of its account{place}: create the role (or assign the permission set) first, then write the rule", rule.arn);
        }
        eprintln!("access: {} is bound to role(s) {}", rule.arn, ids.join(", "));
        rule.role_ids = ids;
    }
    Ok(())
}

/// Binds an approval's patterns on assumed roles to the roles of this account they name, as a
/// rule's own pattern is bound: a session approves only as one of them.
async fn bind_approvers(
    aws: &Aws,
    account: &str,
    approval: &mut Approval,
    roles_by_account: &mut HashMap<String, Vec<Role>>,
) -> Result<()> {
    approval.by_role_ids.clear();
    for pattern in &approval.by {
        let Some((role_pattern, _)) = assumed_role(pattern) else { continue };
        if pattern.split(':').nth(4) != Some(account) {
            bail!("the approvers {pattern:?} are roles of another account than this one ({account}), which cannot be bound: name approvers of this account");
        }
        if !roles_by_account.contains_key(account) {
            roles_by_account.insert(account.to_owned(), list_roles(&aws.iam).await?);
        }
        let ids = ids_of(&roles_by_account[account], role_pattern);
        if ids.is_empty() {
            bail!("the approvers {pattern:?} name no role of this account: create the role (or assign the permission set) first");
        }
        eprintln!("access: approvers {pattern} are bound to role(s) {}", ids.join(", "));
        approval.by_role_ids.extend(ids);
    }
    Ok(())
}

/// The unique ids of the roles whose names match `pattern` (for Identity Center names, only those
/// under Identity Center's own path).
fn ids_of(roles: &[Role], pattern: &str) -> Vec<String> {
    let identity_center = pattern.starts_with(IDENTITY_CENTER_ROLE_PREFIX);
    roles
        .iter()
        .filter(|role| matches_any(&[pattern.to_owned()], &role.name) && (!identity_center || role.path.starts_with(IDENTITY_CENTER_PATH)))
        .map(|role| role.id.clone())
        .collect()
}

async fn list_roles(iam: &aws_sdk_iam::Client) -> Result<Vec<Role>> {
    use aws_sdk_iam::error::ProvideErrorMetadata;
    let mut roles = Vec::new();
    let mut pages = iam.list_roles().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| {
            let service = err.as_service_error();
            sshca_client::explain::call(
                "IAM",
                service.and_then(|e| e.code()),
                service.and_then(|e| e.message()),
                "iam:ListRoles",
                "the roles the access rules name",
            )
        })?;
        roles.extend(page.roles().iter().map(|role| Role {
            name: role.role_name().to_owned(),
            path: role.path().to_owned(),
            id: role.role_id().to_owned(),
        }));
    }
    Ok(roles)
}
