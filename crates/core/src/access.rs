//! Who may get what: the access rules of an environment's policy, what each grants, and which
//! proven identities each is about. [`crate::decide`] applies them to a request. What a rule's
//! pattern means is its identity provider's business ([`crate::identity::IdentityProvider::check_rule`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::caller::Identity;
use crate::error::IssueError;
use crate::pattern::matches_any;
use crate::request;
use sshca_proto::proof::AWS_PROVIDER;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// IAM Identity Center's identity store (`d-…`), where the groups of Identity Center users
    /// are read for rules that map groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_store_id: Option<String>,
    /// How long a container trusts the groups it read of a caller (seconds, at most 60).
    #[serde(default = "default_groups_ttl")]
    pub groups_ttl_seconds: u64,
}

/// The extension that lets a FIDO key sign without a touch: granted only by a rule that names it.
pub const NO_TOUCH_REQUIRED: &str = "no-touch-required";

/// The longest a container trusts the groups it read: a change in the directory counts within it.
pub const MAX_GROUPS_TTL_SECONDS: u64 = 60;

const fn default_groups_ttl() -> u64 {
    MAX_GROUPS_TTL_SECONDS
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
    /// The identity provider whose identities the rule is about; rules that name none are AWS's.
    #[serde(default = "aws_provider", skip_serializing_if = "is_aws_provider")]
    pub provider: String,
    /// A pattern (`*` and `?` wildcards) on the identity's name; for AWS an ARN pattern (`*` and `?` wildcards), e.g.
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
    /// The unique ids of the principals the rule is bound to ([`Identity::principal_id`]); a
    /// bound rule matches only their identities. For a rule on assumed roles: the unique ids (`AROA…`) of the roles its pattern named when
    /// the rule was written (`sshca init` asks IAM). An assumed-role ARN shows neither the role's
    /// path (anyone with `iam:CreateRole` can name a role `AWSReservedSSO_…` at `/`) nor which of
    /// several roles of one name, deleted and re-created, it is; STS's user id does. The rule
    /// matches only sessions of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_ids: Vec<String>,
    /// The public key types this rule signs (a subset of the environment's `allowed_key_types`),
    /// e.g. only FIDO keys (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_types: Option<Vec<String>>,
    /// `user`: extensions every certificate of this rule carries, their values filled in from the
    /// identity (`{user}`, `{session}`), e.g. `{"login@github.com": "{user}"}`. The caller cannot
    /// choose them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extension_values: BTreeMap<String, String>,
    /// `user`: principals by directory group (`{"sre": ["root-oncall", "deploy"]}`): the
    /// certificate also carries the principals of every group the directory says the caller is in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The unique id of each group `groups` names, by name, as the directory had it when the rule
    /// was written (`sshca init` asks it): a group deleted, or never created, and then made by
    /// someone else under that name is another group.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_ids: BTreeMap<String, String>,
    /// `host`: the host's names come from its instance as its provider knows it (for AWS: the EC2
    /// instance the session is named after), within the rule's patterns; the host asks for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_instance: Option<FromInstance>,
    /// `user`: the user name the rule gives its callers (the certificate's user and key id, the
    /// key cache, revocation by user, `{user}` in its principals), from `{user}` (the provider's
    /// name for the caller, see [`crate::decide`]) and the identity's attributes (for AWS:
    /// `{account}`). A name the provider makes is unique only within its scope (for AWS, an IAM
    /// user's or role's name within its account): rules whose callers come from different scopes
    /// qualify their names, e.g. `"{user}@{account}"`, or [`Access::validate`] refuses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// For a rule about identities of another account than the CA's: the read-only role in that
    /// account (for AWS, the member-account template's `sshca-lookup-<env>`) that the rule's
    /// provider acts as to bind the rule and to look its instances up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup_role: Option<String>,
    /// `user`: a certificate only once others approved it ([`crate::approval`]): a request under
    /// this rule is recorded as pending until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// With `approval`: the requester may approve for themselves, with a reason, for an incident
    /// (a short certificate, at once, recorded as break glass and always notified).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
}

/// Who must approve a rule's requests, how many of them, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Patterns on the names of the identities that may approve (as a rule's `match`).
    pub by: Vec<String>,
    /// The unique ids of the roles the patterns on assumed roles named when the rule was written
    /// (`sshca init` binds them, as a rule's `role_ids`): a session approves only as one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_role_ids: Vec<String>,
    /// The approvers' role sessions are named by AWS after the person (IAM Identity Center roles):
    /// then a session's name is who approves; otherwise every session of one role is one approver.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_name_set_by_aws: bool,
    /// Distinct approvers a request needs.
    #[serde(default = "one")]
    pub count: u32,
    /// The longest certificate an approval yields (seconds).
    #[serde(default = "four_hours")]
    pub max_ttl: u64,
    /// How long a request may wait for approvals and its claim (seconds).
    #[serde(default = "one_hour")]
    pub expires_in: u64,
}

