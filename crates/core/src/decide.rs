//! Deciding a request: the environment's access rules applied to its proven caller.
//!
//! The rules are an ordered list; the first whose pattern matches the caller's proven ARN decides.
//! `admin` signs within the environment's limits; `user` signs only for itself, with the rule's
//! principals and limits; `host` signs only host certificates for names its patterns allow. What
//! a rule grants is never more than the environment allows: the request is judged by the
//! environment's policy and then by the rule's narrower one.

use std::borrow::Cow;

use crate::access::{AccessRule, Grant, NO_TOUCH_REQUIRED};
use crate::error::IssueError;
use crate::identity::Identity;
use crate::pattern::matches_any;
use crate::policy::{Plan, Policy};
use crate::request::{self, CertKind, SignRequest};

/// Who asks, as far as the function knows.
#[derive(Debug, Clone, PartialEq, Eq)]
// One per request, moved a few times: boxing the identity would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Requester {
    Proven(Identity),
    /// No proof, in an environment that allows it.
    Unproven,
}

impl Decision {
    /// Refuses `key` where the environment does, or where the rule that decided names the key
    /// types it signs and `key`'s is not among them.
    pub fn check_public_key(&self, policy: &Policy, key: &ssh_key::PublicKey) -> Result<(), IssueError> {
        policy.check_public_key(key)?;
        let Some((index, types)) = self.rule.and_then(|index| Some((index, policy.access.rules.get(index)?.key_types.as_ref()?))) else {
            return Ok(());
        };
        let name = key.algorithm().as_str().to_owned();
        if types.contains(&name) {
            return Ok(());
        }
        Err(IssueError::PolicyViolation(format!(
            "access rule {} of environment {:?} signs only {} keys, and this is a {name} key: {}",
            index + 1,
            policy.environment,
            types.join(", "),
            if types.iter().any(|t| t.starts_with("sk-")) {
                "make a security-key (FIDO) key with `ssh-keygen -t ed25519-sk` and ask with it"
            } else {
                "ask with a key of one of those types"
            }
        )))
    }
}

impl Requester {
    /// The proven identity's name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Requester::Proven(identity) => Some(&identity.name),
            Requester::Unproven => None,
        }
    }
}

/// What the access rules decided: the request as it will be signed (user name, principals,
/// validity and options filled in) and its plan.
#[derive(Debug, Clone)]
pub struct Decision {
    pub request: SignRequest,
    pub plan: Plan,
    /// `admin`, `user`, `host`, or `unproven`.
    pub access: &'static str,
    /// The index of the rule that matched.
    pub rule: Option<usize>,
    /// The rule's mapped groups the caller is in, by name.
    pub groups: Option<Vec<String>>,
}

fn denied(environment: &str, name: &str, why: &str) -> IssueError {
    IssueError::AccessDenied(format!("{} {why} in environment {environment:?}", request::truncate_for_message(name)))
}

