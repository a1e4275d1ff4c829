//! The AWS identity provider: a caller's SigV4-signed `sts:GetCallerIdentity`, the pattern of
//! Vault's AWS IAM auth method and the EKS authenticator.
//!
//! The caller signs, with its own AWS credentials, a GetCallerIdentity request carrying two extra
//! signed headers: [`AUDIENCE_HEADER`] names this deployment (so a proof made for another service
//! cannot be replayed here) and [`REQUEST_HASH_HEADER`] carries the request hash of the signing
//! request (so a captured proof can sign nothing else). It sends the signed headers, never a URL:
//! [`check_binding`] checks the binding, and the provider sends the SDK's own GetCallerIdentity to
//! its own STS endpoint (its region's, or `AWS_ENDPOINT_URL_STS`) with only the caller's signed
//! headers put on it. STS's answer names the caller; its ARN names the user and session.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_sts::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sts::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use sshca_core::access::{Access, AccessRule, FromInstance, Grant};
use sshca_core::error::IssueError;
use sshca_core::identity::{Binding, Identity, IdentityProvider, Proof};
use sshca_core::request::truncate_for_message;
use sshca_proto::proof::{
    IdentityProof, AUDIENCE_HEADER, AWS_PROVIDER, GET_CALLER_IDENTITY_BODY, GET_CALLER_IDENTITY_CONTENT_TYPE, MAX_PROOF_AGE_SECONDS,
    REQUEST_HASH_HEADER,
};
use time::macros::format_description;
use time::PrimitiveDateTime;

use crate::directory::{Directory, IDENTITY_CENTER_ROLE_PREFIX};
use crate::instances::Instances;

/// Proves callers by their signed GetCallerIdentity; their groups are the [`Directory`]'s, the
/// instances hosts run on [`Instances`]'.
pub struct StsProvider {
    client: aws_sdk_sts::Client,
    directory: Directory,
    instances: Instances,
}

impl StsProvider {
    pub fn new(client: aws_sdk_sts::Client, directory: Directory, instances: Instances) -> Self {
        Self { client, directory, instances }
    }

    /// Sends a checked proof to STS: the caller's ARN, user id and account, as STS answers.
    async fn caller_identity(&self, proof: &SignedProof) -> Result<(String, String, String), IssueError> {
        let wrong_host = Arc::new(Mutex::new(None));
        let forward = ForwardProof { proof: proof.clone(), wrong_host: wrong_host.clone() };
        let answer = self.client.get_caller_identity().customize().interceptor(forward).send().await;
        if let Some(message) = wrong_host.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            return Err(IssueError::AccessDenied(message));
        }
        let output = answer.map_err(|err| match &err {
            SdkError::ServiceError(service) => {
                // An answer the SDK could not parse (an STS-compatible server's own error shape)
                // still names its code in the body.
                let body = String::from_utf8_lossy(service.raw().body().bytes().unwrap_or_default());
                let in_body = body.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(code, _)| truncate_for_message(code));
                IssueError::AccessDenied(format!(
                    "STS refused the proof of identity ({}: {}): sign it again with valid AWS credentials (`aws sso login`, or check AWS_PROFILE)",
                    service.err().code().map(str::to_owned).or(in_body).unwrap_or_else(|| format!("HTTP {}", service.raw().status().as_u16())),
                    service.err().message().unwrap_or("no message"),
                ))
            }
            _ => IssueError::Unavailable(format!(
                "STS could not be asked who signed the proof: {}",
                aws_sdk_sts::error::DisplayErrorContext(&err)
            )),
        })?;
        match (output.arn(), output.user_id(), output.account()) {
            (Some(arn), Some(user_id), Some(account)) => Ok((arn.to_owned(), user_id.to_owned(), account.to_owned())),
            _ => Err(IssueError::Unavailable("STS answered without an ARN, user id or account".into())),
        }
    }
}

