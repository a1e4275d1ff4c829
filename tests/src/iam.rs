//! Least privilege, checked on the IAM policy documents a deployed role really has.

use serde_json::Value;

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