/// Applies the environment's access rules to `request` from `requester`, then its policy.
pub fn decide(policy: &Policy, requester: &Requester, request: &SignRequest, now: u64) -> Result<Decision, IssueError> {
    let environment = &policy.environment;
    let identity = match requester {
        Requester::Unproven => {
            // Served as an admin would be, and recorded as unproven.
            request::check_username(&request.username)?;
            let mut request = request.clone();
            without_no_touch(&mut request, None);
            let plan = policy.plan(&request, now)?;
            return Ok(Decision { request, plan, access: "unproven", rule: None, groups: None });
        }
        Requester::Proven(identity) => identity,
    };
    let Some((index, rule)) = policy.access.rule_for(identity) else {
        return Err(IssueError::AccessDenied(format!(
            "{} matches no access rule of environment {environment:?}: an admin can add one with `sshca init {environment} --rules FILE` (see `sshca show-policy {environment}`)",
            identity.name
        )));
    };
    let mut request = request.clone();
    let mut limits = policy.clone();
    // Critical options a rule imposes only narrow where a certificate works: the environment
    // accepts them even where it lets no request ask for them.
    let mut environment_limits = Cow::Borrowed(policy);
    let mut in_groups = None;
    match rule.grant {
        Grant::Admin => {
            if request.username.is_empty() {
                return Err(IssueError::InvalidRequest("whose certificate? name the user (-u USER) or the host".into()));
            }
            without_no_touch(&mut request, Some(rule));
        }
        Grant::User => {
            if request.cert_type == CertKind::Host {
                return Err(denied(environment, &identity.name, "is a user and may not get host certificates"));
            }
            let name = user_name(rule, identity)?;
            if !request.username.is_empty() && request.username != name {
                return Err(denied(
                    environment,
                    &identity.name,
                    &format!("may sign only for itself ({name:?}), not for {:?}", request::truncate_for_message(&request.username)),
                ));
            }
            request.username = name.clone();
            let (principals, groups) = principals_of(policy, rule, &name, identity)?;
            in_groups = groups;
            limits.allowed_principals = principals.clone();
            request.principals.get_or_insert(principals);
            if let Some(max_ttl) = rule.max_ttl {
                limits.max_ttl = limits.max_ttl.min(max_ttl);
            }
            if request.ttl.is_none() && request.valid_before.is_none() {
                request.ttl = Some(policy.default_ttl.min(limits.max_ttl));
            }
            if let Some(extensions) = &rule.extensions {
                limits.allowed_extensions.retain(|name| extensions.contains(name));
            }
            // A FIDO key's certificate lets its holder skip the touch only where the rule says so.
            if !rule.extensions.as_ref().is_some_and(|extensions| extensions.iter().any(|name| name == NO_TOUCH_REQUIRED)) {
                limits.allowed_extensions.retain(|name| name != NO_TOUCH_REQUIRED);
            }
            let allowed = &limits.allowed_extensions;
            let extensions = request.extensions.get_or_insert_with(|| {
                policy.default_extensions.iter().filter(|(n, _)| allowed.contains(n)).map(|(n, v)| (n.clone(), v.clone())).collect()
            });
            for (extension, template) in &rule.extension_values {
                let value = expand(std::slice::from_ref(template), &name, identity)?.remove(0);
                if extensions.get(extension).is_some_and(|asked| *asked != value) {
                    return Err(IssueError::PolicyViolation(format!(
                        "the access rule of {} sets the extension {extension:?} from the identity: leave it out of the request",
                        identity.name
                    )));
                }
                extensions.insert(extension.clone(), value);
                limits.allowed_extensions.push(extension.clone());
                environment_limits.to_mut().allowed_extensions.push(extension.clone());
            }
            if !rule.critical_options.is_empty() {
                if request.critical_options.as_ref().is_some_and(|asked| asked != &rule.critical_options) {
                    return Err(IssueError::PolicyViolation(format!(
                        "the access rule of {} sets the critical options {:?}: leave them out of the request",
                        identity.name, rule.critical_options
                    )));
                }
                request.critical_options = Some(rule.critical_options.clone());
                limits.allowed_critical_options = rule.critical_options.keys().cloned().collect();
                environment_limits.to_mut().allowed_critical_options.extend(limits.allowed_critical_options.iter().cloned());
            }
        }
        Grant::Host => {
            if request.cert_type != CertKind::Host {
                return Err(denied(environment, &identity.name, "is a host and may get only host certificates"));
            }
            limits.allowed_host_principals = expand(&rule.principals, "", identity)?;
            if rule.from_instance.is_some() {
                let names = instance_names(&limits.allowed_host_principals, identity)?;
                if let Some(beyond) = request.principals.iter().flatten().find(|asked| !names.contains(asked)) {
                    return Err(denied(
                        environment,
                        &identity.name,
                        &format!(
                            "may name only its instance's names ({}), not {:?}",
                            names.join(", "),
                            request::truncate_for_message(beyond)
                        ),
                    ));
                }
                if !request.username.is_empty() && !names.contains(&request.username) {
                    return Err(denied(environment, &identity.name, "may name a host certificate only after one of its instance's names"));
                }
                request.username = names[0].clone();
                request.principals = Some(names);
            }
            if let Some(max_ttl) = rule.max_ttl {
                limits.host_max_ttl = limits.host_max_ttl.min(max_ttl);
                if request.ttl.is_none() && request.valid_before.is_none() {
                    request.ttl = Some(policy.host_default_ttl.min(limits.host_max_ttl));
                }
            }
            if request.username.is_empty() {
                request.username = request.principals.as_ref().and_then(|p| p.first().cloned()).unwrap_or_default();
            }
            if !request.principals.as_ref().is_some_and(|p| p.contains(&request.username)) {
                return Err(denied(environment, &identity.name, "may name a host certificate only after one of its host names"));
            }
        }
    }
    request::check_username(&request.username)?;
    // The environment's policy first (what anyone may get here), then the rule's narrower one.
    let plan = environment_limits.plan(&request, now)?;
    let narrowed = limits.plan(&request, now).map_err(|err| match err {
        IssueError::PolicyViolation(message) => {
            IssueError::PolicyViolation(format!("{message} (access rule {} for {}: {})", index + 1, identity.name, rule.arn))
        }
        other => other,
    })?;
    debug_assert_eq!(plan, narrowed, "both policies judge the same filled-in request");
    Ok(Decision { request, plan, access: rule.grant.as_str(), rule: Some(index), groups: in_groups })
}