#[async_trait]
impl IdentityProvider for StsProvider {
    fn name(&self) -> &'static str {
        AWS_PROVIDER
    }

    async fn prove(&self, proof: &Proof, binding: &Binding<'_>) -> Result<Identity, IssueError> {
        let Proof::Aws(proof) = proof;
        let signed = check_binding(proof, binding.audience, binding.request_hash, binding.now, binding.clock_skew)?;
        let (arn, user_id, account) = self.caller_identity(&signed).await?;
        Ok(identity(arn, user_id, account))
    }

    fn check_rule(&self, rule: &AccessRule) -> Result<(), String> {
        check_pattern(rule)?;
        check_lookup_role(rule)?;
        if let Some(template) = &rule.user_name {
            if template.replace("{user}", "").replace("{account}", "").contains(['{', '}']) {
                return Err(format!("{:?}: its user_name {template:?} may use {{user}} and {{account}} only", rule.arn));
            }
        }
        // approvers are matched as a rule's identities are: the same shapes, bound the same way
        if let Some(approval) = &rule.approval {
            for pattern in &approval.by {
                let mut approvers = AccessRule::new(pattern, Grant::User);
                approvers.session_name_set_by_aws = approval.session_name_set_by_aws;
                approvers.role_ids = approval.by_role_ids.clone();
                check_pattern(&approvers).map_err(|why| format!("its approvers: {why}"))?;
            }
        }
        let on_users = rule.arn.splitn(6, ':').nth(5).is_some_and(|resource| resource.starts_with("user/"));
        let on_identity_center =
            assumed_role(&rule.arn).is_some_and(|(role, _)| role.starts_with(IDENTITY_CENTER_ROLE_PREFIX)) && rule.session_name_set_by_aws;
        if !rule.groups.is_empty() && rule.lookup_role.is_some() {
            return Err(format!("{:?} maps groups and has a lookup_role: groups are read in the CA's own account only", rule.arn));
        }
        if !rule.groups.is_empty() && !on_users && !on_identity_center {
            return Err(format!(
                "{:?} maps groups, which are read only for IAM users and IAM Identity Center users (AWSReservedSSO_… roles, with \"session_name_set_by_aws\": true)",
                rule.arn
            ));
        }
        Ok(())
    }

    fn user_name_scope(&self, rule: &AccessRule) -> Option<String> {
        // qualified by the account, a name is unique across accounts
        if rule.user_name.as_deref().is_some_and(|template| template.contains("{account}")) {
            return None;
        }
        // Identity Center's user names are its directory's, any other name (an IAM user's, a
        // role's, a session name a trust policy pins) only its account's
        let identity_center =
            rule.session_name_set_by_aws && assumed_role(&rule.arn).is_some_and(|(role, _)| role.starts_with(IDENTITY_CENTER_ROLE_PREFIX));
        Some(if identity_center {
            "IAM Identity Center".to_owned()
        } else {
            format!("account {}", rule.arn.split(':').nth(4).unwrap_or_default())
        })
    }

    async fn groups(&self, identity: &Identity, access: &Access) -> Result<Vec<String>, IssueError> {
        self.directory.groups(identity, access).await
    }

    async fn instance_names(&self, identity: &Identity, rule: &AccessRule, from: &FromInstance) -> Result<Vec<String>, IssueError> {
        self.instances.names(identity, rule.lookup_role.as_deref(), from).await
    }
}

/// The provider-neutral identity of what STS answered: the ARN names the user (an IAM user's name,
/// or an assumed role's) and the session; the user id's first part is the principal's unique id.
fn identity(arn: String, user_id: String, account: String) -> Identity {
    let (user, session) = match principal_of(&arn) {
        Principal::IamUser { name } => (Some(name.to_owned()), None),
        Principal::AssumedRole { role, session } => (Some(role.to_owned()), Some(session.to_owned())),
        Principal::Other => (None, None),
    };
    let principal_id = user_id.split_once(':').map_or(user_id.as_str(), |(id, _)| id).to_owned();
    Identity {
        provider: AWS_PROVIDER.to_owned(),
        name: arn,
        subject: user_id,
        principal_id,
        user,
        session,
        attributes: BTreeMap::from([("account".to_owned(), account)]),
        groups: None,
        instance_names: None,
    }
}

