//! Deploy and invoke: the CloudFormation template deploys on LocalStack, and the real `sign_key`
//! binary, behind cargo-lambda's Invoke API emulator, signs for `sshca sign --function`.

use std::process::Command;

use sshca_tests::*;
use sshca_tests::{faults, iam};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn template_passes_cfn_lint() {
    let output = Command::new(tool("SSHCA_CFN_LINT")).arg(workspace_root().join("infra/template.yaml")).output().unwrap();
    assert!(output.status.success(), "cfn-lint: {}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
}

/// Signs through the function with `sshca sign` (no --local), installs with get_key, logs in;
/// a request the policy forbids comes back as a function error the CLI prints with its type.
fn sign_through_function(world: &World, environment: &str, function_env: Vec<(&'static str, String)>, ca: &str, audit_bucket: &str) {
    let lambda = LambdaEmulator::start(&function_env);
    let key = keygen(world.dir.path(), &format!("id_{environment}"), "ed25519", None, "");
    let sshd = Sshd::start(ca, &["deploy"], "");
    let sign = |extra: &[&str]| {
        world
            .command("sshca")
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
            .args(["sign", "-e", environment, "-u", "jane", "-r", "through the function", "--function", "sign_key", "-p"])
            .arg(pub_path(&key))
            .args(extra)
            .output()
            .unwrap()
    };
    let output = sign(&[]);
    assert!(output.status.success(), "sign through the function: {}", stderr(&output));
    let url = String::from_utf8(output.stdout).unwrap();
    let installed = world.command("get_key").arg(url.trim()).arg("--ssh-dir").arg(world.dir.path()).arg("--no-agent").output().unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(sshd.login_with(&key), "refused: {}", sshd.log());

    let refused = sign(&["--principal", "root"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("PolicyViolation: not allowed by policy: principal \"root\""), "{}", stderr(&refused));

    // cargo lambda's own client drives the same function, with proofs made as `sshca sign` makes them
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let audience = default_audience(world, environment);
    let proven = |body: String| String::from_utf8(runtime.block_on(with_proof(body.as_bytes(), &audience))).unwrap();
    let invoke = |payload: String| {
        Command::new(tool("SSHCA_CARGO_LAMBDA"))
            .args(["lambda", "invoke", "sign_key", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(lambda.port.to_string())
            .args(["--data-ascii", &payload])
            .output()
            .unwrap()
    };
    let output = invoke(proven(format!(r#"{{"environment":"{environment}","username":"jane","reason":"cargo lambda invoke"}}"#)));
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", stderr(&output)));
    assert_eq!(response["key_id"], format!("jane#{}", response["serial"]));
    let output = invoke(proven(format!(r#"{{"environment":"{environment}","username":"jane","reason":"x","ttl":999999999}}"#)));
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("PolicyViolation") || stderr(&output).contains("PolicyViolation"),
        "{}",
        stderr(&output)
    );

    // a direct invoke of a Function URL event whose requestContext claims alice: the audit record
    // names the proven caller (the test credentials are LocalStack's account root), not the
    // forged one, and keeps the payload's requested_by as the label it is
    let alice = "arn:aws:iam::000000000000:user/alice";
    let body = proven(
        serde_json::json!({"environment": environment, "username": "jane", "reason": "function url", "requested_by": "mallory"})
            .to_string(),
    );
    let event = serde_json::json!({
        "version": "2.0",
        "requestContext": {"http": {"method": "POST", "path": "/"}, "authorizer": {"iam": {"userArn": alice}}},
        "body": body,
        "isBase64Encoded": false,
    });
    let output = invoke(event.to_string());
    let http: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", stderr(&output)));
    assert_eq!(http["statusCode"], 200, "{http}");
    let response: serde_json::Value = serde_json::from_str(http["body"].as_str().unwrap()).unwrap();
    let serial = response["serial"].as_u64().unwrap();
    let record = runtime.block_on(async {
        let s3 = world.s3().await;
        let listed = s3.list_objects_v2().bucket(audit_bucket).prefix(format!("audit/{environment}/")).send().await.unwrap();
        let key = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .find(|k| k.ends_with(&format!("{serial:020}-issued.json")))
            .expect("an audit record for the Function URL issuance")
            .to_owned();
        let object = s3.get_object().bucket(audit_bucket).key(key).send().await.unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    });
    assert_eq!(record["caller_identity"], "arn:aws:iam::000000000000:root", "{record}");
    assert_ne!(record["caller_identity"], alice, "{record}");
    assert_eq!(record["proven"], true, "{record}");
    assert_eq!(record["requested_by"], "mallory", "{record}");
    let refused = invoke(serde_json::json!({"requestContext": {"http": {"method": "POST"}}, "body": "{\"environment\": 1}"}).to_string());
    let http: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap_or_else(|_| panic!("{}", stderr(&refused)));
    assert_eq!(http["statusCode"], 400, "{http}");
    assert!(http["body"].as_str().unwrap().contains("InvalidRequest"), "{http}");
}

fn function_signs_through_invoke_api(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy"]);
    sign_through_function(&world, "staging", world.env(), &ca, &world.bucket);
}

#[test]
fn stack_deploys_on_localstack_and_the_function_signs_with_its_keys() {
    let world = World::new(S3Server::LocalStack);
    let environment = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let output = Command::new(workspace_root().join("infra/deploy.sh"))
        .arg(&environment)
        .envs(world.env())
        .env("AWS_ENDPOINT_URL", S3Server::LocalStack.endpoint())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CLI", tool("SSHCA_AWS_CLI"))
        .output()
        .unwrap();
    assert!(output.status.success(), "deploy: {}", stderr(&output));
    let outputs: std::collections::HashMap<String, String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let state_bucket = outputs["StateBucketName"].clone();
    let audit_bucket = outputs["AuditBucketName"].clone();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kms = runtime.block_on(world.kms());
    for key in ["UserCaKeyId", "HostCaKeyId"] {
        let described = runtime.block_on(kms.describe_key().key_id(&outputs[key]).send()).unwrap();
        let metadata = described.key_metadata().unwrap();
        assert_eq!(metadata.key_usage().unwrap().as_str(), "SIGN_VERIFY", "{key}");
        assert_eq!(metadata.key_spec().unwrap().as_str(), "ECC_NIST_P256", "{key}");
    }

    function_role_has_least_privilege(&world, &format!("sshca-{environment}"), &audit_bucket);
    ca_keys_sign_only_for_the_function(&world, &outputs, &format!("sshca-{environment}"));
    audit_trail_is_append_only(&world, &audit_bucket);

    let world = World { bucket: state_bucket.clone(), ..world };
    let out = world.sshca_ok(&[
        "init",
        &environment,
        "--user-ca-key",
        &outputs["UserCaKeyId"],
        "--host-ca-key",
        &outputs["HostCaKeyId"],
        "--principals",
        "deploy",
    ]);
    let ca = out.lines().next().unwrap().to_owned();
    let mut function_env = world.env();
    function_env.push(("SSHCA_AUDIT_BUCKET", audit_bucket.clone()));
    sign_through_function(&world, &environment, function_env, &ca, &audit_bucket);

    let s3 = runtime.block_on(world.s3());
    let audit = runtime.block_on(s3.list_objects_v2().bucket(&audit_bucket).prefix(format!("audit/{environment}/")).send()).unwrap();
    let records: Vec<_> = audit.contents().iter().filter_map(|o| o.key()).collect();
    let issued = records.iter().filter(|k| k.ends_with("-issued.json")).count();
    assert_eq!(issued, 3, "the three issued certificates are in the audit bucket: {records:?}");
    let leases = records.iter().filter(|k| k.starts_with(&format!("audit/{environment}/leases/"))).count();
    assert_eq!((leases, records.len()), (1, 4), "one lease of serials, recorded in the audit bucket: {records:?}");
    let state = runtime.block_on(world.objects());
    assert!(!state.iter().any(|k| k.starts_with("audit/")), "audit records leaked into the state bucket: {state:?}");

    function_needs_exactly_its_role(&world, &outputs, &environment, &audit_bucket);

    // the stack's access rules for users (the SSO permission set) and hosts (its instance role)
    // the permission set's role as IAM Identity Center makes it: the rule binds to it
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..16];
    sshca_tests::identities::Identity::create_role(&format!("AWSReservedSSO_SshUsers_{suffix}"), "/aws-reserved/sso.amazonaws.com/");
    let rules = world.path("rules.json");
    std::fs::write(&rules, &outputs["AccessRules"]).unwrap();
    world.sshca_ok(&["init", &environment, "--rules", rules.to_str().unwrap()]);
    let shown = world.sshca_ok(&["show-policy", &environment]);
    assert!(shown.contains("1. arn:aws:iam::000000000000:root  →  admin"), "whoever runs init stays admin: {shown}");
    assert!(
        shown.contains("assumed-role/AWSReservedSSO_SshUsers_????????????????/*  →  user; named by its session name (set by AWS)"),
        "{shown}"
    );
    assert!(shown.contains("→  host; host certificates only; principals [\"{session}.hosts.example.com\"]"), "{shown}");
    invoke_policies_grant_only_the_function(&world, &outputs, &environment);
}

/// The CA keys' policies, as KMS keeps them: admins administer without signing, the function
/// signs, and an explicit deny keeps everyone else (whatever their identity policies say) from
/// signing certificates offline.
fn ca_keys_sign_only_for_the_function(world: &World, outputs: &std::collections::HashMap<String, String>, stack: &str) {
    let resource =
        aws_cli(world, &["cloudformation", "describe-stack-resource", "--stack-name", stack, "--logical-resource-id", "SignKeyRole"]);
    let role_name = resource["StackResourceDetail"]["PhysicalResourceId"].as_str().unwrap().to_owned();
    let role_arn = aws_cli(world, &["iam", "get-role", "--role-name", &role_name])["Role"]["Arn"].as_str().unwrap().to_owned();
    for output in ["UserCaKeyId", "HostCaKeyId"] {
        let answer = aws_cli(world, &["kms", "get-key-policy", "--key-id", &outputs[output], "--policy-name", "default"]);
        let policy: serde_json::Value = serde_json::from_str(answer["Policy"].as_str().unwrap()).unwrap();
        let statements = policy["Statement"].as_array().unwrap();
        let actions = |statement: &serde_json::Value| -> Vec<String> {
            match &statement["Action"] {
                serde_json::Value::String(one) => vec![one.clone()],
                many => many.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            }
        };
        for statement in statements.iter().filter(|s| s["Effect"] == "Allow") {
            let acts = actions(statement);
            assert!(!acts.iter().any(|a| a.contains('*')), "{output}: a wildcard action: {statement}");
            if acts.iter().any(|a| a == "kms:Sign") {
                assert_eq!(statement["Principal"]["AWS"], role_arn, "{output}: only the function role may sign: {statement}");
            }
        }
        let deny = statements
            .iter()
            .find(|s| s["Effect"] == "Deny" && actions(s) == ["kms:Sign"])
            .unwrap_or_else(|| panic!("{output}: no Sign deny: {policy}"));
        assert_eq!(deny["Principal"], "*", "{deny}");
        let exempt: Vec<&str> =
            deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert!(exempt.iter().all(|arn| *arn == role_arn), "{output}: the deny exempts only the function role: {deny}");
    }
}

/// The audit bucket's policy: no deletion, and no write that is not a write-once write, for
/// anyone; its Object Lock default is governance mode unless COMPLIANCE is asked for.
fn audit_trail_is_append_only(world: &World, audit_bucket: &str) {
    let answer = aws_cli(world, &["s3api", "get-bucket-policy", "--bucket", audit_bucket]);
    let policy: serde_json::Value = serde_json::from_str(answer["Policy"].as_str().unwrap()).unwrap();
    let text = policy.to_string();
    let denies = |action: &str| {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Effect"] == "Deny" && s["Principal"] == "*" && s["Action"].to_string().contains(action))
    };
    assert!(denies("s3:DeleteObject") && denies("s3:DeleteObjectVersion"), "{text}");
    assert!(denies("s3:PutObject") && text.contains("s3:if-none-match"), "writes without If-None-Match are not denied: {text}");
    let lock = aws_cli(world, &["s3api", "get-object-lock-configuration", "--bucket", audit_bucket]);
    assert_eq!(lock["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"], "GOVERNANCE", "{lock}");
}

/// The users' and hosts' managed policies, as IAM keeps them: invoking this environment's
/// function and nothing else.
fn invoke_policies_grant_only_the_function(world: &World, outputs: &std::collections::HashMap<String, String>, environment: &str) {
    for output in ["UsersInvokePolicyArn", "HostsInvokePolicyArn"] {
        let policy = aws_cli(world, &["iam", "get-policy", "--policy-arn", &outputs[output]]);
        let version = policy["Policy"]["DefaultVersionId"].as_str().unwrap().to_owned();
        let document = aws_cli(world, &["iam", "get-policy-version", "--policy-arn", &outputs[output], "--version-id", &version]);
        let statements = document["PolicyVersion"]["Document"]["Statement"].as_array().unwrap().clone();
        assert_eq!(statements.len(), 1, "{output}: {statements:?}");
        assert_eq!(statements[0]["Action"], "lambda:InvokeFunction", "{output}");
        assert_eq!(
            statements[0]["Resource"],
            format!("arn:aws:lambda:us-east-1:000000000000:function:sshca-sign-key-{environment}"),
            "{output}"
        );
    }
}

fn aws_cli(world: &World, args: &[&str]) -> serde_json::Value {
    let output = Command::new(tool("SSHCA_AWS_CLI"))
        .args(args)
        .args(["--output", "json", "--endpoint-url", &S3Server::LocalStack.endpoint()])
        .envs(world.env())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(output.status.success(), "aws {args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The deployed function role's policies, as IAM keeps them: no wildcard actions, no
/// `Resource: "*"` on S3 or KMS, no deletion in the audit bucket.
fn function_role_has_least_privilege(world: &World, stack: &str, audit_bucket: &str) {
    let aws = |args: &[&str]| aws_cli(world, args);
    let resource = aws(&["cloudformation", "describe-stack-resource", "--stack-name", stack, "--logical-resource-id", "SignKeyRole"]);
    let role = resource["StackResourceDetail"]["PhysicalResourceId"].as_str().unwrap().to_owned();
    let inline = aws(&["iam", "list-role-policies", "--role-name", &role]);
    let mut names: Vec<&str> = inline["PolicyNames"].as_array().unwrap().iter().filter_map(|n| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["sign-key", "sign-key-kms"], "the role's inline policies");
    let attached = aws(&["iam", "list-attached-role-policies", "--role-name", &role]);
    assert_eq!(attached["AttachedPolicies"], serde_json::json!([]), "no managed policy may widen the role");
    let mut statements = Vec::new();
    for name in names {
        let policy = aws(&["iam", "get-role-policy", "--role-name", &role, "--policy-name", name]);
        statements.extend(policy["PolicyDocument"]["Statement"].as_array().unwrap().iter().cloned());
    }
    let document = serde_json::json!({"Statement": statements});
    assert!(statements.len() >= 5, "{document}");
    let violations = sshca_tests::iam::violations(&document, audit_bucket);
    assert!(violations.is_empty(), "the function role grants too much: {violations:?}");
}

/// The IAM policies a deployed stack holds for `role_name` (its inline ones).
fn role_policies(world: &World, role_name: &str) -> Vec<serde_json::Value> {
    let inline = aws_cli(world, &["iam", "list-role-policies", "--role-name", role_name]);
    let names: Vec<String> = inline["PolicyNames"].as_array().unwrap().iter().filter_map(|n| n.as_str().map(str::to_owned)).collect();
    names
        .iter()
        .map(|name| aws_cli(world, &["iam", "get-role-policy", "--role-name", role_name, "--policy-name", name])["PolicyDocument"].clone())
        .collect()
}

/// The function, run under the role the template creates (a session of it from STS), serves a
/// full issuance, one from the key cache, a host certificate, a self-service request and a
/// refused request; every S3 and KMS call it makes (recorded by a proxy) is judged against the
/// role's policies, the CA keys' policies and the buckets' policies as the stack deployed them.
/// Every call must be allowed, every grant used by a call or named in the README, and without
/// `kms:DescribeKey` the check names what fails.
fn function_needs_exactly_its_role(
    world: &World,
    outputs: &std::collections::HashMap<String, String>,
    environment: &str,
    audit_bucket: &str,
) {
    let stack = format!("sshca-{environment}");
    let resource =
        aws_cli(world, &["cloudformation", "describe-stack-resource", "--stack-name", &stack, "--logical-resource-id", "SignKeyRole"]);
    let role_name = resource["StackResourceDetail"]["PhysicalResourceId"].as_str().unwrap().to_owned();
    let role_arn = aws_cli(world, &["iam", "get-role", "--role-name", &role_name])["Role"]["Arn"].as_str().unwrap().to_owned();
    let session = aws_cli(world, &["sts", "assume-role", "--role-arn", &role_arn, "--role-session-name", "sign-key"]);
    let credentials = &session["Credentials"];
    let alice = sshca_tests::identities::Identity::iam_user(&format!("alice-{environment}"));
    let rules = serde_json::json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": alice.arn, "grant": "user", "principals": ["{user}"]},
    ]);
    let rules_file = world.path("role-check-rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    world.sshca_ok(&[
        "init",
        environment,
        "--allowed-principals",
        "deploy,alice-*",
        "--allowed-host-principals",
        "*.example.com",
        "--rules",
        rules_file.to_str().unwrap(),
    ]);

    let (s3, kms) = (faults::FaultProxy::start(&S3Server::LocalStack.endpoint()), faults::FaultProxy::start(&kms_endpoint()));
    let function_env = vec![
        ("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"].as_str().unwrap().to_owned()),
        ("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"].as_str().unwrap().to_owned()),
        ("AWS_SESSION_TOKEN", credentials["SessionToken"].as_str().unwrap().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL_S3", s3.endpoint()),
        ("AWS_ENDPOINT_URL_KMS", kms.endpoint()),
        ("AWS_ENDPOINT_URL_STS", kms_endpoint()),
        ("SSHCA_BUCKET", world.bucket.clone()),
        ("SSHCA_AUDIT_BUCKET", audit_bucket.to_owned()),
    ];
    let lambda = LambdaEmulator::start(&function_env);
    let key = keygen(world.dir.path(), "role-check", "ed25519", None, "");
    let host_key = keygen(world.dir.path(), "role-check-host", "ed25519", None, "");
    let sign = |extra: &[&str]| {
        let mut command = world.command("sshca");
        command.env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).args([
            "sign",
            "-e",
            environment,
            "-r",
            "role check",
            "--function",
            "sign_key",
        ]);
        command.args(extra).output().unwrap()
    };
    let (key_file, host_file) = (pub_path(&key), pub_path(&host_key));
    for (extra, ok) in [
        (vec!["-u", "jane", "-p", key_file.to_str().unwrap()], true),
        (vec!["-u", "jane"], true),
        (vec!["--host", "-u", "web1.example.com", "-n", "web1.example.com", "-p", host_file.to_str().unwrap()], true),
        (vec!["-u", "jane", "--principal", "root"], false),
        // no key given and none cached: a missing object must answer 404, not 403
        (vec!["-u", "nobody-cached"], false),
    ] {
        let output = sign(&extra);
        assert_eq!(output.status.success(), ok, "sign {extra:?}: {}", stderr(&output));
    }
    let ssh_dir = world.path("role-check-ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let mut request = world.command("get_key");
    alice.apply(&mut request).env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
    request.args([
        "request",
        "-e",
        environment,
        "--create-key",
        "--no-agent",
        "--ssh-dir",
        ssh_dir.to_str().unwrap(),
        "--audience",
        &default_audience(world, environment),
    ]);
    let requested = request.output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&requested.stdout), stderr(&requested));
    assert!(requested.status.success() && said.contains(&format!("alice-{environment}")), "the self-service request: {said}");
    drop(lambda);

    let recorded: Vec<_> = s3.recorded().into_iter().chain(kms.recorded()).collect();
    let calls: Vec<iam::Call> = recorded.iter().flat_map(|r| iam::calls_of(r, "us-east-1", "000000000000")).collect();
    let actions: std::collections::BTreeSet<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    for needed in
        ["kms:Sign", "kms:GetPublicKey", "kms:DescribeKey", "kms:ListResourceTags", "s3:PutObject", "s3:GetObject", "s3:ListBucket"]
    {
        assert!(actions.contains(needed), "no {needed} among the recorded calls: {actions:?}");
    }
    let mut resources = Vec::new();
    for output in ["UserCaKeyId", "HostCaKeyId"] {
        let arn = aws_cli(world, &["kms", "describe-key", "--key-id", &outputs[output]])["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
        let answer = aws_cli(world, &["kms", "get-key-policy", "--key-id", &arn, "--policy-name", "default"]);
        resources.push((arn, serde_json::from_str(answer["Policy"].as_str().unwrap()).unwrap()));
    }
    for bucket in [world.bucket.as_str(), audit_bucket] {
        let answer = aws_cli(world, &["s3api", "get-bucket-policy", "--bucket", bucket]);
        resources.push((format!("arn:aws:s3:::{bucket}"), serde_json::from_str(answer["Policy"].as_str().unwrap()).unwrap()));
    }
    let mut authority = iam::Authority {
        principal: role_arn.clone(),
        account: "000000000000".into(),
        identity: role_policies(world, &role_name),
        resources,
        context: std::collections::BTreeMap::from([
            ("aws:PrincipalArn".to_owned(), role_arn.clone()),
            ("lambda:SourceFunctionArn".to_owned(), format!("arn:aws:lambda:us-east-1:000000000000:function:sshca-sign-key-{environment}")),
        ]),
    };
    let refused = |authority: &iam::Authority| -> Vec<String> { calls.iter().filter_map(|call| authority.judge(call).err()).collect() };
    assert_eq!(refused(&authority), Vec::<String>::new(), "calls the function's role may not make");

    // approvals are the function's to record: an admin allowed every S3 action still cannot plant a verdict
    let verdict = iam::Call {
        action: "s3:PutObject".into(),
        resource: format!("arn:aws:s3:::{audit_bucket}/audit/{environment}/requests/0f8fad5b-d9cb-469f-a165-70867728950e/verdicts/x.json"),
        context: std::collections::BTreeMap::from([("s3:if-none-match".to_owned(), "*".to_owned())]),
    };
    assert_eq!(authority.judge(&verdict), Ok(()), "the function records verdicts");
    let admin_arn = "arn:aws:iam::000000000000:role/sshca-admin".to_owned();
    let admin = iam::Authority {
        principal: admin_arn.clone(),
        account: "000000000000".into(),
        identity: vec![serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})],
        resources: authority.resources.clone(),
        context: std::collections::BTreeMap::from([("aws:PrincipalArn".to_owned(), admin_arn)]),
    };
    let planted = admin.judge(&verdict).unwrap_err();
    assert!(planted.ends_with("explicitly denied"), "{planted}");

    // least privilege the other way: a grant no call used is named in the README, with the path that needs it
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let log_group = format!("arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/sshca-sign-key-{environment}:*");
    let unexplained: Vec<String> = iam::unused_grants(&authority.identity, &calls)
        .into_iter()
        .map(|grant| {
            grant
                .replace(&format!("arn:aws:s3:::{}", world.bucket), "StateBucket")
                .replace(&format!("arn:aws:s3:::{audit_bucket}"), "AuditBucket")
                .replace(&log_group, "LogGroup")
                .replace("arn:aws:iam::000000000000:user/*", "IamUsers")
                .replace("arn:aws:iam::000000000000:instance-profile/*", "InstanceProfiles")
                .replace("arn:aws:iam::000000000000:role/aws-reserved/sso.amazonaws.com/*", "IdentityCenterRoles")
                .replace(&format!("arn:aws:iam::*:role/sshca-lookup-{environment}"), "MemberLookupRoles")
                .replace(&outputs["AccessTopicArn"], "AccessTopic")
        })
        .filter(|grant| !readme.contains(&format!("`{grant}`")))
        .collect();
    assert!(unexplained.is_empty(), "the role grants what no tested path uses and the README does not explain: {unexplained:?}");

    // the check sees what is missing: without DescribeKey, every key load fails
    let without = authority
        .identity
        .iter()
        .map(|document| serde_json::from_str(&document.to_string().replace("\"kms:DescribeKey\",", "")).unwrap())
        .collect();
    authority.identity = without;
    let failures = refused(&authority);
    assert!(failures.iter().any(|f| f.starts_with("kms:DescribeKey on arn:aws:kms:") && f.ends_with("not allowed")), "{failures:?}");
    // and the role's credentials, taken out of the function, sign nothing
    authority.identity = role_policies(world, &role_name);
    authority.context.remove("lambda:SourceFunctionArn");
    let failures = refused(&authority);
    assert!(failures.iter().any(|f| f.starts_with("kms:Sign on") && f.ends_with("explicitly denied")), "{failures:?}");
}

on_both_s3_servers!(function_signs_through_invoke_api);
