//! Identity: every request proves who sends it (a signed STS GetCallerIdentity), and the
//! environment's access rules decide what each identity may get.
//!
//! The identities are real LocalStack IAM users and assumed-role sessions, and the function asks
//! LocalStack's STS who signed each proof. LocalStack does not check SigV4 signatures, so what
//! these tests show is sshca's own checks: the binding to the request, the audience, the age, the
//! access rules, and that nothing but the proven ARN names the caller.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use sshca_tests::identities::Identity;
use sshca_tests::*;

const ENV: &str = "staging";

/// The world of one test: an environment whose rules make LocalStack's root an admin, the IAM
/// user `alice-<id>` a user, and sessions of the role `hosts-<id>` hosts named after their session.
struct Org {
    world: World,
    id: String,
    alice: Identity,
    bob: Identity,
    host: Identity,
    user_ca: String,
}

impl Org {
    fn new(server: S3Server) -> Self {
        let world = World::new(server);
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        // the roles exist before the rules naming them are written: init binds rules to roles
        let host = Identity::assumed_role(&format!("hosts-{id}"), &format!("i-{id}"));
        let rules = json!([
            {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
            {"match": format!("arn:aws:iam::000000000000:user/alice-{id}"), "grant": "user",
             "principals": ["{user}", "deploy"], "max_ttl": 8 * 3600},
            {"match": format!("arn:aws:sts::000000000000:assumed-role/hosts-{id}/*"), "grant": "host",
             "session_name_set_by_aws": true, "principals": ["{session}.hosts.example.com"]},
        ]);
        let rules_file = world.path("rules.json");
        std::fs::write(&rules_file, rules.to_string()).unwrap();
        let user_ca = world.init(
            ENV,
            &[
                "--principals",
                "deploy",
                "--allowed-principals",
                "deploy,alice-*",
                "--allowed-host-principals",
                "*.hosts.example.com,127.0.0.1",
                "--rules",
                rules_file.to_str().unwrap(),
            ],
        );
        Org { alice: Identity::iam_user(&format!("alice-{id}")), bob: Identity::iam_user(&format!("bob-{id}")), host, world, id, user_ca }
    }

    fn alice_name(&self) -> String {
        format!("alice-{}", self.id)
    }

    fn host_name(&self) -> String {
        format!("i-{}.hosts.example.com", self.id)
    }

    fn audience(&self) -> String {
        default_audience(&self.world, ENV)
    }

    /// `binary ARGS…` as `who`, invoking the function at `lambda` (the Invoke API).
    fn run(&self, who: &Identity, lambda: &str, binary: &str, args: &[&str]) -> Output {
        let mut command = self.world.command(binary);
        who.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", lambda).env("AWS_EC2_METADATA_DISABLED", "true");
        command.args(args).output().unwrap()
    }

    fn get_key_request(&self, who: &Identity, lambda: &str, ssh_dir: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["request", "-e", ENV, "--create-key", "--no-agent", "--audience"];
        let audience = self.audience();
        args.push(&audience);
        args.extend(["--ssh-dir", ssh_dir.to_str().unwrap()]);
        args.extend_from_slice(extra);
        self.run(who, lambda, "get_key", &args)
    }

    fn ssh_dir(&self, name: &str) -> PathBuf {
        let dir = self.world.path(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `get_key request` as `who` through the function at `lambda`, into a new ssh directory `name`,
/// with `env` on top of the world's.
fn request_as(world: &World, who: &Identity, lambda: &LambdaEmulator, name: &str, env: &[(&str, String)]) -> Output {
    let dir = world.path(name);
    std::fs::create_dir(&dir).unwrap();
    let mut command = world.command("get_key");
    who.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
    command.envs(env.iter().map(|(name, value)| (*name, value.as_str())));
    let audience = default_audience(world, ENV);
    command.args(["request", "-e", ENV, "--create-key", "--no-agent", "--audience", &audience, "--ssh-dir", dir.to_str().unwrap()]);
    command.output().unwrap()
}

fn refused(output: &Output, expected: &str, what: &str) {
    assert!(!output.status.success(), "{what}: accepted");
    let text = stderr(output);
    assert!(text.contains(expected), "{what}: expected {expected:?} in {text}");
    assert!(!text.contains("panicked"), "{what}: {text}");
    assert_eq!(text.trim().lines().count(), 1, "{what}: one line, not a dump: {text}");
}

fn audit_records(world: &World) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = world.s3().await;
        let mut records = Vec::new();
        for key in world.objects().await.iter().filter(|k| k.ends_with("-issued.json")) {
            let object = s3.get_object().bucket(&world.bucket).key(key).send().await.unwrap();
            records.push(serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap());
        }
        records
    })
}

fn record_of(world: &World, serial: u64) -> Value {
    audit_records(world).into_iter().find(|r| r["serial"] == serial).unwrap_or_else(|| panic!("no issued record of serial {serial}"))
}

/// The lifetime `ssh-keygen -L` reads from a certificate, in seconds.
fn lifetime(certificate: &Path) -> u64 {
    let parsed = ssh_key::Certificate::from_openssh(std::fs::read_to_string(certificate).unwrap().trim()).unwrap();
    assert!(ssh_keygen_list(certificate).contains("Valid: from"), "OpenSSH reads the validity");
    parsed.valid_before() - parsed.valid_after()
}

/// A user helps herself with her own identity, through the function: `get_key request`, a real
/// sshd login, `get_key ensure` without a request; her refusals, an unmapped identity's, a
/// host's renewal and refusals, and the admin path, each recorded under the proven ARN.
fn self_service_through_the_function(server: S3Server) {
    let org = Org::new(server);
    let lambda = LambdaEmulator::start(&org.world.env());
    let endpoint = lambda.endpoint();
    let alice_name = org.alice_name();
    let sshd = Sshd::start(&org.user_ca, &[&alice_name], "");

    let dir = org.ssh_dir("alice-ssh");
    let output = org.get_key_request(&org.alice, &endpoint, &dir, &[]);
    assert!(output.status.success(), "get_key request: {}", stderr(&output));
    let key = dir.join("id_ed25519_staging");
    let listing = ssh_keygen_list(&cert_path(&key));
    assert!(listing.contains(&format!("Key ID: \"{alice_name}#")), "{listing}");
    let principals = listing.split("Principals:").nth(1).unwrap().split("Critical").next().unwrap();
    let principals: Vec<&str> = principals.split_whitespace().collect();
    assert_eq!(principals, [alice_name.as_str(), "deploy"], "{listing}");
    assert!(sshd.login_with(&key), "alice's certificate was refused: {}", sshd.log());
    let issued = audit_records(&org.world);
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["caller_identity"], org.alice.arn.as_str(), "{}", issued[0]);
    assert_eq!((issued[0]["proven"].as_bool(), issued[0]["access"].as_str()), (Some(true), Some("user")));

