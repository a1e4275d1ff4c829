//! Real AWS identities from LocalStack's IAM and STS: IAM users with access keys, and assumed-role
//! sessions. LocalStack's `GetCallerIdentity` answers with the ARN behind an access key, but it
//! does not check signatures: what these identities prove here is sshca's own checks (binding,
//! audience, age, access rules), not STS's signature check.

use std::process::Command;

use serde_json::Value;

use crate::{kms_endpoint, tool};

/// AWS credentials of one identity.
#[derive(Debug, Clone)]
pub struct Identity {
    pub arn: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

fn aws(args: &[&str]) -> Value {
    let output = Command::new(tool("SSHCA_AWS_CLI"))
        .args(args)
        .args(["--output", "json", "--endpoint-url", &kms_endpoint()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("run the AWS CLI");
    assert!(output.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

impl Identity {
    /// LocalStack's account root: the test servers' own credentials.
    pub fn test_root() -> Self {
        Identity {
            arn: "arn:aws:iam::000000000000:root".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            session_token: None,
        }
    }

    /// A new IAM user `name` with an access key.
    pub fn iam_user(name: &str) -> Self {
        let user = aws(&["iam", "create-user", "--user-name", name]);
        let key = aws(&["iam", "create-access-key", "--user-name", name]);
        Identity {
            arn: user["User"]["Arn"].as_str().expect("a user ARN").to_owned(),
            access_key: key["AccessKey"]["AccessKeyId"].as_str().expect("an access key").to_owned(),
            secret_key: key["AccessKey"]["SecretAccessKey"].as_str().expect("a secret key").to_owned(),
            session_token: None,
        }
    }

    /// A session of a new role `role` named `session`, as an EC2 instance role's session is named
    /// after its instance.
    pub fn assumed_role(role: &str, session: &str) -> Self {
        Self::session_of(&Self::create_role(role, "/"), session)
    }

    /// Creates role `role` at `path` (e.g. IAM Identity Center's `/aws-reserved/sso.amazonaws.com/`);
    /// returns its ARN.
    pub fn create_role(role: &str, path: &str) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let created = aws(&["iam", "create-role", "--role-name", role, "--path", path, "--assume-role-policy-document", trust]);
        created["Role"]["Arn"].as_str().expect("a role ARN").to_owned()
    }

    /// Deletes role `role`, as an admin cleaning up would (a role of the same name may follow).
    pub fn delete_role(role: &str) {
        aws(&["iam", "delete-role", "--role-name", role]);
    }

    /// A session named `session` of the role `role_arn`.
    pub fn session_of(role_arn: &str, session: &str) -> Self {
        let assumed = aws(&["sts", "assume-role", "--role-arn", role_arn, "--role-session-name", session]);
        let credentials = &assumed["Credentials"];
        Identity {
            arn: assumed["AssumedRoleUser"]["Arn"].as_str().expect("an assumed-role ARN").to_owned(),
            access_key: credentials["AccessKeyId"].as_str().expect("an access key").to_owned(),
            secret_key: credentials["SecretAccessKey"].as_str().expect("a secret key").to_owned(),
            session_token: credentials["SessionToken"].as_str().map(str::to_owned),
        }
    }

    /// Makes `command` run as this identity.
    pub fn apply<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("AWS_ACCESS_KEY_ID", &self.access_key).env("AWS_SECRET_ACCESS_KEY", &self.secret_key);
        match &self.session_token {
            Some(token) => command.env("AWS_SESSION_TOKEN", token),
            None => command.env_remove("AWS_SESSION_TOKEN"),
        }
    }
}
