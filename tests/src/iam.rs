//! Least privilege, checked on the IAM policy documents a deployed role really has: by shape
//! ([`violations`]), and call by call ([`Authority::judge`]): each S3 and KMS request a component
//! really made, recorded by the rig's proxy, evaluated against the role's identity policies and
//! the key or bucket policy with a real IAM evaluator (`iam-rs`: wildcards, conditions, Deny
//! precedence), the way AWS combines them; and the other way round, the grants no call used
//! ([`unused_grants`]).

use std::collections::BTreeMap;

use iam_rs::{Arn, Context, ContextValue, Decision, EvaluationOptions, IAMPolicy, IAMRequest, PolicyEvaluator, Principal, PrincipalId};
use serde_json::Value;

use crate::faults::Recorded;

/// One AWS API call as IAM authorizes it: an action on a resource, with the request's condition keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, String>,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        if !self.context.is_empty() {
            write!(f, " with {:?}", self.context)?;
        }
        Ok(())
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex()) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The IAM calls one request recorded by the proxy is authorized as, for a path-style S3 server
/// or KMS in `region` of `account`. A GET of a missing object also needs `s3:ListBucket`: without
/// it S3 answers 403, not 404, and a reader cannot tell "absent" from "refused".
pub fn calls_of(recorded: &Recorded, region: &str, account: &str) -> Vec<Call> {
    let mut lines = recorded.head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (request_line.next().unwrap_or_default(), request_line.next().unwrap_or_default());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    if let Some(operation) = headers.get("x-amz-target").and_then(|t| t.strip_prefix("TrentService.")) {
        let body: Value = serde_json::from_slice(&recorded.body).unwrap_or(Value::Null);
        let key = body["KeyId"].as_str().unwrap_or_default();
        let resource = if key.starts_with("arn:") { key.to_owned() } else { format!("arn:aws:kms:{region}:{account}:key/{key}") };
        return vec![Call { action: format!("kms:{operation}"), resource, context: BTreeMap::new() }];
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (bucket, key) = path.trim_start_matches('/').split_once('/').unwrap_or((path.trim_start_matches('/'), ""));
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let call = |action: &str, resource: String, context: BTreeMap<String, String>| Call { action: action.into(), resource, context };
    let query_value = |name: &str| query.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}="))).map(percent_decode);
    if key.is_empty() {
        let versions = query.split('&').any(|pair| pair == "versions" || pair.starts_with("versions="));
        let action = if versions { "s3:ListBucketVersions" } else { "s3:ListBucket" };
        let context = query_value("prefix").map(|prefix| BTreeMap::from([("s3:prefix".to_owned(), prefix)])).unwrap_or_default();
        return vec![call(action, bucket_arn, context)];
    }
    let object = format!("{bucket_arn}/{}", percent_decode(key));
    match method {
        "GET" | "HEAD" if recorded.status == 404 => {
            vec![call("s3:GetObject", object, BTreeMap::new()), call("s3:ListBucket", bucket_arn, BTreeMap::new())]
        }
        "GET" | "HEAD" => vec![call("s3:GetObject", object, BTreeMap::new())],
        "PUT" => {
            let keys = [
                ("if-none-match", "s3:if-none-match"),
                ("x-amz-storage-class", "s3:x-amz-storage-class"),
                ("x-amz-server-side-encryption", "s3:x-amz-server-side-encryption"),
                ("x-amz-server-side-encryption-customer-algorithm", "s3:x-amz-server-side-encryption-customer-algorithm"),
            ];
            let context = keys.iter().filter_map(|(header, key)| Some(((*key).to_owned(), headers.get(*header)?.clone()))).collect();
            vec![call("s3:PutObject", object, context)]
        }
        "DELETE" => vec![call("s3:DeleteObject", object, BTreeMap::new())],
        other => vec![call(&format!("s3:(unknown {other})"), object, BTreeMap::new())],
    }
}

/// Who makes the calls and the policies that decide them.
pub struct Authority {
    /// The role's ARN (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub principal: String,
    pub account: String,
    /// The role's identity policy documents.
    pub identity: Vec<Value>,
    /// Resource policies: a KMS key's ARN or an S3 bucket's ARN, and its policy document.
    pub resources: Vec<(String, Value)>,
    /// Condition keys AWS adds to every call of this principal (`aws:PrincipalArn`,
    /// `lambda:SourceFunctionArn`…).
    pub context: BTreeMap<String, String>,
}

/// What `documents` (one principal's identity policies, or one resource policy) decide for
/// `call` by `principal`, with the condition keys `extra` (`aws:PrincipalOrgID`…) beside the call's own.
pub fn decide(documents: &[Value], principal: &str, call: &Call, extra: &BTreeMap<String, String>) -> Result<Decision, String> {
    evaluate(documents, principal, call, extra, EvaluationOptions::default())
}

