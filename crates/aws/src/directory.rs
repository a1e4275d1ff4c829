//! The groups of AWS callers, read from the directory that holds them, never from the request: an
//! IAM user's IAM groups (`iam:GetUser`, `iam:ListGroupsForUser`), and an IAM Identity Center
//! user's groups in the identity store (`identitystore:GetUserId` by the session's user name,
//! `ListGroupMembershipsForMember`, `DescribeGroup`). Other callers are in no group.

use aws_sdk_identitystore::types::{AlternateIdentifier, MemberId, UniqueAttribute};
use aws_smithy_types::Document;
use sshca_core::access::Access;
use sshca_core::error::IssueError;
use sshca_core::identity::Identity;

/// The prefix of the roles IAM Identity Center makes for its permission sets. An assumed-role
/// ARN does not show the role's path, but a rule on such a role is bound to a role under
/// `/aws-reserved/sso.amazonaws.com/` (see `sshca init`), and groups are read only for callers
/// that matched a rule.
const IDENTITY_CENTER_ROLE_PREFIX: &str = "AWSReservedSSO_";

pub struct Directory {
    iam: aws_sdk_iam::Client,
    identity_store: aws_sdk_identitystore::Client,
}

fn unreadable(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> IssueError {
    IssueError::Unavailable(format!(
        "the caller's groups could not be read ({what}: {}): nothing is signed without them; try again, or check the function's {what} permission",
        aws_sdk_iam::error::DisplayErrorContext(err)
    ))
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
        let found = self.iam.get_user().user_name(user).send().await.map_err(|err| unreadable("iam:GetUser", err))?;
        if found.user().map(|user| user.user_id()) != Some(principal_id) {
            return Err(IssueError::AccessDenied(format!(
                "the IAM user {user:?} of this account is not the caller (another unique id): a user of another account has no groups here"
            )));
        }
        let mut groups = Vec::new();
        let mut pages = self.iam.list_groups_for_user().user_name(user).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| unreadable("iam:ListGroupsForUser", err))?;
            groups.extend(page.groups().iter().map(|group| group.group_name().to_owned()));
        }
        Ok(groups)
    }

    /// An Identity Center user's groups (their display names). The session name of an Identity
    /// Center role is the user's user name, set by AWS.
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
                _ => unreadable("identitystore:GetUserId", err),
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
            let page = page.map_err(|err| unreadable("identitystore:ListGroupMembershipsForMember", err))?;
            for membership in page.group_memberships() {
                let Some(group_id) = membership.group_id() else { continue };
                let group = self
                    .identity_store
                    .describe_group()
                    .identity_store_id(store)
                    .group_id(group_id)
                    .send()
                    .await
                    .map_err(|err| unreadable("identitystore:DescribeGroup", err))?;
                groups.extend(group.display_name().map(str::to_owned));
            }
        }
        Ok(groups)
    }
}
