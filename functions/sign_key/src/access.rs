//! Who may get what: the access rules of an environment's policy, what each grants, and which
//! proven identities each is about. [`crate::decide`] applies them to a request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::IssueError;
use crate::identity::ProvenIdentity;
use crate::pattern::matches_any;
use crate::request;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Names this deployment in proofs of identity (their `x-sshca-audience` header).
    #[serde(default)]
    pub audience: String,
    /// Requests without a proof are served (as an admin's) and recorded as unproven. Off unless
    /// an admin turned it on (`sshca init --allow-unproven`).
    #[serde(default)]
    pub allow_unproven: bool,
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    Admin,
    User,
    Host,
}

impl Grant {
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Admin => "admin",
            Grant::User => "user",
            Grant::Host => "host",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// An ARN pattern (`*` and `?` wildcards), e.g.
    /// `arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Engineers_*/*`.
    #[serde(rename = "match")]
    pub arn: String,
    pub grant: Grant,
    /// The session name of an assumed role is set by AWS, not by the caller: true only for IAM
    /// Identity Center roles (`AWSReservedSSO_*`), EC2 instance roles, or roles whose trust
    /// policy pins `sts:RoleSessionName`. Then a user is named by its session name and `{session}`
    /// may be used in templates; otherwise a role's user is named by the role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_name_set_by_aws: bool,
    /// `user`: the certificate's principals (`{user}`, `{session}` are filled in).
    /// `host`: the host name patterns it may sign for (`{session}` is filled in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// A longest lifetime below the environment's (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<u64>,
    /// The extensions this rule's certificates may carry (a subset of the environment's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    /// Critical options every certificate of this rule carries, e.g. `source-address`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub critical_options: BTreeMap<String, String>,
    /// For a rule on assumed roles: the unique ids (`AROA…`) of the roles its pattern named when
    /// the rule was written (`sshca init` asks IAM). An assumed-role ARN shows neither the role's
    /// path (anyone with `iam:CreateRole` can name a role `AWSReservedSSO_…` at `/`) nor which of
    /// several roles of one name, deleted and re-created, it is; STS's user id does. The rule
    /// matches only sessions of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_ids: Vec<String>,
}

impl AccessRule {
    /// A rule that makes the identities matching `pattern` admins.
    pub fn admin(pattern: &str) -> Self {
        Self {
            arn: pattern.to_owned(),
            grant: Grant::Admin,
            session_name_set_by_aws: false,
            principals: Vec::new(),
            max_ttl: None,
            extensions: None,
            critical_options: BTreeMap::new(),
            role_ids: Vec::new(),
        }
    }

    /// The role name pattern of a rule on assumed roles (`assumed-role/ROLE/SESSION`), and its
    /// session pattern.
    pub fn assumed_role(&self) -> Option<(&str, &str)> {
        self.arn.splitn(6, ':').nth(5)?.strip_prefix("assumed-role/")?.split_once('/')
    }

    /// Whether `identity` is one this rule is about: its ARN matches the pattern and, for a rule on
    /// assumed roles, its session belongs to one of the rule's roles (by unique id).
    pub fn matches(&self, identity: &ProvenIdentity) -> bool {
        if !matches_any(std::slice::from_ref(&self.arn), &identity.arn) {
            return false;
        }
        match self.assumed_role() {
            Some(_) => identity.user_id.split_once(':').is_some_and(|(role_id, _)| self.role_ids.iter().any(|id| id == role_id)),
            None => true,
        }
    }
}