const fn one() -> u32 {
    1
}

const fn four_hours() -> u64 {
    4 * 3600
}

const fn one_hour() -> u64 {
    3600
}

/// Who an identity is, as approvals count people: the session's name where AWS sets it after the
/// person (`session_name_set_by_aws`), else the principal's unique id (an IAM user's, or the role's:
/// whoever may assume a role and name its sessions is one approver however many names they pick).
pub fn person(identity: &Identity, session_name_set_by_aws: bool) -> String {
    match &identity.session {
        Some(session) if session_name_set_by_aws => format!("session:{session}"),
        _ => format!("principal:{}", identity.principal_id),
    }
}

/// The longest a request may wait.
pub const MAX_APPROVAL_WAIT_SECONDS: u64 = 7 * 24 * 3600;

impl Approval {
    /// Whether `identity` is one of the approvers: its name matches a pattern and, for a session,
    /// it is of one of the bound roles.
    pub fn admits(&self, identity: &Identity) -> bool {
        self.admits_named(&identity.name, &identity.principal_id, identity.session.is_some())
    }

    /// [`Approval::admits`] for an approver known by its name, unique principal id and whether it
    /// is a session (as a verdict record keeps them).
    pub fn admits_named(&self, name: &str, principal_id: &str, session: bool) -> bool {
        matches_any(&self.by, name) && (!session || self.by_role_ids.iter().any(|id| id == principal_id))
    }
}

/// Which instances a `host` rule certifies, and under which names besides their own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromInstance {
    /// Also certify the instance's `Name` tag under this domain: `<name>.<suffix>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Only instances in one of these VPCs (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vpcs: Vec<String>,
    /// Only instances in one of these subnets (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Only instances with all of these tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl AccessRule {
    /// A rule that makes the identities matching `pattern` admins.
    pub fn admin(pattern: &str) -> Self {
        Self::new(pattern, Grant::Admin)
    }

    /// A rule that gives the identities matching `pattern` `grant`, and nothing more: no
    /// principals, limits, bindings or options.
    pub fn new(pattern: &str, grant: Grant) -> Self {
        Self {
            provider: aws_provider(),
            arn: pattern.to_owned(),
            grant,
            session_name_set_by_aws: false,
            principals: Vec::new(),
            max_ttl: None,
            extensions: None,
            critical_options: BTreeMap::new(),
            role_ids: Vec::new(),
            key_types: None,
            extension_values: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_ids: BTreeMap::new(),
            from_instance: None,
            lookup_role: None,
            user_name: None,
            approval: None,
            break_glass: false,
        }
    }

    /// Whether `identity` is one this rule is about: of the rule's provider, its name matching the
    /// pattern and, for a bound rule, of one of the rule's principals (by unique id).
    pub fn matches(&self, identity: &Identity) -> bool {
        // A session is of a principal whose name anyone may take again: only a bound rule is
        // about it, whatever the provider's checks let through.
        let bound = if self.role_ids.is_empty() { identity.session.is_none() } else { self.role_ids.contains(&identity.principal_id) };
        identity.provider == self.provider && matches_any(std::slice::from_ref(&self.arn), &identity.name) && bound
    }
}

fn aws_provider() -> String {
    AWS_PROVIDER.to_owned()
}

fn is_aws_provider(provider: &str) -> bool {
    provider == AWS_PROVIDER
}

impl Default for Access {
    fn default() -> Self {
        Self {
            audience: String::new(),
            allow_unproven: false,
            rules: Vec::new(),
            identity_store_id: None,
            groups_ttl_seconds: default_groups_ttl(),
        }
    }
}

impl Access {
    /// The rule that decides for `identity` (the first that matches), with its index.
    pub fn rule_for(&self, identity: &Identity) -> Option<(usize, &AccessRule)> {
        self.rules.iter().enumerate().find(|(_, rule)| rule.matches(identity))
    }