    // ensure: with a good certificate it asks nobody (the function and STS are unreachable for it)
    let certificate = std::fs::read(cert_path(&key)).unwrap();
    let mut ensure = org.world.command("get_key");
    org.alice.apply(&mut ensure).env("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9").env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9");
    let audience = org.audience();
    let output = ensure
        .args(["ensure", "-e", ENV, "-q", "--no-agent", "--audience", &audience, "--ssh-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "ensure with a good certificate: {}", stderr(&output));
    assert_eq!(std::fs::read(cert_path(&key)).unwrap(), certificate, "ensure replaced a good certificate");
    // …and asks again once the certificate has less left than --min-validity
    let output = org.run(
        &org.alice,
        &endpoint,
        "get_key",
        &["ensure", "-e", ENV, "-q", "--no-agent", "--min-validity", "9h", "--audience", &audience, "--ssh-dir", dir.to_str().unwrap()],
    );
    assert!(output.status.success(), "ensure renewing: {}", stderr(&output));
    assert_ne!(std::fs::read(cert_path(&key)).unwrap(), certificate, "ensure did not renew");
    assert_eq!(audit_records(&org.world).len(), 2);

    // what alice may not get, through the function: nothing is written
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = runtime.block_on(org.world.objects());
    let public_key = pub_path(&key);
    let public_key = public_key.to_str().unwrap();
    let sign = |who: &Identity, extra: &[&str]| {
        let mut args = vec!["sign", "-e", ENV, "-r", "identity test", "--function", "sign_key", "--audience", &audience, "-p", public_key];
        args.extend_from_slice(extra);
        org.run(who, &endpoint, "sshca", &args)
    };
    refused(&sign(&org.alice, &["-u", &format!("bob-{}", org.id)]), "may sign only for itself", "alice for bob");
    refused(
        &org.get_key_request(&org.alice, &endpoint, &dir, &["--principal", "root"]),
        "principal \"root\" is not allowed",
        "a principal outside her template",
    );
    refused(&sign(&org.alice, &["--host", "-n", &org.host_name()]), "is a user and may not get host certificates", "alice for a host");
    refused(&org.get_key_request(&org.alice, &endpoint, &dir, &["-t", "9h"]), "longer than the 8h allowed", "a TTL above her rule");
    refused(&sign(&org.alice, &["-s", "+365d", "-t", "+366d"]), "may not start in the future", "a start next year");
    let bob_dir = org.ssh_dir("bob-ssh");
    let bob = org.get_key_request(&org.bob, &endpoint, &bob_dir, &[]);
    refused(&bob, &format!("AccessDenied: access denied: {} matches no access rule", org.bob.arn), "an unmapped identity");
    assert_eq!(runtime.block_on(org.world.objects()), before, "a refused request wrote to the bucket");

    // a host renews its own certificate: host lifetime by default, its own names only
    let host_key = keygen(org.world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");
    let renew = |names: &str, extra: &[&str]| {
        let mut args =
            vec!["renew-host", "-e", ENV, "-n", names, "-k", host_key.to_str().unwrap(), "--function", "sign_key", "--audience", &audience];
        args.extend_from_slice(extra);
        org.run(&org.host, &endpoint, "sshca", &args)
    };
    let output = renew(&org.host_name(), &[]);
    assert!(output.status.success(), "renew-host: {}", stderr(&output));
    assert_eq!(lifetime(&cert_path(&host_key)), 30 * 86_400 + 30, "the host default TTL (30 days, plus the 30 s backdate)");
    let host_public = pub_path(&host_key);
    refused(
        &org.run(
            &org.host,
            &endpoint,
            "sshca",
            &["sign", "-e", ENV, "-r", "x", "--function", "sign_key", "--audience", &audience, "-p", host_public.to_str().unwrap()],
        ),
        "is a host and may get only host certificates",
        "a host asking for a user certificate",
    );
    refused(
        &renew(&format!("i-other{}.hosts.example.com", org.id), &["--force"]),
        "is not allowed",
        "a host asking for another host's name",
    );

    // the admin path records the admin's proven ARN, whatever --requested-by says
    let output = sign(&Identity::test_root(), &["-u", "deploy-bot", "--requested-by", "the CEO", "--json"]);
    assert!(output.status.success(), "admin sign: {}", stderr(&output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    let record = record_of(&org.world, response["serial"].as_u64().unwrap());
    assert_eq!(record["caller_identity"], "arn:aws:iam::000000000000:root", "{record}");
    assert_eq!((record["requested_by"].as_str(), record["access"].as_str()), (Some("the CEO"), Some("admin")));
    // `sshca audit` names the proven caller, and shows requested_by as the label it is
    let audit = org.world.sshca_ok(&["audit", ENV]);
    assert!(audit.contains(&format!("caller {} (user)", org.alice.arn)), "{audit}");
    assert!(audit.contains(&format!("caller {} (host)", org.host.arn)), "{audit}");
    assert!(audit.contains("caller arn:aws:iam::000000000000:root (admin)  label \"the CEO\""), "{audit}");
}

/// Proofs that must not work, sent straight to the function's Invoke API: each is refused with
/// AccessDenied, and nothing is written.
fn forged_proofs_are_refused(server: S3Server) {
    let org = Org::new(server);
    let lambda = LambdaEmulator::start(&org.world.env());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(lambda.client());
    let key = keygen(org.world.dir.path(), "id", "ed25519", None, "");
    let request = json!({
        "environment": ENV, "username": "jane", "reason": "forged proofs",
        "public_key": std::fs::read_to_string(pub_path(&key)).unwrap(),
    });
    let proven =
        || -> Value { serde_json::from_slice(&runtime.block_on(with_proof(request.to_string().as_bytes(), &org.audience()))).unwrap() };
    let without_header = |mut proven: Value, header: &str| {
        let headers = proven["identity"]["headers"].as_object_mut().unwrap();
        headers.remove(header);
        let authorization = headers["authorization"].as_str().unwrap().replace(&format!(";{header}"), "");
        headers.insert("authorization".into(), authorization.into());
        proven
    };
    let mut bound_elsewhere = proven();
    bound_elsewhere["ttl"] = json!(600);
    let mut stale = proven();
    let ten_minutes_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    stale["identity"]["headers"]["x-amz-date"] =
        json!(ten_minutes_ago.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap());
    let other_audience: Value =
        serde_json::from_slice(&runtime.block_on(with_proof(request.to_string().as_bytes(), "sshca:another-deployment:staging"))).unwrap();
    let cases = [
        ("a proof bound to another request", bound_elsewhere, "bound to another request"),
        ("a stale proof", stale, "s ago; proofs last 300s"),
        ("a proof without the audience header", without_header(proven(), "x-sshca-audience"), "x-sshca-audience is not signed"),
        ("a proof for another audience", other_audience, "made for audience \"sshca:another-deployment:staging\""),
        ("no proof", request.clone(), "requires a proof of identity"),
    ];
    let before = runtime.block_on(org.world.objects());
    for (what, payload, expected) in cases {
        let answer = runtime
            .block_on(client.invoke().function_name("sign_key").payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string())).send());
        // cargo-lambda's emulator answers a function error with HTTP 500 and the error as body
        let body = match answer {
            Ok(output) => output.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default(),
            Err(err) => err.raw_response().and_then(|r| r.body().bytes()).unwrap_or_default().to_vec(),
        };
        let error: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{what}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(error["errorType"], "AccessDenied", "{what}: {error}");
        assert!(error["errorMessage"].as_str().unwrap().contains(expected), "{what}: expected {expected:?} in {error}");
    }
    assert_eq!(runtime.block_on(org.world.objects()), before, "a refused proof wrote to the bucket");
    // the unaltered proof works: the refusals above are the tampering's
    let answer = runtime
        .block_on(client.invoke().function_name("sign_key").payload(aws_sdk_lambda::primitives::Blob::new(proven().to_string())).send());
    let response: Value = serde_json::from_slice(answer.expect("the genuine proof is accepted").payload().unwrap().as_ref()).unwrap();
    assert_eq!(response["caller"], "arn:aws:iam::000000000000:root", "{response}");
}

/// A rule for an IAM Identity Center permission set names its roles by a pattern
/// (`AWSReservedSSO_SshUsers_????????????????`), and an assumed-role ARN shows no path: a role
/// anyone with `iam:CreateRole` names that way at `/`, before or after the rule is written,
/// assumed with a session name of their choice, gets nothing; nor does a role deleted and
/// re-created under the genuine name. The genuine role's sessions get their certificates.
fn a_role_named_like_an_identity_center_role_gets_nothing(server: S3Server) {
    let world = World::new(server);
    let suffix = |n: u8| format!("{:016x}", u64::from_be_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) ^ u64::from(n));
    let set = format!("Ssh{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let genuine = format!("AWSReservedSSO_{set}_{}", suffix(1));
    let genuine_arn = Identity::create_role(&genuine, "/aws-reserved/sso.amazonaws.com/");
    let early_squatter = Identity::create_role(&format!("AWSReservedSSO_{set}_{}", suffix(2)), "/");
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": format!("arn:aws:sts::000000000000:assumed-role/AWSReservedSSO_{set}_????????????????/*"), "grant": "user",
         "session_name_set_by_aws": true, "principals": ["{user}"]},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    world.init(ENV, &["--principals", "deploy", "--allowed-principals", "deploy,alice,root", "--rules", rules_file.to_str().unwrap()]);
    let late_squatter = Identity::create_role(&format!("AWSReservedSSO_{set}_{}", suffix(3)), "/");
    let lambda = LambdaEmulator::start(&world.env());
    let request = |who: &Identity, name: &str| request_as(&world, who, &lambda, name, &[]);
    let granted = request(&Identity::session_of(&genuine_arn, "alice"), "alice");
    assert!(granted.status.success(), "the genuine role's session: {}", stderr(&granted));
    let before = audit_records(&world).len();
    for (squatter, name) in [(&early_squatter, "early"), (&late_squatter, "late")] {
        let output = request(&Identity::session_of(squatter, "root"), name);
        refused(&output, "matches no access rule", &format!("the {name} squatter"));
    }
    Identity::delete_role(&genuine);
    let recreated = Identity::create_role(&genuine, "/aws-reserved/sso.amazonaws.com/");
    refused(&request(&Identity::session_of(&recreated, "alice"), "recreated"), "matches no access rule", "a re-created role");
    assert_eq!(audit_records(&world).len(), before, "a refused role got a record");
    let policy: Value = serde_json::from_str(&world.sshca_ok(&["show-policy", ENV, "--json"])).unwrap();
    assert_eq!(policy["access"]["rules"][1]["role_ids"].as_array().map(Vec::len), Some(1), "bound to the genuine role only: {policy}");
}

/// Proofs judged by an STS that checks SigV4 signatures (moto's, with its own IAM users; the
/// function asks it): a genuine proof passes and names its caller, one signed with a wrong
/// secret or an unknown key is refused, and a refused proof writes nothing. LocalStack holds
/// the bucket and keys (S3 is not what this is about).
#[test]
fn proofs_are_judged_by_an_sts_that_checks_signatures() {
    let moto = sshca_tests::identities::Moto::start();
    let world = World::new(S3Server::LocalStack);
    let alice = moto.iam_user("alice");
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": alice.arn, "grant": "user", "principals": ["{user}"]},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    world.init(ENV, &["--principals", "deploy", "--allowed-principals", "deploy,alice", "--rules", rules_file.to_str().unwrap()]);
    // the function runs with credentials moto knows, so its own STS calls are signed for moto too
    let mut function_env: Vec<(&'static str, String)> =
        world.env().into_iter().filter(|(name, _)| !name.starts_with("AWS_SECRET") && !name.starts_with("AWS_ACCESS")).collect();
    function_env.extend(moto.admin.credentials());
    function_env.retain(|(name, _)| *name != "AWS_ENDPOINT_URL_STS");
    function_env.push(("AWS_ENDPOINT_URL_STS", moto.endpoint()));
    let lambda = LambdaEmulator::start(&function_env);
    // proofs are signed for the STS the function asks
    let sts = [("AWS_ENDPOINT_URL_STS", moto.endpoint())];
    let request = |who: &Identity, name: &str| request_as(&world, who, &lambda, name, &sts);
    let genuine = request(&alice, "genuine");
    assert!(genuine.status.success(), "a genuine proof: {}\n{}", stderr(&genuine), lambda.logs());
    let records = audit_records(&world);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["caller_identity"], alice.arn.as_str(), "{}", records[0]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = runtime.block_on(world.objects());
    refused(&request(&alice.with_wrong_secret(), "forged"), "SignatureDoesNotMatch", "a proof signed with a wrong secret");
    let stranger = sshca_tests::identities::Identity::iam_user(&format!("stranger-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    refused(&request(&stranger, "unknown"), "InvalidClientTokenId", "a proof by a key this STS does not know");
    assert_eq!(runtime.block_on(world.objects()), before, "a refused proof wrote to the bucket");
}

/// The same rules hold for `sshca sign --local` and `renew-host --local`, which run the issuing
/// logic in the caller's process with the caller's credentials. LocalStack only: SeaweedFS
/// accepts only the test servers' own S3 credentials, and a user with only invoke rights has no
/// bucket access anyway.
#[test]
fn local_mode_applies_the_same_rules() {
    let org = Org::new(S3Server::LocalStack);
    let key = keygen(org.world.dir.path(), "alice", "ed25519", None, "");
    let public_key = pub_path(&key);
    let sign = |who: &Identity, extra: &[&str]| {
        let mut args = vec!["sign", "--local", "-e", ENV, "-r", "local identity test", "-p", public_key.to_str().unwrap()];
        args.extend_from_slice(extra);
        org.run(who, "http://127.0.0.1:9", "sshca", &args)
    };
    let output = sign(&org.alice, &["--json"]);
    assert!(output.status.success(), "alice --local: {}", stderr(&output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["key_id"], format!("{}#{}", org.alice_name(), response["serial"]));
    assert_eq!(response["caller"], org.alice.arn.as_str());
    let record = record_of(&org.world, response["serial"].as_u64().unwrap());
    assert_eq!(record["caller_identity"], org.alice.arn.as_str(), "{record}");
    refused(&sign(&org.alice, &["-u", "jane"]), "may sign only for itself", "alice for jane, --local");
    refused(&sign(&org.host, &[]), "may get only host certificates", "a host for a user certificate, --local");
    refused(&sign(&org.bob, &[]), "matches no access rule", "bob, --local");
}

/// `sshca config --client` gives users the ssh config block that makes plain `ssh` get a
/// certificate with their own identity on connect (`Match exec` runs `get_key ensure`), and
/// known_hosts lines scoped to the environment's host names.
#[test]
fn the_client_block_gets_a_certificate_when_ssh_connects() {
    let org = Org::new(S3Server::LocalStack);
    let lambda = LambdaEmulator::start(&org.world.env());
    let sshd = Sshd::start(&org.user_ca, &[&org.alice_name()], "");
    let dir = org.ssh_dir("alice-ssh");
    let key = dir.join("id_ed25519_staging");
    let block = org.world.sshca_ok(&["config", ENV, "--client", "--key", key.to_str().unwrap()]);
    let (ssh_config, known_hosts) = block.split_once("#\n# 2.").expect("two parts");
    assert!(ssh_config.contains("Match host *.hosts.example.com,127.0.0.1 exec \"get_key ensure -e staging"), "{block}");
    assert!(known_hosts.lines().any(|l| l.starts_with("@cert-authority *.hosts.example.com,127.0.0.1 ecdsa-sha2-nistp256 ")), "{block}");
    assert!(!known_hosts.contains("@cert-authority * "), "{block}");
    let config_file = org.world.path("ssh_config");
    std::fs::write(&config_file, ssh_config).unwrap();
    let path = format!("{}:{}", bin("get_key").parent().unwrap().display(), std::env::var("PATH").unwrap());
    let mut ssh = Command::new("ssh");
    org.alice.apply(&mut ssh).envs(org.world.env().into_iter().filter(|(k, _)| k.starts_with("AWS_ENDPOINT") || *k == "AWS_REGION"));
    let output = ssh
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("SSH_AUTH_SOCK")
        .arg("-F")
        .arg(&config_file)
        .args(["-p", &sshd.port.to_string(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"])
        .arg(format!("{}@127.0.0.1", current_user()))
        .arg("echo sshca-login-ok")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("sshca-login-ok"), "plain ssh: {} {}", stderr(&output), sshd.log());
    assert!(ssh_keygen_list(&cert_path(&key)).contains(&org.alice_name()));
}

/// The client block's `RevokedHostKeys`: the KRL comes with each certificate `get_key request`
/// gets, and a host whose certificate was revoked is refused by plain ssh like an unknown one.
#[test]
fn a_client_refuses_a_revoked_host_certificate() {
    let org = Org::new(S3Server::LocalStack);
    let lambda = LambdaEmulator::start(&org.world.env());
    let host_key = keygen(org.world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");
    org.world.sshca_ok(&["renew-host", "--local", "-e", ENV, "-n", "127.0.0.1", "-k", host_key.to_str().unwrap()]);
    let sshd = Sshd::start_with_host_certificate(&org.user_ca, &[&org.alice_name()], &host_key);
    let dir = org.ssh_dir("alice-ssh");
    let key = dir.join("id_ed25519_staging");
    let block = org.world.sshca_ok(&["config", ENV, "--client", "--key", key.to_str().unwrap()]);
    let (ssh_config, known_hosts) = block.split_once("#\n# 2.").expect("two parts");
    assert!(ssh_config.contains(&format!("RevokedHostKeys {}", dir.join("sshca_staging_revoked_hosts.krl").display())), "{block}");
    std::fs::write(dir.join("config"), ssh_config).unwrap();
    std::fs::write(dir.join("known_hosts"), known_hosts).unwrap();
    let path = format!("{}:{}", bin("get_key").parent().unwrap().display(), std::env::var("PATH").unwrap());
    let ssh = || {
        let mut ssh = Command::new("ssh");
        org.alice.apply(&mut ssh).envs(org.world.env().into_iter().filter(|(k, _)| k.starts_with("AWS_ENDPOINT") || *k == "AWS_REGION"));
        ssh.env("PATH", &path)
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("SSH_AUTH_SOCK")
            .arg("-F")
            .arg(dir.join("config"))
            .args(["-p", &sshd.port.to_string(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=127.0.0.1"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", dir.join("known_hosts").display()))
            .args(["-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"])
            .arg(format!("{}@127.0.0.1", current_user()))
            .arg("echo sshca-login-ok")
            .output()
            .unwrap()
    };
    let first = ssh();
    assert!(String::from_utf8_lossy(&first.stdout).contains("sshca-login-ok"), "before revocation: {}", stderr(&first));

    let serial = ssh_keygen_list(&cert_path(&host_key)).split("Serial: ").nth(1).unwrap().lines().next().unwrap().to_owned();
    org.world.sshca_ok(&["revoke", ENV, "--serial", &serial, "-r", "host compromised"]);
    let refreshed = org.get_key_request(&org.alice, &lambda.endpoint(), &dir, &["--force"]);
    assert!(
        String::from_utf8_lossy(&refreshed.stdout).contains("(refreshed)"),
        "{}{}",
        String::from_utf8_lossy(&refreshed.stdout),
        stderr(&refreshed)
    );
    let after = ssh();
    assert!(!String::from_utf8_lossy(&after.stdout).contains("sshca-login-ok"), "a revoked host certificate was accepted");
    assert!(stderr(&after).to_ascii_lowercase().contains("revoked"), "{}", stderr(&after));

    // a bucket writer plants an empty KRL at the KRL's key: the next refresh un-revokes nothing here
    let empty = sshca_core::krl::encode(&sshca_core::krl::Revoked::default(), 99, 2_000_000_000, "planted");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = org.world.s3().await;
        let planted = s3.put_object().bucket(&org.world.bucket).key(format!("krl/{ENV}.krl")).body(empty.into()).send().await;
        planted.unwrap();
    });
    let refreshed = org.get_key_request(&org.alice, &lambda.endpoint(), &dir, &["--force"]);
    let said = String::from_utf8_lossy(&refreshed.stdout);
    assert!(said.contains("keeping the revocations the published KRL dropped"), "{said}{}", stderr(&refreshed));
    let planted = ssh();
    assert!(!String::from_utf8_lossy(&planted.stdout).contains("sshca-login-ok"), "a planted KRL un-revoked the host");
    assert!(stderr(&planted).to_ascii_lowercase().contains("revoked"), "{}", stderr(&planted));
}

/// Where users stumble: no credentials, a profile that does not exist, no region. `sshca` and
/// `get_key` each say it in one line that names the fix (no server is needed to get there).
#[test]
fn credential_problems_get_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "id", "ed25519", None, "");
    let public_key = pub_path(&key);
    let run = |binary: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(bin(binary));
        command.env_clear().env("PATH", std::env::var("PATH").unwrap()).env("HOME", dir.path());
        command.envs([
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        command.envs(env.iter().copied());
        match binary {
            "sshca" => command.args(["sign", "-e", ENV, "-r", "x", "--audience", "a", "-p", public_key.to_str().unwrap()]),
            _ => command.args(["request", "-e", ENV, "--audience", "a", "--no-agent", "--key", key.to_str().unwrap()]),
        };
        command.output().unwrap()
    };
    for binary in ["sshca", "get_key"] {
        let region = [("AWS_REGION", "us-east-1")];
        refused(&run(binary, &region), "no AWS credentials found: run `aws sso login", "no credentials");
        refused(
            &run(binary, &[("AWS_REGION", "us-east-1"), ("AWS_PROFILE", "nope")]),
            "the profile \"nope\", which /dev/null does not define",
            "a missing profile",
        );
        refused(
            &run(binary, &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")]),
            "no AWS region is set: set AWS_REGION",
            "no region",
        );
    }
}

on_both_s3_servers!(self_service_through_the_function, forged_proofs_are_refused, a_role_named_like_an_identity_center_role_gets_nothing);
