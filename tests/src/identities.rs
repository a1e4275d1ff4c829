//! Real AWS identities from LocalStack's IAM and STS: IAM users with access keys, and assumed-role
//! sessions. LocalStack's `GetCallerIdentity` answers with the ARN behind an access key, but it
//! does not check signatures: what these identities prove here is sshca's own checks (binding,
//! audience, age, access rules). STS's signature check is moto's ([`Moto`]): a server of its own
//! per test, whose IAM users' proofs it verifies.

use std::process::Command;

use serde_json::Value;

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, identity_store_endpoint, kms_endpoint, tool};

/// AWS credentials of one identity.
#[derive(Debug, Clone)]
pub struct Identity {
    pub arn: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

fn aws(args: &[&str]) -> Value {
    Account::CA.aws(args)
}

/// An account of LocalStack's: its access key id is the account's id (LocalStack's scheme for
/// many accounts), but for the CA's own account `000000000000`, whose key is `test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account(pub &'static str);

impl Account {
    /// The account the CA (its bucket, KMS keys and function) is in.
    pub const CA: Account = Account("000000000000");

    fn access_key(self) -> &'static str {
        if self == Self::CA {
            "test"
        } else {
            self.0
        }
    }

    /// The AWS CLI against LocalStack, as this account's root.
    pub fn aws(self, args: &[&str]) -> Value {
        aws_at(&kms_endpoint(), (self.access_key(), "test"), args)
    }

    /// This account's root, as the credentials of a process.
    pub fn root(self) -> Identity {
        Identity {
            arn: format!("arn:aws:iam::{}:root", self.0),
            access_key: self.access_key().into(),
            secret_key: "test".into(),
            session_token: None,
        }
    }

    /// A new IAM user `name` of this account with an access key.
    pub fn iam_user(self, name: &str) -> Identity {
        create_user(&kms_endpoint(), (self.access_key(), "test"), name)
    }

    /// Creates role `role` at `path` (e.g. IAM Identity Center's `/aws-reserved/sso.amazonaws.com/`)
    /// in this account; returns its ARN.
    pub fn create_role(self, role: &str, path: &str) -> String {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let created = self.aws(&["iam", "create-role", "--role-name", role, "--path", path, "--assume-role-policy-document", trust]);
        created["Role"]["Arn"].as_str().expect("a role ARN").to_owned()
    }

    /// A session named `session` of the role `role_arn`, assumed by this account's root.
    pub fn session_of(self, role_arn: &str, session: &str) -> Identity {
        let assumed = self.aws(&["sts", "assume-role", "--role-arn", role_arn, "--role-session-name", session]);
        let credentials = &assumed["Credentials"];
        Identity {
            arn: assumed["AssumedRoleUser"]["Arn"].as_str().expect("an assumed-role ARN").to_owned(),
            access_key: credentials["AccessKeyId"].as_str().expect("an access key").to_owned(),
            secret_key: credentials["SecretAccessKey"].as_str().expect("a secret key").to_owned(),
            session_token: credentials["SessionToken"].as_str().map(str::to_owned),
        }
    }
}

