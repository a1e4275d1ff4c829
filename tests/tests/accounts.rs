//! Many accounts: the CA runs in one account, hosts and users in member accounts (LocalStack's
//! accounts `111111111111` and `222222222222`, whose access key ids are their ids). The member
//! account template deploys there; `sshca init` binds a rule about a member account's role through
//! the template's read-only lookup role; the CA's function serves a member account's user and looks
//! a member account's host up in that account's EC2 as the lookup role; an account no rule names
//! is refused.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use iam_rs::Decision;
use serde_json::{json, Value};
use sshca_tests::iam::{decide, trust_admits, Call};
use sshca_tests::identities::{Account, Ec2, Identity, Instance};
use sshca_tests::*;

const MEMBER: Account = Account("111111111111");
const OUTSIDE: Account = Account("222222222222");

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn refused(output: &Output, expected: &str, what: &str) {
    assert!(!output.status.success(), "{what}: accepted");
    assert!(stderr(output).contains(expected), "{what}: expected {expected:?} in {}", stderr(output));
}

/// Deploys infra/member-account.yaml in `account`; its outputs.
fn deploy_member_stack(account: Account, environment: &str, sign_key_role: &str) -> std::collections::HashMap<String, String> {
    let stack = format!("sshca-member-{environment}");
    let template = workspace_root().join("infra/member-account.yaml");
    account.aws(&[
        "cloudformation",
        "deploy",
        "--template-file",
        template.to_str().unwrap(),
        "--stack-name",
        &stack,
        "--capabilities",
        "CAPABILITY_NAMED_IAM",
        "--parameter-overrides",
        &format!("EnvironmentName={environment}"),
        &format!("SignKeyRoleArn={sign_key_role}"),
        "SignKeyFunctionArn=arn:aws:lambda:us-east-1:000000000000:function:sshca-sign-key",
        "AdminRoleArn=arn:aws:iam::000000000000:role/sshca-admin",
    ]);
    let described = account.aws(&["cloudformation", "describe-stacks", "--stack-name", &stack]);
    described["Stacks"][0]["Outputs"]
        .as_array()
        .expect("the stack's outputs")
        .iter()
        .map(|output| (output["OutputKey"].as_str().unwrap().to_owned(), output["OutputValue"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn member_account_template_passes_cfn_lint() {
    let output = Command::new(tool("SSHCA_CFN_LINT")).arg(workspace_root().join("infra/member-account.yaml")).output().unwrap();
    assert!(output.status.success(), "cfn-lint: {}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
}

/// A policy document as the AWS CLI prints it: an object, or (LocalStack) the JSON as a string.
fn document(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).expect("a policy document"),
        other => other.clone(),
    }
}

/// The member template's roles, judged with an IAM evaluator (`iam-rs`) on the policies the
/// deployed stack holds (LocalStack enforces no trust policy, so its AssumeRole shows nothing):
/// only the CA's function role and the admin role may act as the lookup role, which may read
/// instances, this account's instance profiles and roles, and nothing else; no AWS principal may
/// be the host role, whose sessions only EC2 makes.
#[test]
fn member_template_roles_admit_only_whom_they_name() {
    let environment = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let function_role = "arn:aws:iam::000000000000:role/sshca-sign-key";
    let outputs = deploy_member_stack(MEMBER, &environment, function_role);
    let lookup_role = &outputs["LookupRoleArn"];
    let lookup_name = lookup_role.rsplit('/').next().unwrap();
    let trust = document(&MEMBER.aws(&["iam", "get-role", "--role-name", lookup_name])["Role"]["AssumeRolePolicyDocument"]);
    let no_context = BTreeMap::new();
    let call = |action: &str, resource: &str| Call { action: action.into(), resource: resource.into(), context: BTreeMap::new() };
    let admits = |trust: &Value, principal: &str, role: &str| trust_admits(trust, principal, role).unwrap();
    let trusted = json!({"AWS": [function_role, "arn:aws:iam::000000000000:role/sshca-admin"]});
    assert_eq!(trust["Statement"], json!([{"Effect": "Allow", "Principal": trusted, "Action": "sts:AssumeRole"}]), "one grant, exactly");
    assert!(admits(&trust, function_role, lookup_role), "the CA's function: {trust}");
    assert!(admits(&trust, "arn:aws:iam::000000000000:role/sshca-admin", lookup_role), "the admin role");
    for outsider in [
        "arn:aws:iam::000000000000:role/sshca-sign-key-copy",
        "arn:aws:iam::111111111111:role/sshca-sign-key",
        "arn:aws:iam::222222222222:role/sshca-admin",
        "arn:aws:iam::000000000000:root",
        "arn:aws:iam::111111111111:user/dev",
    ] {
        assert!(!admits(&trust, outsider, lookup_role), "{outsider} may act as the lookup role: {trust}");
    }

    let permissions = document(
        &MEMBER.aws(&["iam", "get-role-policy", "--role-name", lookup_name, "--policy-name", "read-instances-and-roles"])["PolicyDocument"],
    );
    let may = |action: &str, resource: &str| {
        decide(std::slice::from_ref(&permissions), lookup_role, &call(action, resource), &no_context).unwrap() == Decision::Allow
    };
    assert!(may("ec2:DescribeInstances", "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"));
    assert!(may("iam:GetInstanceProfile", "arn:aws:iam::111111111111:instance-profile/web"));
    assert!(may("iam:ListRoles", "arn:aws:iam::111111111111:role/web"));
    for (action, resource) in [
        ("iam:GetInstanceProfile", "arn:aws:iam::222222222222:instance-profile/web"),
        ("iam:CreateRole", "arn:aws:iam::111111111111:role/web"),
        ("iam:PassRole", "arn:aws:iam::111111111111:role/web"),
        ("iam:UpdateAssumeRolePolicy", lookup_role),
        ("sts:AssumeRole", "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"),
        ("ec2:CreateTags", "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"),
        ("s3:GetObject", "arn:aws:s3:::bucket/key"),
    ] {
        assert!(!may(action, resource), "the lookup role may {action} on {resource}: {permissions}");
    }

    let host_role = &outputs["HostRoleName"];
    let host_trust = document(&MEMBER.aws(&["iam", "get-role", "--role-name", host_role])["Role"]["AssumeRolePolicyDocument"]);
    let host_arn = format!("arn:aws:iam::111111111111:role/{host_role}");
    for principal in
        [function_role, "arn:aws:iam::000000000000:root", "arn:aws:iam::111111111111:root", "arn:aws:iam::111111111111:user/dev"]
    {
        assert!(!admits(&host_trust, principal, &host_arn), "{principal} may be the host role: {host_trust}");
    }
    let only_ec2 = json!([{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]);
    assert_eq!(host_trust["Statement"], only_ec2, "only EC2, in one grant: {host_trust}");
}

#[test]
fn member_accounts_are_served_through_their_lookup_role_and_other_accounts_are_not() {
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let environment = format!("m{id}");
    let outputs = deploy_member_stack(MEMBER, &environment, "arn:aws:iam::000000000000:role/sshca-sign-key");
    let lookup_role = &outputs["LookupRoleArn"];
    assert_eq!(lookup_role, &format!("arn:aws:iam::111111111111:role/sshca-lookup-{environment}"));
    let host_rules: Value = serde_json::from_str(&outputs["AccessRules"]).expect("the AccessRules output is JSON");
    let mut rules = vec![
        json!({"match": "arn:aws:iam::000000000000:root", "grant": "admin"}),
        json!({"match": format!("arn:aws:iam::111111111111:user/dev-{id}"), "grant": "user", "principals": ["{user}"],
               "user_name": "{user}@{account}"}),
    ];
    rules.extend(host_rules.as_array().unwrap().iter().cloned());
    // the CA account's users by their own names, beside the member's
    rules.push(json!({"match": format!("arn:aws:iam::000000000000:user/dev-{id}"), "grant": "user", "principals": ["{user}"]}));
    let rules_file = world.path("rules.json");
    // one user name for two people (same principals, key cache, revocation) unless the member's are qualified
    let mut clashing = rules.clone();
    clashing[1].as_object_mut().unwrap().remove("user_name");
    std::fs::write(&rules_file, Value::Array(clashing).to_string()).unwrap();
    let path = rules_file.to_str().unwrap();
    let args = ["init", &environment, "--create-bucket", "--create-keys", "--allowed-principals", "dev-*", "--rules", path];
    refused(&world.sshca(&args), "\"user_name\": \"{user}@{account}\"", "two accounts' users by the same names");
    std::fs::write(&rules_file, Value::Array(rules.clone()).to_string()).unwrap();
    let mut init = world.command("sshca");
    init.args([
        "init",
        &environment,
        "--create-bucket",
        "--create-keys",
        "--allowed-principals",
        "dev-*",
        "--allowed-host-principals",
        "*.internal,10.*,*.hosts.example.com",
    ]);
    let bound = init.args(["--rules", rules_file.to_str().unwrap()]).output().unwrap();
    assert!(bound.status.success(), "init: {}", stderr(&bound));
    let host_role = &outputs["HostRoleName"];
    assert!(stderr(&bound).contains(&format!("assumed-role/{host_role}/* is bound to role(s) ARO")), "{}", stderr(&bound));

    // without the lookup role, a member account's roles cannot be bound from the CA's account
    let mut unbindable = rules.clone();
    unbindable[2].as_object_mut().unwrap().remove("lookup_role");
    std::fs::write(&rules_file, Value::Array(unbindable).to_string()).unwrap();
    refused(
        &world.sshca(&["init", &environment, "--rules", rules_file.to_str().unwrap()]),
        "member-account.yaml",
        "a member rule without lookup role",
    );

    let lambda = LambdaEmulator::start(&world.env());
    let audience = default_audience(&world, &environment);
    let request = |who: &Identity, name: &str| {
        let dir = world.path(name);
        std::fs::create_dir(&dir).unwrap();
        let mut command = world.command("get_key");
        who.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
        command.args(["request", "-e", &environment, "--create-key", "--no-agent", "--audience", &audience, "--ssh-dir"]);
        (command.arg(&dir).output().unwrap(), dir)
    };
    let member_user = MEMBER.iam_user(&format!("dev-{id}"));
    assert!(member_user.arn.starts_with("arn:aws:iam::111111111111:user/"), "{}", member_user.arn);
    let (served, dir) = request(&member_user, "member-ssh");
    assert!(served.status.success(), "a member account's user: {}", stderr(&served));
    let certificate =
        std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("-cert.pub"));
    let listing = ssh_keygen_list(&certificate.expect("a certificate was installed"));
    assert!(listing.contains(&format!("Key ID: \"dev-{id}@111111111111#")), "the member's user, qualified: {listing}");
    let principals = listing.split("Principals:").nth(1).unwrap().split("Critical").next().unwrap();
    assert_eq!(principals.split_whitespace().collect::<Vec<_>>(), [format!("dev-{id}@111111111111")], "{listing}");

    // the same name in an account no rule names
    let outsider = OUTSIDE.iam_user(&format!("dev-{id}"));
    let (refusal, _) = request(&outsider, "outside-ssh");
    refused(&refusal, "222222222222", "an outside account's user of the same name");

    // a member account's host is looked up in that account's EC2, as the lookup role: the instance
    // is found there (LocalStack's EC2 attaches no profile, so it is then refused for that)
    let web = Instance::run_in(Ec2::LocalStack(MEMBER), &format!("web-{id}"), None);
    let host_role_arn = format!("arn:aws:iam::111111111111:role/{host_role}");
    let host = MEMBER.session_of(&host_role_arn, &web.id);
    let key = keygen(world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");
    let renew = |host: &Identity| {
        let mut renew = world.command("sshca");
        host.apply(&mut renew).env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
        renew.args(["renew-host", "-e", &environment, "--audience", &audience, "--force", "-k", key.to_str().unwrap()]).output().unwrap()
    };
    refused(&renew(&host), &format!("instance {} has no instance profile", web.id), "a member account's instance without the role");
    let elsewhere = Instance::run(&format!("web-{id}"));
    let forged = MEMBER.session_of(&host_role_arn, &elsewhere.id);
    refused(&renew(&forged), &format!("there is no instance {}", elsewhere.id), "the CA account's instance, named by a member's session");
    assert!(!cert_path(&key).exists(), "nothing was installed");
}