/// The user name a `user` rule gives `identity`: its session's name where the rule trusts session
/// names (for AWS: where AWS sets them), else the user it names (an IAM user's, or a role's name).
fn user_name(rule: &AccessRule, identity: &Identity) -> Result<String, IssueError> {
    let name = match (&identity.session, &identity.user) {
        (Some(session), _) if rule.session_name_set_by_aws => session,
        (_, Some(user)) => user,
        _ => {
            return Err(IssueError::AccessDenied(format!(
                "{} names no user (for AWS: it is neither an IAM user nor an assumed role): give it an admin rule or use a role",
                identity.name
            )))
        }
    };
    let name = match &rule.user_name {
        None => name.to_owned(),
        Some(template) => qualified(template, name, identity)?,
    };
    request::check_username(&name).map_err(|_| {
        IssueError::AccessDenied(format!(
            "{} names the user {name:?}, which cannot be a certificate's user name (letters, digits, '.', '_', '-', '@', '+')",
            identity.name
        ))
    })?;
    Ok(name)
}

/// A rule's `user_name` template with `{user}` and the identity's attributes (for AWS:
/// `{account}`) filled in.
fn qualified(template: &str, user: &str, identity: &Identity) -> Result<String, IssueError> {
    let filled =
        identity.attributes.iter().fold(template.replace("{user}", user), |name, (key, value)| name.replace(&format!("{{{key}}}"), value));
    if filled.contains('{') {
        let known: Vec<String> = identity.attributes.keys().map(|key| format!("{{{key}}}")).collect();
        return Err(IssueError::Configuration(format!(
            "the access rule for {} names its users {template:?}, with a placeholder its identities lack: use {{user}} and {}",
            identity.name,
            known.join(", ")
        )));
    }
    Ok(filled)
}

/// The names of `identity`'s instance that the rule's patterns allow; none is refused.
fn instance_names(patterns: &[String], identity: &Identity) -> Result<Vec<String>, IssueError> {
    let names = identity
        .instance_names
        .as_deref()
        .ok_or_else(|| IssueError::Unavailable(format!("the instance of {} was not looked up: ask again", identity.name)))?;
    let allowed: Vec<String> = names.iter().filter(|name| matches_any(patterns, name)).cloned().collect();
    if allowed.is_empty() {
        return Err(IssueError::AccessDenied(format!(
            "none of the names of the instance of {} ({}) is among its access rule's host names ({}): fix the rule's principals",
            identity.name,
            names.join(", "),
            patterns.join(", ")
        )));
    }
    Ok(allowed)
}

/// A request without `no-touch-required` unless `rule` names it in its extensions: admins and
/// unproven requests sign within the environment, and still never waive a security key's touch
/// unless a rule says so.
fn without_no_touch(request: &mut SignRequest, rule: Option<&AccessRule>) {
    if rule.and_then(|rule| rule.extensions.as_ref()).is_some_and(|names| names.iter().any(|name| name == NO_TOUCH_REQUIRED)) {
        return;
    }
    if let Some(extensions) = &mut request.extensions {
        extensions.remove(NO_TOUCH_REQUIRED);
    }
}

