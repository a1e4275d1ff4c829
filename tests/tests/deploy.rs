//! Deploy and invoke: the CloudFormation template deploys on LocalStack, and the real `sign_key`
//! binary, behind cargo-lambda's Invoke API emulator, signs for `sshca sign --function`.

use std::process::Command;

use sshca_tests::*;

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
    assert!(String::from_utf8_lossy(&output.stdout).contains("PolicyViolation") || stderr(&output).contains("PolicyViolation"), "{}", stderr(&output));

    // a direct invoke of a Function URL event whose requestContext claims alice: the audit record
    // names the proven caller (the test credentials are LocalStack's account root), not the
    // forged one, and keeps the payload's requested_by as the label it is
    let alice = "arn:aws:iam::000000000000:user/alice";
    let body = proven(serde_json::json!({"environment": environment, "username": "jane", "reason": "function url", "requested_by": "mallory"}).to_string());
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
        "init", &environment, "--user-ca-key", &outputs["UserCaKeyId"], "--host-ca-key", &outputs["HostCaKeyId"],
        "--principals", "deploy",
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

    // the stack's access rules for users (the SSO permission set) and hosts (its instance role)
    let rules = world.path("rules.json");
    std::fs::write(&rules, &outputs["AccessRules"]).unwrap();
    world.sshca_ok(&["init", &environment, "--rules", rules.to_str().unwrap()]);
    let shown = world.sshca_ok(&["show-policy", &environment]);
    assert!(shown.contains("1. arn:aws:iam::000000000000:root  →  admin"), "whoever runs init stays admin: {shown}");
    assert!(shown.contains("assumed-role/AWSReservedSSO_SshUsers_????????????????/*  →  user; named by its session name (set by AWS)"), "{shown}");
    assert!(shown.contains("→  host; host certificates only; principals [\"{session}.hosts.example.com\"]"), "{shown}");
    invoke_policies_grant_only_the_function(&world, &outputs, &environment);
}

/// The CA keys' policies, as KMS keeps them: admins administer without signing, the function
/// signs, and an explicit deny keeps everyone else (whatever their identity policies say) from
/// signing certificates offline.
fn ca_keys_sign_only_for_the_function(world: &World, outputs: &std::collections::HashMap<String, String>, stack: &str) {
    let resource = aws_cli(world, &["cloudformation", "describe-stack-resource", "--stack-name", stack, "--logical-resource-id", "SignKeyRole"]);
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
        let deny = statements.iter().find(|s| s["Effect"] == "Deny" && actions(s) == ["kms:Sign"]).unwrap_or_else(|| panic!("{output}: no Sign deny: {policy}"));
        assert_eq!(deny["Principal"], "*", "{deny}");
        let exempt: Vec<&str> = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
        assert!(exempt.iter().all(|arn| *arn == role_arn), "{output}: the deny exempts only the function role: {deny}");
    }
}

/// The audit bucket's policy: no deletion, and no write that is not a write-once write, for
/// anyone; its Object Lock default is governance mode unless COMPLIANCE is asked for.
fn audit_trail_is_append_only(world: &World, audit_bucket: &str) {
    let answer = aws_cli(world, &["s3api", "get-bucket-policy", "--bucket", audit_bucket]);
    let policy: serde_json::Value = serde_json::from_str(answer["Policy"].as_str().unwrap()).unwrap();
    let text = policy.to_string();
    let denies = |action: &str| policy["Statement"].as_array().unwrap().iter().any(|s| s["Effect"] == "Deny" && s["Principal"] == "*" && s["Action"].to_string().contains(action));
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

on_both_s3_servers!(function_signs_through_invoke_api);