/// The parts of an IAM or STS ARN that name a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal<'a> {
    IamUser { name: &'a str },
    AssumedRole { role: &'a str, session: &'a str },
    Other,
}

fn principal_of(arn: &str) -> Principal<'_> {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    if let Some(path) = resource.strip_prefix("user/") {
        return Principal::IamUser { name: path.rsplit('/').next().unwrap_or(path) };
    }
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        if let Some((role, session)) = rest.split_once('/') {
            return Principal::AssumedRole { role, session };
        }
    }
    Principal::Other
}

/// The rule that makes the caller of `arn` (STS user id `user_id`) an admin: an IAM user itself,
/// or for a session of a role, the role (every session of it, bound to its unique id), never one
/// session name the role's users choose.
pub fn admin_rule(arn: &str, user_id: &str) -> AccessRule {
    let session_of = arn.rsplit_once('/').filter(|_| matches!(principal_of(arn), Principal::AssumedRole { .. }));
    match (session_of, user_id.split_once(':')) {
        (Some((role, _)), Some((role_id, _))) => {
            AccessRule { role_ids: vec![role_id.to_owned()], ..AccessRule::admin(&format!("{role}/*")) }
        }
        _ => AccessRule::admin(arn),
    }
}

/// The role name pattern of an ARN pattern on assumed roles (`…:assumed-role/ROLE/SESSION`), and
/// its session pattern.
pub fn assumed_role(pattern: &str) -> Option<(&str, &str)> {
    pattern.splitn(6, ':').nth(5)?.strip_prefix("assumed-role/")?.split_once('/')
}

/// An ARN pattern names one partition, service and account literally: a wildcard there would
/// match identities of every account. Where a rule trusts session names, the role is named
/// exactly (`?` may stand for the fixed-length suffix of IAM Identity Center roles): anyone who can
/// create a role whose name matches a looser pattern could otherwise assume it with any session
/// name, such as another user's or another host's.
/// A rule's lookup role is a role of the account the rule is about (which `check_pattern` makes
/// literal): lookups through it see that account's instances and roles, nobody else's.
fn check_lookup_role(rule: &AccessRule) -> Result<(), String> {
    let Some(role) = &rule.lookup_role else { return Ok(()) };
    let account = rule.arn.split(':').nth(4).unwrap_or_default();
    let fields: Vec<&str> = role.splitn(6, ':').collect();
    let shaped = fields.len() == 6
        && fields[..4] == ["arn", rule.arn.split(':').nth(1).unwrap_or_default(), "iam", ""]
        && fields[4] == account
        && fields[5].strip_prefix("role/").is_some_and(|name| !name.is_empty() && !name.contains(['*', '?']));
    if shaped {
        Ok(())
    } else {
        Err(format!(
            "{:?}: its lookup_role {:?} must be a role of the same account, named exactly, e.g. arn:aws:iam::{account}:role/sshca-lookup-ENV (the member-account template's output)",
            rule.arn,
            truncate_for_message(role)
        ))
    }
}

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
    if fields[2] == "sts" && assumed_role(&rule.arn).is_none() {
        return Err(format!(
            "{:?}: the STS callers sshca can trust are role sessions (arn:…:sts::ACCOUNT:assumed-role/ROLE/*); a federated user names itself",
            rule.arn
        ));
    }
    if let Some((role, session)) = assumed_role(&rule.arn) {
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
        let role = assumed_role(&rule.arn).map(|(role, _)| role);
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

/// A proof whose binding was checked: the headers to forward, and the host they were signed for.
#[derive(Debug, Clone)]
pub struct SignedProof {
    pub host: String,
    /// The signed headers other than `host`, and `authorization`.
    pub headers: Vec<(String, String)>,
}

/// Replaces the SDK's own signature with the caller's signed headers, on every attempt.
#[derive(Debug)]
struct ForwardProof {
    proof: SignedProof,
    wrong_host: Arc<Mutex<Option<String>>>,
}

impl Intercept for ForwardProof {
    fn name(&self) -> &'static str {
        "sshca::ForwardProof"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request_mut();
        let uri: http::Uri = request.uri().parse()?;
        let ours = match (uri.host(), uri.port_u16(), uri.scheme_str()) {
            (Some(host), Some(port), Some(scheme)) if !matches!((scheme, port), ("https", 443) | ("http", 80)) => format!("{host}:{port}"),
            (Some(host), _, _) => host.to_owned(),
            (None, _, _) => return Err("the STS endpoint has no host".into()),
        };
        if !ours.eq_ignore_ascii_case(&self.proof.host) {
            let message = format!(
                "the proof of identity was signed for STS at {:?}, and this deployment verifies it at {ours:?}: sign it for the function's region (AWS_REGION)",
                truncate_for_message(&self.proof.host)
            );
            *self.wrong_host.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message.clone());
            return Err(message.into());
        }
        let headers = request.headers_mut();
        for own in ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
            headers.remove(own);
        }
        for (name, value) in &self.proof.headers {
            headers.try_insert(name.clone(), value.clone())?;
        }
        Ok(())
    }
}