/// The AWS CLI against `endpoint` with the given access key and secret.
fn aws_at(endpoint: &str, (access_key, secret_key): (&str, &str), args: &[&str]) -> Value {
    let output = Command::new(tool("SSHCA_AWS_CLI"))
        .args(args)
        .args(["--output", "json", "--endpoint-url", endpoint])
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run the AWS CLI");
    assert!(output.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// A user and its access key, created with `credentials` in the IAM at `endpoint`.
fn create_user(endpoint: &str, credentials: (&str, &str), name: &str) -> Identity {
    let user = aws_at(endpoint, credentials, &["iam", "create-user", "--user-name", name]);
    let key = aws_at(endpoint, credentials, &["iam", "create-access-key", "--user-name", name]);
    Identity {
        arn: user["User"]["Arn"].as_str().expect("a user ARN").to_owned(),
        access_key: key["AccessKey"]["AccessKeyId"].as_str().expect("an access key").to_owned(),
        secret_key: key["AccessKey"]["SecretAccessKey"].as_str().expect("a secret key").to_owned(),
        session_token: None,
    }
}

impl Identity {
    /// LocalStack's account root: the test servers' own credentials.
    pub fn test_root() -> Self {
        Account::CA.root()
    }

    /// A new IAM user `name` with an access key.
    pub fn iam_user(name: &str) -> Self {
        Account::CA.iam_user(name)
    }

    /// The same access key with another secret: what a forger who knows only the key id holds.
    pub fn with_wrong_secret(&self) -> Self {
        Identity { secret_key: format!("{}x", self.secret_key), ..self.clone() }
    }

    /// The environment that gives a process these credentials (e.g. for a function).
    pub fn credentials(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("AWS_ACCESS_KEY_ID", self.access_key.clone()), ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone())];
        env.extend(self.session_token.clone().map(|token| ("AWS_SESSION_TOKEN", token)));
        env
    }

    /// A session of a new role `role` named `session`, as an EC2 instance role's session is named
    /// after its instance.
    pub fn assumed_role(role: &str, session: &str) -> Self {
        Self::session_of(&Self::create_role(role, "/"), session)
    }

    /// Creates role `role` at `path` (e.g. IAM Identity Center's `/aws-reserved/sso.amazonaws.com/`);
    /// returns its ARN.
    pub fn create_role(role: &str, path: &str) -> String {
        Account::CA.create_role(role, path)
    }

    /// Deletes role `role`, as an admin cleaning up would (a role of the same name may follow).
    pub fn delete_role(role: &str) {
        aws(&["iam", "delete-role", "--role-name", role]);
    }

    /// A session named `session` of the role `role_arn`.
    pub fn session_of(role_arn: &str, session: &str) -> Self {
        Account::CA.session_of(role_arn, session)
    }

    /// These credentials, for an SDK client or a proof made in this process.
    pub fn sdk_credentials(&self) -> aws_sdk_sts::config::Credentials {
        aws_sdk_sts::config::Credentials::new(&self.access_key, &self.secret_key, self.session_token.clone(), None, "sshca-tests")
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

/// moto's server on a port of its own, with authentication on: every request but the first three
/// (which create its admin) must be signed by one of its IAM identities, and its STS checks the
/// signature as AWS does. Stopped on drop.
pub struct Moto {
    pub port: u16,
    pub admin: Identity,
    child: Child,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(tool("SSHCA_MOTO"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ACCOUNT_ID", "000000000000")
            // the admin's user, policy and access key; a health check would count as one
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (scripts/servers.sh start installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let endpoint = format!("http://127.0.0.1:{port}");
        let anyone = ("bootstrap", "bootstrap");
        aws_at(&endpoint, anyone, &["iam", "create-user", "--user-name", "admin"]);
        let everything = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        aws_at(
            &endpoint,
            anyone,
            &["iam", "put-user-policy", "--user-name", "admin", "--policy-name", "all", "--policy-document", everything],
        );
        let key = aws_at(&endpoint, anyone, &["iam", "create-access-key", "--user-name", "admin"]);
        let admin = Identity {
            arn: "arn:aws:iam::000000000000:user/admin".into(),
            access_key: key["AccessKey"]["AccessKeyId"].as_str().expect("an access key").to_owned(),
            secret_key: key["AccessKey"]["SecretAccessKey"].as_str().expect("a secret key").to_owned(),
            session_token: None,
        };
        Moto { port, admin, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new IAM user of this server, with an access key.
    pub fn iam_user(&self, name: &str) -> Identity {
        create_user(&self.endpoint(), (&self.admin.access_key, &self.admin.secret_key), name)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the IAM user `user` in the IAM group `group` (created first if there is none).
pub fn add_to_iam_group(user: &str, group: &str) {
    let exists = Command::new(tool("SSHCA_AWS_CLI"))
        .args(["iam", "get-group", "--group-name", group, "--endpoint-url", &kms_endpoint()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .is_ok_and(|output| output.status.success());
    if !exists {
        aws(&["iam", "create-group", "--group-name", group]);
    }
    aws(&["iam", "add-user-to-group", "--user-name", user, "--group-name", group]);
}

/// Takes the IAM user `user` out of the IAM group `group`.
pub fn remove_from_iam_group(user: &str, group: &str) {
    aws(&["iam", "remove-user-from-group", "--user-name", user, "--group-name", group]);
}

/// An IAM Identity Center identity store of its own on the rig's directory server (moto):
/// its users (by user name) and groups (by display name), as Identity Center keeps them.
pub struct IdentityStore {
    pub id: String,
}

impl IdentityStore {
    pub fn new() -> Self {
        crate::require_server(&crate::identity_store_endpoint());
        let digits: String = uuid::Uuid::new_v4().as_u128().to_string().chars().take(10).collect();
        IdentityStore { id: format!("d-{digits}") }
    }

    fn run(&self, args: &[&str]) -> Value {
        let mut all = vec!["identitystore"];
        all.extend_from_slice(args);
        all.extend(["--identity-store-id", &self.id]);
        aws_at(&crate::identity_store_endpoint(), ("test", "test"), &all)
    }

    /// Creates user `name`; returns its user id.
    pub fn user(&self, name: &str) -> String {
        let names = "GivenName=Test,FamilyName=User";
        let created = self.run(&["create-user", "--user-name", name, "--display-name", name, "--name", names]);
        created["UserId"].as_str().expect("a user id").to_owned()
    }

    /// Creates group `name`; returns its group id.
    pub fn group(&self, name: &str) -> String {
        self.run(&["create-group", "--display-name", name])["GroupId"].as_str().expect("a group id").to_owned()
    }

    /// Puts the user in the group; returns the membership's id.
    pub fn add(&self, user_id: &str, group_id: &str) -> String {
        let member = format!("UserId={user_id}");
        let created = self.run(&["create-group-membership", "--group-id", group_id, "--member-id", &member]);
        created["MembershipId"].as_str().expect("a membership id").to_owned()
    }

    /// Ends a membership.
    pub fn remove(&self, membership_id: &str) {
        self.run(&["delete-group-membership", "--membership-id", membership_id]);
    }
}

impl Default for IdentityStore {
    fn default() -> Self {
        Self::new()
    }
}

/// An EC2 to run instances in: LocalStack's, in one of its accounts, or moto's (the identity
/// store's server), whose EC2, unlike LocalStack's, attaches instance profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ec2 {
    LocalStack(Account),
    Moto,
}

impl Ec2 {
    /// The endpoint a process's `AWS_ENDPOINT_URL_EC2` names for this EC2.
    pub fn endpoint(self) -> String {
        match self {
            Ec2::LocalStack(_) => kms_endpoint(),
            Ec2::Moto => identity_store_endpoint(),
        }
    }

    fn aws(self, args: &[&str]) -> Value {
        match self {
            Ec2::LocalStack(account) => account.aws(args),
            Ec2::Moto => aws_at(&self.endpoint(), ("test", "test"), args),
        }
    }

    /// Creates, in this EC2's own IAM, role `role` (trusted by EC2) in an instance profile of the
    /// same name; returns the role's ARN. For moto, whose IAM is not LocalStack's, the function's
    /// `iam:GetInstanceProfile` asks LocalStack's: create the profile there too ([`Ec2::LocalStack`]).
    pub fn create_instance_profile(self, role: &str) -> String {
        let account = match self {
            Ec2::LocalStack(account) => account,
            Ec2::Moto => Account::CA,
        };
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let created = self.aws(&["iam", "create-role", "--role-name", role, "--assume-role-policy-document", trust]);
        self.aws(&["iam", "create-instance-profile", "--instance-profile-name", role]);
        self.aws(&["iam", "add-role-to-instance-profile", "--instance-profile-name", role, "--role-name", role]);
        let arn = created["Role"]["Arn"].as_str().expect("a role ARN").to_owned();
        assert!(arn.contains(account.0), "{arn} is a role of account {}", account.0);
        arn
    }
}

/// An EC2 instance, running.
pub struct Instance {
    pub id: String,
    pub private_ip: String,
    pub private_dns: String,
    ec2: Ec2,
}

impl Instance {
    /// Runs an instance tagged `Name=name` on LocalStack's EC2 of the CA's account, without an
    /// instance profile.
    pub fn run(name: &str) -> Self {
        Self::run_in(Ec2::LocalStack(Account::CA), name, None)
    }

    /// Runs an instance tagged `Name=name` in `ec2`, with the instance profile `profile`.
    pub fn run_in(ec2: Ec2, name: &str, profile: Option<&str>) -> Self {
        let tags = format!("ResourceType=instance,Tags=[{{Key=Name,Value={name}}}]");
        let image = ec2.aws(&["ec2", "describe-images"])["Images"][0]["ImageId"].as_str().expect("an image").to_owned();
        let mut args = vec![
            "ec2",
            "run-instances",
            "--image-id",
            &image,
            "--instance-type",
            "t3.micro",
            "--count",
            "1",
            "--tag-specifications",
            &tags,
        ];
        let profile = profile.map(|name| format!("Name={name}"));
        if let Some(profile) = &profile {
            args.extend(["--iam-instance-profile", profile]);
        }
        let ran = ec2.aws(&args);
        let instance = &ran["Instances"][0];
        Instance {
            id: instance["InstanceId"].as_str().expect("an instance id").to_owned(),
            private_ip: instance["PrivateIpAddress"].as_str().expect("a private IP").to_owned(),
            private_dns: instance["PrivateDnsName"].as_str().expect("a private DNS name").to_owned(),
            ec2,
        }
    }

    /// Stops the instance and waits until EC2 says it is stopped.
    pub fn stop(&self) {
        self.ec2.aws(&["ec2", "stop-instances", "--instance-ids", &self.id]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let described = self.ec2.aws(&["ec2", "describe-instances", "--instance-ids", &self.id]);
            if described["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped" {
                return;
            }
            assert!(Instant::now() < deadline, "instance {} did not stop in 30 s", self.id);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