    /// Checks the rules themselves, so that `sshca init` refuses a rule that cannot work.
    /// `check_rule` is the rule's identity provider's own check (`Providers::check_rule`), and
    /// `user_name_scope` where the names it gives a rule's callers are unique
    /// (`Providers::user_name_scope`).
    pub fn validate(
        &self,
        environment: &str,
        check_rule: impl Fn(&AccessRule) -> Result<(), String>,
        user_name_scope: impl Fn(&AccessRule) -> Option<String>,
    ) -> Result<(), IssueError> {
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
        if self.groups_ttl_seconds > MAX_GROUPS_TTL_SECONDS {
            return Err(IssueError::Configuration(format!(
                "groups_ttl_seconds of environment {environment:?} is {}: a directory change must count within {MAX_GROUPS_TTL_SECONDS} s",
                self.groups_ttl_seconds
            )));
        }
        let serves_non_admins = self.rules.iter().any(|rule| rule.grant != Grant::Admin);
        if self.allow_unproven && serves_non_admins {
            return Err(IssueError::Configuration(format!(
                "environment {environment:?} serves unproven requests as an admin's, and has user or host rules whose identities could then leave their proof out to become admins: turn one off (`sshca init {environment} --require-proof`)"
            )));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if let Err(why) = check_rule(rule) {
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
                Grant::User if rule.principals.is_empty() && rule.groups.is_empty() => {
                    return problem(index, "a user rule needs principals, e.g. [\"{user}\"], or groups that map to principals".into());
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
            if rule.grant != Grant::User && !(rule.extension_values.is_empty() && rule.groups.is_empty()) {
                return problem(index, "only a user rule takes extension_values or groups".into());
            }
            let mut templates = rule.extension_values.values().chain(rule.groups.values().flatten());
            if let Some(template) = templates.find(|t| t.contains("{session}")).filter(|_| !rule.session_name_set_by_aws) {
                return problem(
                    index,
                    format!("{template:?} uses {{session}}, which is the caller's choice unless AWS sets it (session_name_set_by_aws)"),
                );
            }
            for (name, value) in &rule.extension_values {
                request::check_option("extension", name, value)?;
            }
            for (group, principals) in &rule.groups {
                if group.is_empty() || principals.is_empty() {
                    return problem(index, format!("group {group:?} must be named and map to at least one principal"));
                }
                if !rule.group_ids.contains_key(group) {
                    return problem(index, format!("group {group:?} is not bound to its unique id (a group of that name made later would be another): write the rule with `sshca init {environment} --rules FILE`, which binds it"));
                }
            }
            if rule.extension_values.contains_key(NO_TOUCH_REQUIRED) {
                return problem(index, "no-touch-required is no value to set: name it in the rule's extensions".into());
            }
            if rule.from_instance.is_some() && (rule.grant != Grant::Host || !rule.session_name_set_by_aws) {
                return problem(
                    index,
                    "from_instance is for host rules on instance roles, whose session AWS names after the instance: set \"grant\": \"host\" and \"session_name_set_by_aws\": true".into(),
                );
            }
            if let Some(approval) = &rule.approval {
                if rule.grant != Grant::User {
                    return problem(index, "only a user rule takes an approval".into());
                }
                if approval.by.is_empty() || approval.count == 0 || approval.max_ttl == 0 {
                    return problem(
                        index,
                        "an approval names who approves (by), at least one approver (count) and a max_ttl above 0".into(),
                    );
                }
                if approval.expires_in == 0 || approval.expires_in > MAX_APPROVAL_WAIT_SECONDS {
                    return problem(index, format!("an approval's expires_in is 1 to {MAX_APPROVAL_WAIT_SECONDS} seconds"));
                }
            }
            if rule.break_glass && rule.approval.is_none() {
                return problem(index, "break_glass is self-approval: it goes with an approval".into());
            }
            if rule.key_types.as_ref().is_some_and(Vec::is_empty) {
                return problem(index, "key_types, when given, names at least one key type".into());
            }
            for (name, value) in &rule.critical_options {
                request::check_option("critical option", name, value)?;
            }
            if let Some(template) = &rule.user_name {
                if rule.grant != Grant::User || !template.contains("{user}") {
                    return problem(index, format!("user_name {template:?}: only a user rule takes one, and it keeps {{user}} (e.g. \"{{user}}@{{account}}\"): without it, all its callers would be one user"));
                }
            }
        }
        self.check_user_names_are_unique(user_name_scope)
            .map_err(|(index, why)| IssueError::Configuration(format!("access rule {} of environment {environment:?}: {why}", index + 1)))
    }

    /// Two callers must never get one user name: it is their `{user}` principals, their key
    /// cache and what revoking the user revokes. The names a provider gives are unique within a
    /// scope (an AWS account, IAM Identity Center's directory), so the user rules whose names are
    /// not qualified across scopes (the provider says which are) must share one.
    fn check_user_names_are_unique(&self, user_name_scope: impl Fn(&AccessRule) -> Option<String>) -> Result<(), (usize, String)> {
        let qualify = "qualify them, e.g. \"user_name\": \"{user}@{account}\"";
        let mut first: Option<(usize, String)> = None;
        let users = self.rules.iter().enumerate().filter(|(_, rule)| rule.grant == Grant::User);
        for (index, scope) in users.filter_map(|(index, rule)| user_name_scope(rule).map(|scope| (index, scope))) {
            if scope.contains('*') {
                return Err((
                    index,
                    format!("its callers' user names come from {scope}, where one name can be several callers': {qualify}"),
                ));
            }
            match &first {
                None => first = Some((index, scope)),
                Some((other, first_scope)) if *first_scope != scope => {
                    return Err((
                        index,
                        format!(
                            "its callers' user names come from {scope} and those of access rule {} from {first_scope}: one name in both would be one user (the same {{user}} principals, key cache and revocation); {qualify}",
                            other + 1
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