fn refused(why: impl std::fmt::Display) -> IssueError {
    IssueError::AccessDenied(format!(
        "the proof of identity is not valid: {why}; make a new one with `get_key request` or `sshca sign` (both sign with your AWS credentials)"
    ))
}

/// Checks everything about `proof` that does not need STS: the body, the signed binding headers,
/// the audience, the request it is bound to, and its age. `now` is Unix seconds; a proof dated
/// up to `clock_skew` seconds ahead is accepted.
pub fn check_binding(
    proof: &IdentityProof,
    audience: &str,
    request_hash: &str,
    now: u64,
    clock_skew: u64,
) -> Result<SignedProof, IssueError> {
    if proof.body != GET_CALLER_IDENTITY_BODY {
        return Err(refused(format!("it must sign exactly {GET_CALLER_IDENTITY_BODY:?}")));
    }
    let mut headers = BTreeMap::new();
    if let Some((name, _)) = proof.headers.iter().find(|(_, value)| value.chars().any(char::is_control)) {
        return Err(refused(format!("header {:?} holds a control character", truncate_for_message(name))));
    }
    for (name, value) in &proof.headers {
        if headers.insert(name.to_ascii_lowercase(), value.as_str()).is_some() {
            return Err(refused(format!("header {name:?} appears twice")));
        }
    }
    let authorization = headers.get("authorization").ok_or_else(|| refused("it has no authorization header"))?;
    let signed = signed_headers(authorization)?;
    for required in ["host", "x-amz-date", AUDIENCE_HEADER, REQUEST_HASH_HEADER] {
        if !signed.contains(&required) {
            return Err(refused(format!("header {required} is not signed")));
        }
    }
    // Only the headers of a GetCallerIdentity are put on the request the function sends.
    const SIGNABLE: [&str; 7] =
        ["content-type", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token", AUDIENCE_HEADER, REQUEST_HASH_HEADER];
    if let Some(other) = signed.iter().find(|name| !SIGNABLE.contains(name)) {
        return Err(refused(format!("header {:?} may not be signed (only {})", truncate_for_message(other), SIGNABLE.join(", "))));
    }
    if headers.get("content-type").is_some_and(|value| *value != GET_CALLER_IDENTITY_CONTENT_TYPE) {
        return Err(refused(format!("its content-type must be {GET_CALLER_IDENTITY_CONTENT_TYPE:?}")));
    }
    if headers.contains_key("x-amz-security-token") && !signed.contains(&"x-amz-security-token") {
        return Err(refused("the session token is not signed"));
    }
    let mut forwarded = Vec::new();
    for name in &signed {
        let value = headers.get(*name).ok_or_else(|| refused(format!("signed header {name} is missing")))?;
        if *name != "host" {
            forwarded.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    forwarded.push(("authorization".to_owned(), (*authorization).to_owned()));
    if headers[AUDIENCE_HEADER] != audience {
        return Err(refused(format!(
            "it was made for audience {:?}, and this environment's is {audience:?}: ask with --audience {audience:?}",
            truncate_for_message(headers[AUDIENCE_HEADER])
        )));
    }
    if headers[REQUEST_HASH_HEADER] != request_hash {
        return Err(refused("it is bound to another request (the request was changed after it was signed)"));
    }
    let signed_at = amz_date(headers["x-amz-date"])?;
    if signed_at + MAX_PROOF_AGE_SECONDS < now {
        return Err(refused(format!("it was signed {}s ago; proofs last {MAX_PROOF_AGE_SECONDS}s", now - signed_at)));
    }
    if signed_at > now + clock_skew {
        return Err(refused(format!(
            "it is dated {}s in the future (more than the {clock_skew}s clock-skew allowance): check this machine's clock",
            signed_at - now
        )));
    }
    Ok(SignedProof { host: headers["host"].to_owned(), headers: forwarded })
}

/// The `SignedHeaders` of a SigV4 `Authorization` header, for the STS service.
fn signed_headers(authorization: &str) -> Result<Vec<&str>, IssueError> {
    let fields =
        authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| refused("its authorization is not AWS4-HMAC-SHA256 (SigV4)"))?;
    // A field named twice is refused, not read once: STS might read the other one, and then the
    // headers checked here would not be the headers it verifies.
    let field = |name: &str| {
        let mut values =
            fields.split(',').map(str::trim).filter_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')));
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            (None, _) => Err(refused(format!("its authorization has no {name}"))),
            (Some(_), Some(_)) => Err(refused(format!("its authorization names {name} more than once"))),
        }
    };
    let scope: Vec<&str> = field("Credential")?.split('/').collect();
    if scope.len() != 5 || scope[3] != "sts" || scope[4] != "aws4_request" {
        return Err(refused("it is not signed for the STS service"));
    }
    field("Signature")?;
    Ok(field("SignedHeaders")?.split(';').collect())
}

fn amz_date(text: &str) -> Result<u64, IssueError> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = PrimitiveDateTime::parse(text, format).map_err(|_| refused(format!("x-amz-date {text:?} is not a date")))?;
    u64::try_from(at.assume_utc().unix_timestamp()).map_err(|_| refused("x-amz-date is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIENCE: &str = "sshca:bucket:staging";
    const NOW: u64 = 1_800_000_000;

    fn date(unix: u64) -> String {
        let at = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
        at.format(format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap()
    }

    fn proof(signed: &str, at: u64) -> IdentityProof {
        let mut headers = BTreeMap::new();
        headers.insert(
            "Authorization".into(),
            format!("AWS4-HMAC-SHA256 Credential=AKID/20270115/us-east-1/sts/aws4_request, SignedHeaders={signed}, Signature=abc"),
        );
        headers.insert("host".into(), "sts.us-east-1.amazonaws.com".into());
        headers.insert("x-amz-date".into(), date(at));
        headers.insert(AUDIENCE_HEADER.into(), AUDIENCE.into());
        headers.insert(REQUEST_HASH_HEADER.into(), "h".into());
        headers.insert("content-type".into(), GET_CALLER_IDENTITY_CONTENT_TYPE.into());
        IdentityProof { headers, body: GET_CALLER_IDENTITY_BODY.into() }
    }

    const ALL: &str = "content-type;host;x-amz-date;x-sshca-audience;x-sshca-request-hash";

    #[test]
    fn a_bound_fresh_proof_passes_and_forwards_its_signed_headers() {
        let checked = check_binding(&proof(ALL, NOW - 10), AUDIENCE, "h", NOW, 60).unwrap();
        assert_eq!(checked.host, "sts.us-east-1.amazonaws.com");
        let names: Vec<&str> = checked.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-amz-date", AUDIENCE_HEADER, REQUEST_HASH_HEADER, "authorization"]);
    }

    #[test]
    fn binding_failures_are_named() {
        let cases: Vec<(IdentityProof, &str, &str)> = vec![
            (proof("content-type;host;x-amz-date;x-sshca-request-hash", NOW), AUDIENCE, "x-sshca-audience is not signed"),
            (proof("content-type;host;x-amz-date;x-sshca-audience", NOW), AUDIENCE, "x-sshca-request-hash is not signed"),
            (proof(ALL, NOW), "sshca:other:staging", "made for audience"),
            (proof(ALL, NOW - 301), AUDIENCE, "signed 301s ago"),
            (proof(ALL, NOW + 61), AUDIENCE, "in the future"),
            (IdentityProof { body: "Action=AssumeRole".into(), ..proof(ALL, NOW) }, AUDIENCE, "exactly"),
            (proof(&format!("{ALL};x-extra"), NOW), AUDIENCE, "\"x-extra\" may not be signed"),
        ];
        for (case, audience, expected) in cases {
            let err = check_binding(&case, audience, "h", NOW, 60).unwrap_err();
            assert_eq!(err.error_type(), "AccessDenied");
            assert!(err.to_string().contains(expected), "{expected:?} not in {err}");
        }
        let err = check_binding(&proof(ALL, NOW), AUDIENCE, "other", NOW, 60).unwrap_err();
        assert!(err.to_string().contains("bound to another request"), "{err}");
        let mut unsigned_token = proof(ALL, NOW);
        unsigned_token.headers.insert("x-amz-security-token".into(), "t".into());
        assert!(check_binding(&unsigned_token, AUDIENCE, "h", NOW, 60).unwrap_err().to_string().contains("session token"));
        let mut not_sts = proof(ALL, NOW);
        let auth = not_sts.headers["Authorization"].replace("/sts/", "/s3/");
        not_sts.headers.insert("Authorization".into(), auth);
        assert!(check_binding(&not_sts, AUDIENCE, "h", NOW, 60).unwrap_err().to_string().contains("STS"));
    }

    #[test]
    fn an_authorization_naming_a_field_twice_is_refused() {
        for (name, again) in [
            ("SignedHeaders", "SignedHeaders=host;x-amz-date"),
            ("Credential", "Credential=AKID/20270115/us-east-1/sts/aws4_request"),
            ("Signature", "Signature=def"),
        ] {
            let mut twice = proof(ALL, NOW);
            let auth = format!("{}, {again}", twice.headers["Authorization"]);
            twice.headers.insert("Authorization".into(), auth);
            let err = check_binding(&twice, AUDIENCE, "h", NOW, 60).unwrap_err();
            assert_eq!(err.error_type(), "AccessDenied");
            assert!(err.to_string().contains(&format!("names {name} more than once")), "{err}");
        }
    }

    fn rule(arn: &str, session_name_set_by_aws: bool, role_ids: &[&str]) -> AccessRule {
        AccessRule {
            arn: arn.into(),
            session_name_set_by_aws,
            role_ids: role_ids.iter().map(|id| (*id).to_owned()).collect(),
            ..AccessRule::admin("")
        }
    }

    #[test]
    fn a_lookup_role_is_a_role_of_the_rules_own_account() {
        let with = |lookup_role: &str| AccessRule {
            lookup_role: Some(lookup_role.into()),
            ..rule("arn:aws:sts::111111111111:assumed-role/web/*", true, &["AROAWEB"])
        };
        assert!(check_lookup_role(&with("arn:aws:iam::111111111111:role/sshca-lookup-prod")).is_ok());
        for other in [
            "arn:aws:iam::222222222222:role/sshca-lookup-prod",
            "arn:aws:iam::111111111111:role/sshca-lookup-*",
            "arn:aws:iam::111111111111:user/lookup",
            "arn:aws-cn:iam::111111111111:role/sshca-lookup-prod",
            "arn:aws:iam::111111111111:role/",
        ] {
            assert!(check_lookup_role(&with(other)).unwrap_err().contains("must be a role of the same account"), "{other}");
        }
        assert!(check_lookup_role(&rule("arn:aws:sts::111111111111:assumed-role/web/*", true, &["AROAWEB"])).is_ok());
    }

    #[test]
    fn rules_on_roles_are_bound_and_name_no_session() {
        assert!(check_pattern(&rule("arn:aws:sts::111111111111:assumed-role/eng/*", false, &[]))
            .unwrap_err()
            .contains("not bound to its role's unique id"));
        assert!(check_pattern(&rule("arn:aws:sts::111111111111:assumed-role/eng/*", false, &["AROAENG"])).is_ok());
        let one_session = rule("arn:aws:sts::111111111111:assumed-role/admins/alice", false, &["AROAADMINS"]);
        assert!(check_pattern(&one_session).unwrap_err().contains("names a session"));
    }

    #[test]
    fn patterns_that_match_other_accounts_or_creatable_roles_are_refused() {
        let cases = [
            ("arn:aws:sts::*:assumed-role/eng/*", false, "12-digit account"),
            ("arn:*:iam::111111111111:user/alice", false, "without wildcards"),
            ("arn:aws:iam::111111111111:user/alice", true, "must name its role exactly"),
            ("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_SshUsers_*/*", true, "must name its role exactly"),
            ("arn:aws:sts::111111111111:assumed-role/*/*", true, "must name its role exactly"),
            ("arn:aws:sts::111111111111:assumed-role/eng-*/*", false, "must name its role exactly"),
            ("arn:aws:sts::111111111111:*", false, "role sessions"),
            ("arn:aws:sts::111111111111:assumed-rol?/AWSReservedSSO_SshAdmins_?/*", false, "role sessions"),
            ("arn:aws:sts::111111111111:federated-user/alice", false, "role sessions"),
        ];
        for (arn, session_name_set_by_aws, expected) in cases {
            let err = check_pattern(&rule(arn, session_name_set_by_aws, &["AROAX"])).unwrap_err();
            assert!(err.contains(expected), "{arn}: {err}");
        }
        let sso = rule("arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_SshUsers_????????????????/*", true, &["AROAX"]);
        assert!(check_pattern(&sso).is_ok());
    }

    #[test]
    fn the_documented_example_rules_pass_once_bound() {
        let rules: Vec<AccessRule> = serde_json::from_str(include_str!("../../../infra/access-rules.json")).unwrap();
        let on_roles: Vec<&AccessRule> = rules.iter().filter(|rule| assumed_role(&rule.arn).is_some()).collect();
        assert!(!on_roles.is_empty());
        for rule in on_roles {
            assert!(check_pattern(rule).unwrap_err().contains("not bound"), "as written, before `sshca init` binds it");
            check_pattern(&AccessRule { role_ids: vec!["AROAX".into()], ..rule.clone() }).unwrap();
        }
    }

    #[test]
    fn what_sts_answers_becomes_a_provider_neutral_identity() {
        let session = identity(
            "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Eng_abc/jane".into(),
            "AROAENG:jane".into(),
            "111111111111".into(),
        );
        assert_eq!((session.user.as_deref(), session.session.as_deref()), (Some("AWSReservedSSO_Eng_abc"), Some("jane")));
        assert_eq!((session.subject.as_str(), session.principal_id.as_str()), ("AROAENG:jane", "AROAENG"));
        assert_eq!(session.attributes["account"], "111111111111");
        let user = identity("arn:aws:iam::111111111111:user/ops/alice".into(), "AIDAALICE".into(), "111111111111".into());
        assert_eq!((user.user.as_deref(), user.session, user.principal_id.as_str()), (Some("alice"), None, "AIDAALICE"));
        let federated = identity("arn:aws:sts::111111111111:federated-user/bob".into(), "111111111111:bob".into(), "111111111111".into());
        assert_eq!((federated.user, federated.session), (None, None));
    }
}