impl Access {
    /// Checks the rules themselves, so that `sshca init` refuses a rule that cannot work.
    pub fn validate(&self, environment: &str) -> Result<(), IssueError> {
        let problem = |index: usize, message: String| {
            Err(IssueError::Configuration(format!("access rule {} of environment {environment:?}: {message}", index + 1)))
        };
        if self.audience.is_empty() {
            return Err(IssueError::Configuration(format!(
                "environment {environment:?} has no valid audience for proofs of identity: set one with `sshca init {environment} --audience NAME`"
            )));
        }
        if self.audience.chars().any(|c| !(c.is_ascii_alphanumeric() || "-._:@/".contains(c))) {
            return Err(IssueError::Configuration(format!(
                "the audience {:?} of environment {environment:?} may hold only letters, digits and - . _ : @ / (it goes into users' ssh config)",
                request::truncate_for_message(&self.audience)
            )));
        }
        let serves_non_admins = self.rules.iter().any(|rule| rule.grant != Grant::Admin);
        if self.allow_unproven && serves_non_admins {
            return Err(IssueError::Configuration(format!(
                "environment {environment:?} serves unproven requests as an admin's, and has user or host rules whose identities could then leave their proof out to become admins: turn one off (`sshca init {environment} --require-proof`)"
            )));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if let Err(why) = check_pattern(rule) {
                return problem(index, why);
            }
            let uses_session = rule.principals.iter().any(|p| p.contains("{session}"));
            if uses_session && !rule.session_name_set_by_aws {
                return problem(index, "{session} is the caller's choice unless AWS sets it: add \"session_name_set_by_aws\": true only for IAM Identity Center or instance roles, or roles whose trust policy pins sts:RoleSessionName".into());
            }
            match rule.grant {
                Grant::Admin if !rule.principals.is_empty() || rule.max_ttl.is_some() || !rule.critical_options.is_empty() => {
                    return problem(
                        index,
                        "an admin rule takes no principals, max_ttl or critical_options: admins sign within the environment's policy"
                            .into(),
                    );
                }
                Grant::User if rule.principals.is_empty() => {
                    return problem(index, "a user rule needs principals, e.g. [\"{user}\"]".into());
                }
                Grant::Host if rule.principals.is_empty() => {
                    return problem(
                        index,
                        "a host rule needs the host name patterns it may sign for, e.g. [\"{session}.hosts.example.com\"]".into(),
                    );
                }
                Grant::Host if rule.extensions.is_some() || !rule.critical_options.is_empty() => {
                    return problem(
                        index,
                        "a host rule takes only principals and max_ttl: host certificates carry no extensions or critical options".into(),
                    );
                }
                _ => {}
            }
            if rule.max_ttl == Some(0) {
                return problem(index, "max_ttl must be above 0".into());
            }
            for (name, value) in &rule.critical_options {
                request::check_option("critical option", name, value)?;
            }
        }
        Ok(())
    }
}

/// An ARN pattern names one partition, service and account literally: a wildcard there would
/// match identities of every account. Where a rule trusts session names, the role is named
/// exactly (`?` may stand for the fixed-length suffix of IAM Identity Center roles): anyone who can
/// create a role whose name matches a looser pattern could otherwise assume it with any session
/// name, such as another user's or another host's.
fn check_pattern(rule: &AccessRule) -> Result<(), String> {
    let fields: Vec<&str> = rule.arn.splitn(6, ':').collect();
    let literal = |text: &str| !text.is_empty() && !text.contains(['*', '?']);
    let shaped = fields.len() == 6
        && fields[0] == "arn"
        && literal(fields[1])
        && matches!(fields[2], "iam" | "sts")
        && fields[3].is_empty()
        && fields[4].len() == 12
        && fields[4].bytes().all(|b| b.is_ascii_digit());
    if !shaped {
        return Err(format!(
            "{:?} must name its partition, service (iam or sts) and 12-digit account without wildcards, e.g. arn:aws:sts::123456789012:assumed-role/ROLE/*",
            rule.arn
        ));
    }
    if fields[2] == "sts" && rule.assumed_role().is_none() {
        return Err(format!(
            "{:?}: the STS callers sshca can trust are role sessions (arn:…:sts::ACCOUNT:assumed-role/ROLE/*); a federated user names itself",
            rule.arn
        ));
    }
    if let Some((role, session)) = rule.assumed_role() {
        // Roles are bound by name when the rule is written: a wildcard would bind whatever role
        // anyone had created under a matching name by then. Only the fixed-length suffix IAM
        // Identity Center gives its roles (under its own path) may be left open, with `?`.
        let identity_center_suffix = role.starts_with("AWSReservedSSO_") && !role.contains('*');
        if role.contains(['*', '?']) && !identity_center_suffix {
            return Err(format!(
                "{:?} must name its role exactly (assumed-role/ROLE/*; `?` only for each character of an IAM Identity Center role's suffix, e.g. AWSReservedSSO_SshUsers_????????????????)",
                rule.arn
            ));
        }
        if rule.role_ids.is_empty() {
            return Err(format!(
                "{:?} is not bound to its role's unique id (an assumed-role ARN does not show the role's path, so a role named like it anywhere would match): write the rule again with `sshca init ENV --rules FILE`, which binds it",
                rule.arn
            ));
        }
        if session != "*" && !rule.session_name_set_by_aws {
            return Err(format!(
                "{:?} names a session, which is whatever the caller who assumes the role chooses: match every session of the role (assumed-role/ROLE/*), or set \"session_name_set_by_aws\" where AWS sets it",
                rule.arn
            ));
        }
    }
    if rule.session_name_set_by_aws {
        let role = rule.assumed_role().map(|(role, _)| role);
        match role {
            Some(role) if !role.contains('*') => {}
            _ => {
                return Err(format!(
                    "{:?} trusts session names, so it must name its role exactly (assumed-role/ROLE/*; `?` for each character of an IAM Identity Center role's suffix, e.g. AWSReservedSSO_SshUsers_????????????????)",
                    rule.arn
                ))
            }
        }
    }
    Ok(())
}
