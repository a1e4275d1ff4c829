//! The groups of AWS callers, by unique id, read from the directory that holds them, never from
//! the request: an IAM user's IAM groups (`iam:GetUser`, `iam:ListGroupsForUser`), and an IAM
//! Identity Center user's groups in the identity store (`iam:GetRole` to see the session is of a
//! genuine Identity Center role, `identitystore:GetUserId` by the session's user name,
//! `ListGroupMembershipsForMember`). Rules bind the groups they map to these ids when they are
//! written ([`group_id`]). Other callers are in no group.

use aws_sdk_identitystore::types::{AlternateIdentifier, MemberId, UniqueAttribute};
use aws_smithy_types::Document;
use sshca_core::access::Access;
use sshca_core::error::IssueError;
use sshca_core::identity::Identity;

use crate::error::lookup_failed;

/// The prefix of the roles IAM Identity Center makes for its permission sets.
pub const IDENTITY_CENTER_ROLE_PREFIX: &str = "AWSReservedSSO_";
/// Where IAM Identity Center keeps them: a role of that name anywhere else is not one of them.
pub const IDENTITY_CENTER_PATH: &str = "/aws-reserved/sso.amazonaws.com/";

pub struct Directory {
    iam: aws_sdk_iam::Client,
    identity_store: aws_sdk_identitystore::Client,
}

impl Directory {
    pub fn new(iam: aws_sdk_iam::Client, identity_store: aws_sdk_identitystore::Client) -> Self {
        Self { iam, identity_store }
    }

    /// The groups `identity` is in, by name.
    pub async fn groups(&self, identity: &Identity, access: &Access) -> Result<Vec<String>, IssueError> {
        match (identity.session.as_deref(), identity.user.as_deref()) {
            (None, Some(user)) => self.iam_groups(user, &identity.principal_id).await,
            (Some(session), Some(role)) if role.starts_with(IDENTITY_CENTER_ROLE_PREFIX) => {
                self.check_identity_center_role(role, &identity.principal_id).await?;
                let store = access.identity_store_id.as_deref().ok_or_else(|| {
                    IssueError::Configuration(
                        "the access rules map groups of IAM Identity Center users, and the policy names no identity store: set it with `sshca init ENV --identity-store-id d-…`".into(),
                    )
                })?;
                self.identity_center_groups(store, session).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// An IAM user's groups. The user is looked up by name in this account, and must be the very
    /// user STS named (its unique id): a user of another account, or one deleted and re-created
    /// under the same name, is not in this one's groups.
    async fn iam_groups(&self, user: &str, principal_id: &str) -> Result<Vec<String>, IssueError> {
        let found = self.iam.get_user().user_name(user).send().await.map_err(|err| match err.as_service_error() {
            Some(missing) if missing.is_no_such_entity_exception() => IssueError::AccessDenied(format!(
                "there is no IAM user {user:?} in this account: a user of another account has no groups here"
            )),
            _ => lookup_failed("the caller\'s groups", "iam:GetUser", err),
        })?;
        if found.user().map(|user| user.user_id()) != Some(principal_id) {
            return Err(IssueError::AccessDenied(format!(
                "the IAM user {user:?} of this account is not the caller (another unique id): a user of another account has no groups here"
            )));
        }
        let mut groups = Vec::new();
        let mut pages = self.iam.list_groups_for_user().user_name(user).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| lookup_failed("the caller\'s groups", "iam:ListGroupsForUser", err))?;
            groups.extend(page.groups().iter().map(|group| group.group_id().to_owned()));
        }
        Ok(groups)
    }

    /// A session's role is one IAM Identity Center made: the very role STS named (by unique id),
    /// under Identity Center's own path. Only then does AWS set its session name to the user's
    /// user name; a role of that name made by anyone else would let its users choose it.
    async fn check_identity_center_role(&self, role: &str, principal_id: &str) -> Result<(), IssueError> {
        let found =
            self.iam.get_role().role_name(role).send().await.map_err(|err| lookup_failed("the caller\'s groups", "iam:GetRole", err))?;
        match found.role() {
            Some(genuine) if genuine.role_id() == principal_id && genuine.path().starts_with(IDENTITY_CENTER_PATH) => Ok(()),
            _ => Err(IssueError::AccessDenied(format!(
                "the role {role:?} is not the IAM Identity Center role under {IDENTITY_CENTER_PATH} the caller's session is of: its session names no Identity Center user"
            ))),
        }
    }

    /// An Identity Center user's groups (their ids). The session name of an Identity Center role
    /// is the user's user name, set by AWS.
    async fn identity_center_groups(&self, store: &str, user_name: &str) -> Result<Vec<String>, IssueError> {
        let by_name = UniqueAttribute::builder()
            .attribute_path("UserName")
            .attribute_value(Document::String(user_name.to_owned()))
            .build()
            .map_err(|err| IssueError::Unavailable(err.to_string()))?;
        let user = self
            .identity_store
            .get_user_id()
            .identity_store_id(store)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(by_name))
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(missing) if missing.is_resource_not_found_exception() => IssueError::AccessDenied(format!(
                    "{user_name:?} is not a user of identity store {store}: only its users get their groups' principals"
                )),
                _ => lookup_failed("the caller\'s groups", "identitystore:GetUserId", err),
            })?;
        let mut groups = Vec::new();
        let mut pages = self
            .identity_store
            .list_group_memberships_for_member()
            .identity_store_id(store)
            .member_id(MemberId::UserId(user.user_id().to_owned()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| lookup_failed("the caller\'s groups", "identitystore:ListGroupMembershipsForMember", err))?;
            groups.extend(page.group_memberships().iter().filter_map(|membership| membership.group_id()).map(str::to_owned));
        }
        Ok(groups)
    }
}