/// Whether the trust policy `trust` of the role `role` lets `principal` assume it. A trust policy
/// is the role's own, so its statements name no resource: only the principal and conditions count.
/// An account's grant (`arn:aws:iam::ACCOUNT:root`) admits only that root here, where AWS admits
/// every principal of the account: check such grants by the statements themselves.
pub fn trust_admits(trust: &Value, principal: &str, role: &str) -> Result<bool, String> {
    let assume = Call { action: "sts:AssumeRole".into(), resource: role.into(), context: BTreeMap::new() };
    let options = EvaluationOptions { ignore_resource_constraints: true, ..EvaluationOptions::default() };
    Ok(evaluate(std::slice::from_ref(trust), principal, &assume, &BTreeMap::new(), options)? == Decision::Allow)
}

fn evaluate(
    documents: &[Value],
    principal: &str,
    call: &Call,
    extra: &BTreeMap<String, String>,
    options: EvaluationOptions,
) -> Result<Decision, String> {
    let policies = documents
        .iter()
        .map(|document| {
            serde_json::from_value::<IAMPolicy>(document.clone()).map_err(|err| format!("iam-rs cannot read {document}: {err}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut context = Context::new();
    for (key, value) in extra.iter().chain(&call.context) {
        context.insert(key.clone(), ContextValue::String(value.clone()));
    }
    let resource = Arn::parse(&call.resource).map_err(|err| format!("{}: {err:?}", call.resource))?;
    let request =
        IAMRequest::new_with_context(Principal::Aws(PrincipalId::String(principal.to_owned())), call.action.clone(), resource, context);
    PolicyEvaluator::with_policies(policies)
        .with_options(options)
        .evaluate(&request)
        .map(|result| result.decision)
        .map_err(|err| format!("{call}: {err}"))
}

impl Authority {
    fn decide(&self, documents: &[Value], principal: &str, call: &Call) -> Result<Decision, String> {
        decide(documents, principal, call, &self.context)
    }

    /// Whether AWS would allow `call` (same account): no explicit Deny anywhere, and an Allow from
    /// the identity policies or the bucket policy; for KMS, from the key policy itself or from the
    /// identity policies where the key policy delegates that action to the account.
    pub fn judge(&self, call: &Call) -> Result<(), String> {
        let identity = self.decide(&self.identity, &self.principal, call)?;
        let resource = self.resources.iter().find(|(arn, _)| call.resource == *arn || call.resource.starts_with(&format!("{arn}/")));
        let kms = call.action.starts_with("kms:");
        let direct = match resource {
            Some((_, document)) => self.decide(std::slice::from_ref(document), &self.principal, call)?,
            None if kms => return Err(format!("{call}: no key policy is known for the key")),
            None => Decision::NotApplicable,
        };
        if identity == Decision::Deny || direct == Decision::Deny {
            return Err(format!("{call}: explicitly denied"));
        }
        let allowed = match (resource, kms) {
            (Some((_, document)), true) => {
                let root = format!("arn:aws:iam::{}:root", self.account);
                direct == Decision::Allow
                    || (identity == Decision::Allow && self.decide(std::slice::from_ref(document), &root, call)? == Decision::Allow)
            }
            _ => direct == Decision::Allow || identity == Decision::Allow,
        };
        if allowed {
            Ok(())
        } else {
            Err(format!("{call}: not allowed"))
        }
    }
}

/// Every action on a resource pattern that an Allow statement of `identity` grants and no call
/// in `calls` used, as `"ACTION RESOURCE"`.
pub fn unused_grants(identity: &[Value], calls: &[Call]) -> Vec<String> {
    let list = |value: &Value| -> Vec<String> {
        match value {
            Value::String(one) => vec![one.clone()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let mut unused = Vec::new();
    for document in identity {
        let statements = match &document["Statement"] {
            Value::Array(statements) => statements.clone(),
            one => vec![one.clone()],
        };
        for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
            for action in list(&statement["Action"]) {
                for resource in list(&statement["Resource"]) {
                    let used = calls.iter().any(|call| {
                        call.action.eq_ignore_ascii_case(&action)
                            && Arn::parse(&call.resource).is_ok_and(|arn| arn.matches(&resource).unwrap_or(false))
                    });
                    if !used {
                        unused.push(format!("{action} {resource}"));
                    }
                }
            }
        }
    }
    unused
}

/// What in `document` (an IAM policy document) grants more than sshca's function may have: any
/// wildcard action (`*`, `kms:*`, `s3:*`, `s3:Put*`…), `NotAction`/`NotResource`, `Resource: "*"`
/// on an S3 or KMS action, and any deletion of objects in `audit_bucket`.
pub fn violations(document: &Value, audit_bucket: &str) -> Vec<String> {
    let list = |value: Option<&Value>| -> Vec<String> {
        match value {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let statements = match &document["Statement"] {
        Value::Array(statements) => statements.clone(),
        one => vec![one.clone()],
    };
    let mut found = Vec::new();
    for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        for inverted in ["NotAction", "NotResource"] {
            if statement.get(inverted).is_some() {
                found.push(format!("{sid}: {inverted} grants everything it does not name"));
            }
        }
        let (actions, resources) = (list(statement.get("Action")), list(statement.get("Resource")));
        for action in &actions {
            let lower = action.to_ascii_lowercase();
            if lower.contains('*') {
                found.push(format!("{sid}: wildcard action {action}"));
            }
            let storage = lower.starts_with("s3:") || lower.starts_with("kms:");
            if storage && resources.iter().any(|r| r == "*") {
                found.push(format!("{sid}: {action} on Resource \"*\""));
            }
            let on_audit = resources.iter().any(|r| r.contains(audit_bucket) || r == "*");
            if lower.starts_with("s3:delete") && on_audit {
                found.push(format!("{sid}: {action} on the audit bucket"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn recorded(head: &str, body: &str, status: u16) -> Recorded {
        Recorded { head: head.replace('\n', "\r\n"), body: body.as_bytes().to_vec(), status }
    }

    #[test]
    fn recorded_requests_become_iam_calls() {
        let put = recorded("PUT /b/audit/e/2026/x%40y.json HTTP/1.1\nHost: h\nIf-None-Match: *\n\n", "", 200);
        let calls = calls_of(&put, "us-east-1", "1");
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].action.as_str(), calls[0].resource.as_str()), ("s3:PutObject", "arn:aws:s3:::b/audit/e/2026/x@y.json"));
        assert_eq!(calls[0].context["s3:if-none-match"], "*");
        let missing = calls_of(&recorded("GET /b/krl/e.krl?x-id=GetObject HTTP/1.1\n\n", "", 404), "us-east-1", "1");
        assert_eq!(missing.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(), ["s3:GetObject", "s3:ListBucket"]);
        let list = calls_of(&recorded("GET /b?list-type=2&prefix=audit%2Fe%2F HTTP/1.1\n\n", "", 200), "us-east-1", "1");
        assert_eq!((list[0].action.as_str(), list[0].context["s3:prefix"].as_str()), ("s3:ListBucket", "audit/e/"));
        let sign = calls_of(&recorded("POST / HTTP/1.1\nX-Amz-Target: TrentService.Sign\n\n", r#"{"KeyId":"k1"}"#, 200), "us-east-1", "1");
        assert_eq!((sign[0].action.as_str(), sign[0].resource.as_str()), ("kms:Sign", "arn:aws:kms:us-east-1:1:key/k1"));
    }

    #[test]
    fn kms_needs_the_key_policy_and_a_deny_wins() {
        let role = "arn:aws:iam::111111111111:role/signer";
        let key = "arn:aws:kms:us-east-1:111111111111:key/k1";
        let key_policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": ["kms:DescribeKey"], "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": role}, "Action": ["kms:Sign"], "Resource": "*"},
        ]});
        let identity = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["kms:Sign", "kms:DescribeKey", "kms:Decrypt"], "Resource": key},
            {"Effect": "Deny", "Action": "kms:Sign", "Resource": "*", "Condition": {"ArnNotEquals": {"lambda:SourceFunctionArn": "arn:aws:lambda:us-east-1:111111111111:function:f"}}},
        ]});
        let mut authority = Authority {
            principal: role.into(),
            account: "111111111111".into(),
            identity: vec![identity],
            resources: vec![(key.into(), key_policy)],
            context: BTreeMap::from([(
                "lambda:SourceFunctionArn".to_owned(),
                "arn:aws:lambda:us-east-1:111111111111:function:f".to_owned(),
            )]),
        };
        let call = |action: &str| Call { action: action.into(), resource: key.into(), context: BTreeMap::new() };
        assert_eq!(authority.judge(&call("kms:Sign")), Ok(()));
        assert_eq!(authority.judge(&call("kms:DescribeKey")), Ok(()), "delegated to IAM by the key policy");
        assert!(authority.judge(&call("kms:Decrypt")).unwrap_err().contains("not allowed"), "the key policy does not delegate it");
        authority.context.clear();
        assert!(authority.judge(&call("kms:Sign")).unwrap_err().contains("explicitly denied"), "outside the function");
        assert_eq!(
            unused_grants(&authority.identity, &[call("kms:Sign")]),
            [format!("kms:DescribeKey {key}"), format!("kms:Decrypt {key}")]
        );
    }

    #[test]
    fn over_broad_grants_are_found() {
        let document = json!({"Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "kms:*", "Resource": "arn:aws:kms:us-east-1:1:key/k"},
            {"Sid": "B", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
            {"Sid": "C", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::audit-b/audit/*"},
            {"Sid": "D", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
            {"Sid": "E", "Effect": "Deny", "Action": "*", "Resource": "*"},
            {"Sid": "F", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::audit-b/audit/*"},
        ]});
        let found = violations(&document, "audit-b");
        assert_eq!(found.len(), 4, "{found:?}");
        for sid in ["A:", "B:", "C:", "D:"] {
            assert!(found.iter().any(|v| v.starts_with(sid)), "{sid} {found:?}");
        }
    }
}