/// The principals a `user` rule gives `identity`: the rule's own, and those of each of the
/// caller's directory groups (by the groups' bound ids) the rule maps that the environment
/// allows; and the names of those groups.
fn principals_of(
    policy: &Policy,
    rule: &AccessRule,
    user: &str,
    identity: &Identity,
) -> Result<(Vec<String>, Option<Vec<String>>), IssueError> {
    let mut principals = expand(&rule.principals, user, identity)?;
    if rule.groups.is_empty() {
        return Ok((principals, None));
    }
    let groups = identity
        .groups
        .as_deref()
        .ok_or_else(|| IssueError::Unavailable(format!("the groups of {} were not read from the directory: ask again", identity.name)))?;
    let member = |group: &String| rule.group_ids.get(group).is_some_and(|id| groups.contains(id));
    let names: Vec<String> = rule.groups.keys().filter(|group| member(group)).cloned().collect();
    for (group, mapped) in rule.groups.iter().filter(|(group, _)| member(group)) {
        for principal in expand(mapped, user, identity)? {
            if matches_any(&policy.allowed_principals, &principal) && !principals.contains(&principal) {
                principals.push(principal);
            } else if !principals.contains(&principal) {
                tracing::warn!(group, principal, "a group's principal is not allowed in the environment: left out");
            }
        }
    }
    if principals.is_empty() {
        return Err(IssueError::AccessDenied(format!(
            "{} is in none of the groups its access rule maps to principals ({}): ask an admin to add you to one",
            identity.name,
            rule.groups.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok((principals, Some(names)))
}

fn expand(templates: &[String], user: &str, identity: &Identity) -> Result<Vec<String>, IssueError> {
    let session = identity.session.as_deref();
    templates
        .iter()
        .map(|template| {
            if template.contains("{session}") && session.is_none() {
                return Err(IssueError::AccessDenied(format!(
                    "{} has no session name, and its access rule's principal {template:?} needs one",
                    identity.name
                )));
            }
            Ok(template.replace("{user}", user).replace("{session}", session.unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::access::{Access, FromInstance};
    use crate::testing;

    const NOW: u64 = 1_800_000_000;

    fn identity(arn: &str) -> Requester {
        Requester::Proven(testing::aws_identity(arn))
    }

    fn policy() -> Policy {
        let mut policy = Policy::new("staging");
        policy.allowed_principals = vec!["deploy".into(), "alice".into(), "bob".into(), "eng".into(), "jane".into()];
        policy.default_principals = vec!["deploy".into()];
        policy.allowed_host_principals = vec!["*.example.com".into()];
        policy.access = Access {
            audience: "sshca:b:staging".into(),
            allow_unproven: false,
            rules: vec![
                AccessRule::admin("arn:aws:iam::111111111111:user/admin"),
                AccessRule {
                    principals: vec!["{user}".into(), "deploy".into()],
                    max_ttl: Some(8 * 3600),
                    extensions: Some(vec!["permit-pty".into()]),
                    critical_options: [("source-address".to_owned(), "10.0.0.0/8".to_owned())].into(),
                    ..AccessRule::new("arn:aws:iam::111111111111:user/*", Grant::User)
                },
                AccessRule {
                    session_name_set_by_aws: true,
                    principals: vec!["{user}".into()],
                    role_ids: vec!["AROAAWSReservedSSO_Eng".into()],
                    ..AccessRule::new("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_???/*", Grant::User)
                },
                AccessRule {
                    principals: vec!["{user}".into()],
                    role_ids: vec!["AROAeng".into()],
                    ..AccessRule::new("arn:aws:sts::111111111111:assumed-role/eng/*", Grant::User)
                },
                AccessRule {
                    session_name_set_by_aws: true,
                    principals: vec!["{session}.example.com".into()],
                    role_ids: vec!["AROAweb-hosts".into()],
                    ..AccessRule::new("arn:aws:sts::111111111111:assumed-role/web-hosts/*", Grant::Host)
                },
            ],
            ..Access::default()
        };
        policy.validate(&testing::providers()).unwrap();
        policy
    }

    #[test]
    fn a_bound_rule_matches_only_its_principals() {
        let mut unbound = policy();
        unbound.access.rules[3].role_ids.clear();
        let anyone = Identity { principal_id: "AROAOTHER".into(), ..testing::aws_identity("arn:aws:sts::111111111111:assumed-role/eng/x") };
        assert!(!unbound.access.rules[3].matches(&anyone), "an unbound rule is about no session, whatever the provider let through");
        assert!(!policy().access.rules[3].matches(&anyone));
        let elsewhere = Identity { provider: "oidc".into(), ..testing::aws_identity("arn:aws:iam::111111111111:user/admin") };
        assert!(!policy().access.rules[0].matches(&elsewhere), "a rule is about its own provider's identities only");
    }

    fn request() -> SignRequest {
        SignRequest { environment: "staging".into(), reason: "r".into(), ..Default::default() }
    }

    #[test]
    fn a_user_gets_its_own_templated_certificate_within_its_rule() {
        let decision = decide(&policy(), &identity("arn:aws:iam::111111111111:user/alice"), &request(), NOW).unwrap();
        assert_eq!(decision.request.username, "alice");
        assert_eq!(decision.plan.principals, ["alice", "deploy"]);
        assert_eq!(decision.plan.extensions.keys().collect::<Vec<_>>(), ["permit-pty"]);
        assert_eq!(decision.plan.critical_options["source-address"], "10.0.0.0/8");
        assert_eq!(decision.access, "user");
        assert_eq!(decision.rule, Some(1));
    }

    #[test]
    fn a_rule_qualifies_its_users_names_with_the_identitys_attributes() {
        let mut policy = policy();
        policy.access.rules[1].user_name = Some("{user}@{account}".into());
        policy.allowed_principals.push("alice@111111111111".into());
        let decision = decide(&policy, &identity("arn:aws:iam::111111111111:user/alice"), &request(), NOW).unwrap();
        assert_eq!(decision.request.username, "alice@111111111111", "the key cache, key id and revocation name");
        assert_eq!(decision.plan.principals, ["alice@111111111111", "deploy"], "{{user}} is the qualified name");

        policy.access.rules[1].user_name = Some("{user}@{region}".into());
        let refusal = decide(&policy, &identity("arn:aws:iam::111111111111:user/alice"), &request(), NOW).unwrap_err().to_string();
        assert!(refusal.contains("a placeholder its identities lack") && refusal.contains("{account}"), "{refusal}");
    }

    #[test]
    fn user_rules_of_different_scopes_must_qualify_their_names() {
        // as the AWS provider scopes names: by account, by Identity Center, none once qualified
        let account_of = |rule: &AccessRule| match (&rule.user_name, rule.session_name_set_by_aws) {
            (Some(template), _) if template.contains("{account}") => None,
            (_, true) => Some("IAM Identity Center".to_owned()),
            _ => Some(format!("account {}", rule.arn.split(':').nth(4).unwrap())),
        };
        let user_rule = |arn: &str| AccessRule { principals: vec!["{user}".into()], ..AccessRule::new(arn, Grant::User) };
        let access = |rules: Vec<AccessRule>| Access { audience: "sshca:b:staging".into(), rules, ..Access::default() };
        let validate = |rules: Vec<AccessRule>| access(rules).validate("staging", |_| Ok(()), account_of).map_err(|e| e.to_string());
        let home = user_rule("arn:aws:iam::000000000000:user/*");
        let member = user_rule("arn:aws:iam::111111111111:user/*");
        let refusal = validate(vec![home.clone(), member.clone()]).unwrap_err();
        assert!(
            refusal.contains("access rule 2")
                && refusal.contains("account 111111111111")
                && refusal.contains("access rule 1 from account 000000000000"),
            "{refusal}"
        );
        assert!(refusal.contains("\"user_name\": \"{user}@{account}\""), "the fix: {refusal}");
        let qualified = AccessRule { user_name: Some("{user}@{account}".into()), ..member.clone() };
        validate(vec![home.clone(), qualified.clone()]).unwrap();
        validate(vec![home.clone(), user_rule("arn:aws:iam::000000000000:user/ops-*")]).unwrap();
        let anywhere = validate(vec![user_rule("arn:aws:iam::*:user/*")]).unwrap_err();
        assert!(anywhere.contains("account *"), "{anywhere}");
        let identity_center =
            AccessRule { session_name_set_by_aws: true, ..user_rule("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_1/*") };
        // Identity Center's jane is not the account's IAM user jane: one of them qualifies
        assert!(validate(vec![home.clone(), identity_center.clone()]).unwrap_err().contains("IAM Identity Center"));
        validate(vec![AccessRule { user_name: Some("{user}@{account}".into()), ..home.clone() }, identity_center]).unwrap();
        // a template without the account qualifies nothing
        let unqualified = AccessRule { user_name: Some("{user}-x".into()), ..member.clone() };
        assert!(validate(vec![home.clone(), unqualified]).unwrap_err().contains("account 111111111111"));
        for template in ["{account}", "jane"] {
            let one_name = AccessRule { user_name: Some(template.into()), ..member.clone() };
            assert!(validate(vec![one_name]).unwrap_err().contains("all its callers would be one user"), "{template}");
        }
        let on_a_host_rule =
            AccessRule { user_name: Some("{user}@{account}".into()), ..AccessRule::new("arn:aws:iam::000000000000:user/h", Grant::Host) };
        assert!(validate(vec![AccessRule { principals: vec!["h.example.com".into()], ..on_a_host_rule }])
            .unwrap_err()
            .contains("only a user rule"));
    }

    #[test]
    fn a_user_is_refused_what_its_rule_does_not_give() {
        let alice = identity("arn:aws:iam::111111111111:user/alice");
        let cases = [
            (SignRequest { username: "bob".into(), ..request() }, "only for itself"),
            (SignRequest { principals: Some(vec!["bob".into()]), ..request() }, "\"bob\" is not allowed"),
            (SignRequest { cert_type: CertKind::Host, principals: Some(vec!["a.example.com".into()]), ..request() }, "host certificates"),
            (SignRequest { ttl: Some(9 * 3600), ..request() }, "longer than"),
            (SignRequest { valid_after: Some(NOW + 365 * 86_400), ttl: Some(3600), ..request() }, "in the future"),
            (SignRequest { critical_options: Some(BTreeMap::new()), ..request() }, "leave them out"),
        ];
        for (case, expected) in cases {
            let err = decide(&policy(), &alice, &case, NOW).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn session_names_count_only_where_aws_sets_them() {
        let sso =
            decide(&policy(), &identity("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_abc/jane"), &request(), NOW).unwrap();
        assert_eq!(sso.request.username, "jane");
        let chosen = decide(&policy(), &identity("arn:aws:sts::111111111111:assumed-role/eng/alice"), &request(), NOW).unwrap();
        assert_eq!(chosen.request.username, "eng", "a caller-chosen session name must not name the user");
    }

    #[test]
    fn hosts_get_host_certificates_for_their_own_names_only() {
        let host = identity("arn:aws:sts::111111111111:assumed-role/web-hosts/i-0abc");
        let ok = SignRequest { cert_type: CertKind::Host, principals: Some(vec!["i-0abc.example.com".into()]), ..request() };
        let decision = decide(&policy(), &host, &ok, NOW).unwrap();
        assert_eq!(decision.plan.valid_before, NOW + policy().host_default_ttl);
        assert_eq!(decision.request.username, "i-0abc.example.com");
        let other = SignRequest { principals: Some(vec!["i-0def.example.com".into()]), ..ok.clone() };
        assert!(decide(&policy(), &host, &other, NOW).unwrap_err().to_string().contains("not allowed"));
        assert!(decide(&policy(), &host, &request(), NOW).unwrap_err().to_string().contains("only host certificates"));
    }

    #[test]
    fn unmatched_identities_are_denied_with_the_fix() {
        let err = decide(&policy(), &identity("arn:aws:iam::2:user/mallory"), &request(), NOW).unwrap_err();
        assert_eq!(err.error_type(), "AccessDenied");
        assert!(err.to_string().contains("arn:aws:iam::2:user/mallory matches no access rule"), "{err}");
        assert!(err.to_string().contains("sshca init staging --rules"), "{err}");
    }

    #[test]
    fn the_documented_example_rules_are_valid() {
        let mut policy = Policy::new("staging");
        policy.access.audience = "sshca:bucket:staging".into();
        policy.access.rules = serde_json::from_str(include_str!("../../../infra/access-rules.json")).unwrap();
        for rule in policy.access.rules.iter_mut().filter(|rule| rule.arn.contains(":assumed-role/")) {
            rule.role_ids = vec![
                "AROAAWSReservedSSO_SshUsers".into(),
                "AROAAWSReservedSSO_SshAdmins".into(),
                "AROAsshca-staging-HostRole-0A1B2C3D4E5F".into(),
            ];
        }
        policy.validate(&testing::providers()).unwrap();
        let jane = decide(
            &policy,
            &identity("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_SshUsers_0a1b2c3d4e5f6a7b/jane"),
            &request(),
            NOW,
        );
        let refused = jane.unwrap_err().to_string();
        assert!(refused.contains("principal \"jane\" is not allowed in environment"), "the environment still bounds the rule: {refused}");
    }

    #[test]
    fn a_role_named_like_the_rules_role_is_not_it() {
        // a role created at `/` with the name of the rule's Identity Center role, assumed with a
        // session name of the creator's choice: same ARN shape, another unique id
        let squatter = Identity {
            subject: "AROASQUATTER:jane".into(),
            principal_id: "AROASQUATTER".into(),
            ..testing::aws_identity("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_abc/jane")
        };
        let err = decide(&policy(), &Requester::Proven(squatter), &request(), NOW).unwrap_err();
        assert!(err.to_string().contains("matches no access rule"), "{err}");
        let genuine = decide(&policy(), &identity("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_abc/jane"), &request(), NOW);
        assert_eq!(genuine.unwrap().request.username, "jane", "the same name from the rule's own role");
    }

    #[test]
    fn rules_that_trust_a_caller_chosen_session_name_are_refused() {
        let mut policy = policy();
        policy.access.rules[3].principals = vec!["{session}".into()];
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("session_name_set_by_aws"));
    }

    #[test]
    fn unproven_requests_are_never_served_beside_user_or_host_rules() {
        let mut policy = policy();
        policy.access.allow_unproven = true;
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("leave their proof out to become admins"));
        policy.access.rules.retain(|rule| rule.grant == Grant::Admin);
        policy.validate(&testing::providers()).unwrap();
    }

    #[test]
    fn audiences_stay_safe_to_paste_into_a_shell() {
        let mut policy = policy();
        policy.access.audience = "sshca:b:staging\"; touch /tmp/x".into();
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("may hold only"));
    }

    /// The policy's rule 2 (IAM users) mapping groups to principals, and an identity in `groups`.
    fn with_groups(groups: &[&str]) -> (Policy, Requester) {
        let mut policy = policy();
        policy.allowed_principals.extend(["root-oncall".into(), "postgres".into()]);
        let rule = &mut policy.access.rules[1];
        rule.principals = vec![];
        rule.critical_options.clear();
        rule.group_ids = [("sre".to_owned(), "AGPASRE".to_owned()), ("dba".to_owned(), "AGPADBA".to_owned())].into();
        rule.groups = [
            ("sre".to_owned(), vec!["root-oncall".into(), "deploy".into()]),
            ("dba".to_owned(), vec!["postgres".into(), "nobody-allowed".into()]),
        ]
        .into();
        // the directory answers with the groups' unique ids: a group named "sre" made elsewhere is not AGPASRE
        let ids = groups.iter().map(|group| format!("AGPA{}", group.to_uppercase())).collect();
        let identity = Identity { groups: Some(ids), ..testing::aws_identity("arn:aws:iam::111111111111:user/alice") };
        (policy, Requester::Proven(identity))
    }

    #[test]
    fn groups_give_the_union_of_their_principals_within_the_environment() {
        let (policy, both) = with_groups(&["sre", "dba", "unmapped"]);
        let decision = decide(&policy, &both, &request(), NOW).unwrap();
        assert_eq!(
            decision.plan.principals,
            ["postgres", "root-oncall", "deploy"],
            "not nobody-allowed: the environment does not allow it"
        );
        assert_eq!(decision.groups, Some(vec!["dba".to_owned(), "sre".to_owned()]));
        let (policy, impostor) = with_groups(&[]);
        let Requester::Proven(mut impostor) = impostor else { unreachable!() };
        impostor.groups = Some(vec!["sre".into()]);
        assert!(decide(&policy, &Requester::Proven(impostor), &request(), NOW).is_err(), "a group named sre is not the bound one");
        let (policy, none) = with_groups(&["unmapped"]);
        let err = decide(&policy, &none, &request(), NOW).unwrap_err();
        assert_eq!(err.error_type(), "AccessDenied");
        assert!(err.to_string().contains("in none of the groups"), "{err}");
        let (mut policy, none) = with_groups(&[]);
        policy.access.rules[1].principals = vec!["{user}".into()];
        assert_eq!(decide(&policy, &none, &request(), NOW).unwrap().plan.principals, ["alice"], "only the rule's own principals");
        let (policy, _) = with_groups(&[]);
        let unread = Requester::Proven(testing::aws_identity("arn:aws:iam::111111111111:user/alice"));
        assert_eq!(
            decide(&policy, &unread, &request(), NOW).unwrap_err().error_type(),
            "Unavailable",
            "groups never read are not no groups"
        );
        let (policy, sre) = with_groups(&["sre"]);
        let more = SignRequest { principals: Some(vec!["postgres".into()]), ..request() };
        assert!(decide(&policy, &sre, &more, NOW).unwrap_err().to_string().contains("\"postgres\" is not allowed"));
    }

    #[test]
    fn extension_values_come_from_the_identity_and_cannot_be_overridden() {
        let mut policy = policy();
        policy.access.rules[1].extension_values = [("login@github.com".to_owned(), "{user}".to_owned())].into();
        let alice = identity("arn:aws:iam::111111111111:user/alice");
        let decision = decide(&policy, &alice, &request(), NOW).unwrap();
        assert_eq!(decision.plan.extensions["login@github.com"], "alice");
        assert!(decision.plan.extensions.contains_key("permit-pty"));
        let forged = SignRequest { extensions: Some([("login@github.com".to_owned(), "bob".to_owned())].into()), ..request() };
        let err = decide(&policy, &alice, &forged, NOW).unwrap_err();
        assert!(err.to_string().contains("sets the extension \"login@github.com\""), "{err}");
    }

    #[test]
    fn no_touch_required_is_granted_only_by_a_rule_that_names_it() {
        let mut policy = policy();
        policy.allowed_extensions.push("no-touch-required".into());
        let asked = SignRequest { extensions: Some([("no-touch-required".to_owned(), String::new())].into()), ..request() };
        let jane = identity("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_abc/jane");
        assert!(decide(&policy, &jane, &asked, NOW).unwrap_err().to_string().contains("no-touch-required"));
        policy.access.rules[2].extensions = Some(vec!["permit-pty".into(), "no-touch-required".into()]);
        assert!(decide(&policy, &jane, &asked, NOW).unwrap().plan.extensions.contains_key("no-touch-required"));
        let as_admin = SignRequest { username: "deploy".into(), ..asked.clone() };
        let admin = decide(&policy, &identity("arn:aws:iam::111111111111:user/admin"), &as_admin, NOW).unwrap();
        assert!(!admin.plan.extensions.contains_key("no-touch-required"), "an admin rule that does not name it does not waive the touch");
    }

    #[test]
    fn a_rule_may_require_security_keys() {
        let mut policy = policy();
        policy.allowed_key_types.push("sk-ssh-ed25519@openssh.com".into());
        policy.access.rules[1].key_types = Some(vec!["sk-ssh-ed25519@openssh.com".into()]);
        policy.validate(&testing::providers()).unwrap();
        let decision = decide(&policy, &identity("arn:aws:iam::111111111111:user/alice"), &request(), NOW).unwrap();
        let software = ssh_key::PublicKey::from_openssh(SOFTWARE_KEY).unwrap();
        let err = decision.check_public_key(&policy, &software).unwrap_err();
        assert!(err.to_string().contains("ssh-keygen -t ed25519-sk"), "{err}");
        let fido = ssh_key::PublicKey::from_openssh(FIDO_KEY).unwrap();
        decision.check_public_key(&policy, &fido).unwrap();
        policy.allowed_key_types.retain(|name| !name.starts_with("sk-"));
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("--key-types"));
        policy.allowed_key_types.push("ssh-dss".into());
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("not one sshca can sign"));
    }

    const SOFTWARE_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHXbLchYs5u2+4eL2HFqCRvj8AIz1GDMq02YwPntR8kF";
    const FIDO_KEY: &str =
        "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIEDEnmgBrWBPbUTvmtxpS1Q1CEA/5K65+m4VPsnPHy4QAAAABHNzaDo=";

    #[test]
    fn an_instance_host_gets_exactly_its_instance_names_within_the_rule() {
        let mut policy = policy();
        policy.allowed_host_principals.extend(["ip-10-0-0-5.ec2.internal".into(), "10.0.0.5".into()]);
        policy.access.rules[4].principals = vec!["*.ec2.internal".into(), "10.0.*".into(), "*.example.com".into()];
        policy.access.rules[4].from_instance = Some(FromInstance::default());
        policy.validate(&testing::providers()).unwrap();
        let names = ["ip-10-0-0-5.ec2.internal", "10.0.0.5", "192.168.1.1", "web.example.com"].map(str::to_owned).to_vec();
        let host = Requester::Proven(Identity {
            instance_names: Some(names),
            ..testing::aws_identity("arn:aws:sts::111111111111:assumed-role/web-hosts/i-0abc")
        });
        let ask = SignRequest { cert_type: CertKind::Host, ..request() };
        let decision = decide(&policy, &host, &ask, NOW).unwrap();
        assert_eq!(
            decision.plan.principals,
            ["ip-10-0-0-5.ec2.internal", "10.0.0.5", "web.example.com"],
            "not 192.168.1.1: no pattern allows it"
        );
        assert_eq!(decision.request.username, "ip-10-0-0-5.ec2.internal");
        let beyond = SignRequest { principals: Some(vec!["10.0.0.5".into(), "db.example.com".into()]), ..ask.clone() };
        assert!(decide(&policy, &host, &beyond, NOW).unwrap_err().to_string().contains("may name only its instance's names"));
        let unlooked = Requester::Proven(testing::aws_identity("arn:aws:sts::111111111111:assumed-role/web-hosts/i-0abc"));
        assert_eq!(decide(&policy, &unlooked, &ask, NOW).unwrap_err().error_type(), "Unavailable");
        policy.access.rules[4].grant = Grant::User;
        assert!(policy.validate(&testing::providers()).unwrap_err().to_string().contains("from_instance is for host rules"));
    }
}