/// The unique id of the group `name` where a rule about `rule_arn` reads groups: an IAM group
/// (`iam:GetGroup`) for a rule on IAM users, an identity-store group (`identitystore:GetGroupId`
/// by display name) for a rule on IAM Identity Center roles. For `sshca init`, which binds rules.
pub async fn group_id(
    iam: &aws_sdk_iam::Client,
    identity_store: &aws_sdk_identitystore::Client,
    store: Option<&str>,
    rule_arn: &str,
    name: &str,
) -> Result<String, IssueError> {
    let resource = rule_arn.splitn(6, ':').nth(5).unwrap_or_default();
    let missing = |place: String| {
        IssueError::Configuration(format!(
            "the access rule {rule_arn:?} maps group {name:?}, which {place} does not have: create it first, then write the rule"
        ))
    };
    if resource.starts_with("user/") {
        let found = iam.get_group().group_name(name).send().await.map_err(|err| match err.as_service_error() {
            Some(absent) if absent.is_no_such_entity_exception() => missing("IAM".into()),
            _ => lookup_failed("the caller\'s groups", "iam:GetGroup", err),
        })?;
        return found.group().map(|group| group.group_id().to_owned()).ok_or_else(|| missing("IAM".into()));
    }
    let store = store.ok_or_else(|| {
        IssueError::Configuration(format!(
            "the access rule {rule_arn:?} maps groups of IAM Identity Center users: name the identity store with --identity-store-id d-…"
        ))
    })?;
    let by_name = UniqueAttribute::builder()
        .attribute_path("DisplayName")
        .attribute_value(Document::String(name.to_owned()))
        .build()
        .map_err(|err| IssueError::Configuration(err.to_string()))?;
    let found = identity_store
        .get_group_id()
        .identity_store_id(store)
        .alternate_identifier(AlternateIdentifier::UniqueAttribute(by_name))
        .send()
        .await
        .map_err(|err| match err.as_service_error() {
            Some(absent) if absent.is_resource_not_found_exception() => missing(format!("identity store {store}")),
            _ => lookup_failed("the caller\'s groups", "identitystore:GetGroupId", err),
        })?;
    Ok(found.group_id().to_owned())
}
