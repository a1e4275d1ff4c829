//! Bad input gets a clear error naming the problem and the fix, and writes nothing: no serial,
//! no audit record, no certificate.

use serde_json::{json, Value};
use sshca_tests::*;

fn bad_input(server: S3Server) {
    let world = World::new(server);
    world.init("staging", &["--principals", "deploy", "--max-ttl", "8h"]);
    let dir = world.dir.path();
    let good = pub_path(&keygen(dir, "good", "ed25519", None, ""));
    let rsa1024 = pub_path(&keygen(dir, "rsa1024", "rsa", Some(1024), ""));
    let dsa = pub_path(&keygen(dir, "dsa", "dsa", None, ""));
    std::fs::write(world.path("garbage.pub"), "ssh-ed25519 AAAAnotbase64!!\n").unwrap();
    let garbage = world.path("garbage.pub");
    let (good, garbage, dsa, rsa1024) =
        (good.display().to_string(), garbage.display().to_string(), dsa.display().to_string(), rsa1024.display().to_string());
    let long_reason = "x".repeat(257);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
    let soon = soon.format(time::macros::format_description!("[year][month][day][hour][minute][second]")).unwrap();
    let sign_as = |user: &str, key: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["sign", "--local", "-e", "staging", "-u", user, "-r", "testing", "-p", key].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let sign = |extra: &[&str]| sign_as("jane", &good, extra);
    let without_reason: Vec<String> = ["sign", "--local", "-e", "staging", "-u", "jane", "-p", &good].map(String::from).to_vec();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "unknown environment",
            ["sign", "--local", "-e", "nope", "-u", "jane", "-r", "t", "-p", &good].map(String::from).to_vec(),
            "sshca init nope",
        ),
        ("malformed key", sign_as("jane", &garbage, &[]), "not an OpenSSH public key"),
        ("DSA key", sign_as("jane", &dsa, &[]), "DSA keys are insecure"),
        ("RSA-1024 key", sign_as("jane", &rsa1024, &[]), "1024 bits; at least 2048"),
        ("root principal", sign(&["--principal", "root"]), "principal \"root\" is not allowed"),
        ("principal with space", sign(&["--principal", "a b"]), "is not valid"),
        ("principal with control char", sign(&["--principal", "a\u{1}b"]), "is not valid"),
        ("ttl above max", sign(&["-t", "+9h"]), "longer than the 8h allowed"),
        ("ttl in the past", sign(&["-t", "20200101000000"]), "already have expired"),
        ("start after end", sign(&["-s", "+2m", "-t", &soon]), "must be before"),
        ("start next year", sign(&["-s", "+365d", "-t", "+366d"]), "may not start in the future"),
        ("start long ago", sign(&["-s", "-1d", "-t", "+1h"]), "may not start in the past"),
        ("reason missing", without_reason, "a reason is required"),
        (
            "reason too long",
            ["sign", "--local", "-e", "staging", "-u", "jane", "-r", &long_reason, "-p", &good].map(String::from).to_vec(),
            "keep it to 256",
        ),
        ("user with slash", sign_as("a/b", &good, &[]), "is not valid"),
        ("user with dotdot", sign_as("..", &good, &[]), "is not valid"),
        ("user with control char", sign_as("ja\u{7}ne", &good, &[]), "is not valid"),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let before = runtime.block_on(world.objects());
    for (what, args, expected) in &cases {
        let output = world.command("sshca").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: accepted");
        assert!(stderr.contains(expected), "{what}: expected {expected:?} in {stderr:?}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    let after = runtime.block_on(world.objects());
    assert_eq!(before, after, "bad input wrote to the bucket");
    assert!(!after.iter().any(|k| k.starts_with("serial/") || k.starts_with("audit/") || k.starts_with("certs/")), "{after:?}");

    // CA keys that cannot sign, and a bucket that does not exist
    let kms = runtime.block_on(world.kms());
    let symmetric = runtime.block_on(kms.create_key().send()).unwrap().key_metadata().unwrap().key_id().to_owned();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "KMS key missing",
            vec!["init".into(), "broken".into(), "--user-ca-key".into(), "6b7a1b8e-0000-4000-8000-000000000000".into()],
            "not found",
        ),
        ("KMS key not SIGN_VERIFY", vec!["init".into(), "broken".into(), "--user-ca-key".into(), symmetric], "SIGN_VERIFY"),
        (
            "bucket missing",
            vec![
                "--bucket".into(),
                format!("{}-missing", world.bucket),
                "sign".into(),
                "--local".into(),
                "-e".into(),
                "staging".into(),
                "-u".into(),
                "jane".into(),
                "-r".into(),
                "t".into(),
                "-p".into(),
                good.clone(),
            ],
            "does not exist",
        ),
    ];
    for (what, args, expected) in cases {
        let output = world.command("sshca").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: accepted");
        assert!(stderr.contains(expected), "{what}: expected {expected:?} in {stderr:?}");
    }
    let after = runtime.block_on(world.objects());
    assert!(!after.iter().any(|k| k.contains("broken")), "a refused init wrote {after:?}");
}

on_both_s3_servers!(bad_input);

/// One bad request of the corpus: its body, and the refusal it must get.
struct Case {
    what: &'static str,
    body: Vec<u8>,
    error_type: &'static str,
    says: &'static str,
}

fn corpus(world: &World) -> Vec<Case> {
    let dir = world.dir.path();
    let key_line = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap().trim().to_owned();
    let good = key_line(pub_path(&keygen(dir, "corpus", "ed25519", None, "")));
    let dsa = key_line(pub_path(&keygen(dir, "corpus-dsa", "dsa", None, "")));
    let rsa1024 = key_line(pub_path(&keygen(dir, "corpus-rsa", "rsa", Some(1024), "")));
    let private = std::fs::read_to_string(dir.join("corpus")).unwrap();
    let ca = keygen(dir, "corpus-ca", "ed25519", None, "");
    let signed = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "x", "-n", "deploy"])
        .arg(pub_path(&dir.join("corpus")))
        .output()
        .unwrap();
    assert!(signed.status.success());
    let certificate = key_line(dir.join("corpus-cert.pub"));
    let base = json!({"environment": "staging", "username": "jane", "public_key": good, "reason": "testing"});
    let with = |field: &str, value: Value| {
        let mut request = base.clone();
        request[field] = value;
        serde_json::to_vec(&request).unwrap()
    };
    let raw = |text: &str| text.as_bytes().to_vec();
    let (kind, data) = good.split_once(' ').unwrap();
    let data = data.split_whitespace().next().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let case = |what, body, error_type, says| Case { what, body, error_type, says };
    use serde_json::json as j;
    vec![
        case("malformed JSON", raw(r#"{"environment": "staging", "#), "InvalidRequest", "does not fit"),
        case("JSON array", raw("[]"), "InvalidRequest", "does not fit"),
        case("empty body", raw(""), "InvalidRequest", "does not fit"),
        case("JSON null", raw("null"), "InvalidRequest", "does not fit"),
        case("unknown field", with("admin", j!(true)), "InvalidRequest", "unknown field `admin`"),
        case("wrong type", with("username", j!(5)), "InvalidRequest", "invalid type"),
        case("oversized body", with("reason", j!("x".repeat(70_000))), "InvalidRequest", "at most 65536"),
        case("truncated key", with("public_key", j!(format!("{kind} {}", &data[..data.len() / 2]))), "InvalidPublicKey", "not an OpenSSH public key"),
        case("base64 garbage key", with("public_key", j!("ssh-ed25519 AAAA!!!!notbase64")), "InvalidPublicKey", "not an OpenSSH public key"),
        case("unknown key type", with("public_key", j!(format!("ssh-foo {data}"))), "InvalidPublicKey", "not an OpenSSH public key"),
        case("DSA key", with("public_key", j!(dsa)), "InvalidPublicKey", "DSA keys are insecure"),
        case("RSA-1024 key", with("public_key", j!(rsa1024)), "InvalidPublicKey", "at least 2048"),
        case("certificate instead of key", with("public_key", j!(certificate)), "InvalidPublicKey", "this is a certificate"),
        case("private key instead of public", with("public_key", j!(private)), "InvalidPublicKey", "this is a private key"),
        case("key with embedded newline", with("public_key", j!(format!("{good}\n{good}"))), "InvalidPublicKey", "several lines"),
        case("key with NUL", with("public_key", j!(format!("{kind} {data}\u{0}x"))), "InvalidPublicKey", "not an OpenSSH public key"),
        case("empty key", with("public_key", j!("")), "InvalidPublicKey", "not an OpenSSH public key"),
        case("principal with comma", with("principals", j!(["deploy,root"])), "InvalidRequest", "found ','"),
        case("principal with space", with("principals", j!(["deploy root"])), "InvalidRequest", "found ' '"),
        case("principal with NUL", with("principals", j!(["deploy\u{0}"])), "InvalidRequest", "is not valid"),
        case("principal with newline", with("principals", j!(["deploy\nroot"])), "InvalidRequest", "is not valid"),
        case("principal wildcard", with("principals", j!(["*"])), "InvalidRequest", "found '*'"),
        case("unicode look-alike principal", with("principals", j!(["d\u{435}ploy"])), "InvalidRequest", "printable ASCII"),
        case("empty principal", with("principals", j!([""])), "InvalidRequest", "is not valid"),
        case("1,000 principals", with("principals", j!((0..1000).map(|n| format!("p{n}")).collect::<Vec<_>>())), "InvalidRequest", "at most 256"),
        case("root without policy", with("principals", j!(["root"])), "PolicyViolation", "principal \"root\" is not allowed"),
        case("ttl 0", with("ttl", j!(0)), "InvalidRequest", "ttl must be above 0"),
        case("ttl negative", with("ttl", j!(-60)), "InvalidRequest", "does not fit"),
        case("ttl 100 years", with("ttl", j!(100u64 * 365 * 86_400)), "PolicyViolation", "longer than the 8h allowed"),
        case("ttl u64 max", with("ttl", j!(u64::MAX)), "InvalidRequest", "too large"),
        case("ttl beyond u64", raw(&format!(r#"{{"environment":"staging","username":"jane","reason":"r","ttl":18446744073709551616,"public_key":"{good}"}}"#)), "InvalidRequest", "does not fit"),
        case("ttl as string", with("ttl", j!("2h")), "InvalidRequest", "invalid type"),
        case("valid_after after valid_before", raw(&serde_json::to_string(&j!({"environment": "staging", "username": "jane", "public_key": good, "reason": "r", "valid_after": now + 120, "valid_before": now + 60})).unwrap()), "InvalidRequest", "must be before"),
        case("valid_after next year", raw(&serde_json::to_string(&j!({"environment": "staging", "username": "jane", "public_key": good, "reason": "r", "valid_after": now + 365 * 86_400, "ttl": 3600})).unwrap()), "PolicyViolation", "may not start in the future"),
        case("valid_before in the past", with("valid_before", j!(now - 3600)), "InvalidRequest", "already have expired"),
        case("user with slash", with("username", j!("a/b")), "InvalidRequest", "is not valid"),
        case("user dot-dot", with("username", j!("..")), "InvalidRequest", "is not valid"),
        case("user percent-encoded slash", with("username", j!("a%2Fb")), "InvalidRequest", "is not valid"),
        case("user with control character", with("username", j!("ja\u{7}ne")), "InvalidRequest", "is not valid"),
        case("user 10 KB long", with("username", j!("j".repeat(10_240))), "InvalidRequest", "is not valid"),
        case("user empty", with("username", j!("")), "InvalidRequest", "whose certificate?"),
        case("environment escaping its prefix", with("environment", j!("../config")), "InvalidRequest", "not a valid name"),
        case("environment with slash", with("environment", j!("staging/../prod")), "InvalidRequest", "not a valid name"),
        case("environment percent-encoded", with("environment", j!("%2e%2e")), "InvalidRequest", "not a valid name"),
        case("environment empty", with("environment", j!("")), "InvalidRequest", "not a valid name"),
        case("environment unknown", with("environment", j!("nope")), "UnknownEnvironment", "sshca init nope"),
        case("force-command not allowed", with("critical_options", j!({"force-command": "/bin/sh"})), "PolicyViolation", "force-command"),
        case("critical option injection", with("critical_options", j!({"force-command": "ls\n/bin/sh"})), "InvalidRequest", "control characters"),
        case("extension not allowed", with("extensions", j!({"evil@example.com": ""})), "PolicyViolation", "evil@example.com"),
        case("unknown certificate type", with("cert_type", j!("admin")), "InvalidRequest", "unknown variant"),
        case("reason missing", with("reason", j!("")), "InvalidRequest", "a reason is required"),
        case("reason with newline", with("reason", j!("ok\nforged: entry")), "InvalidRequest", "control characters"),
        case("requested_by with newline", with("requested_by", j!("jane\nroot")), "InvalidRequest", "requested_by must be one line"),
        case("no key and none cached", with("public_key", Value::Null), "NoCachedKey", "no public key for user \"jane\""),
    ]
}

/// Every case of the corpus through the function (as a Function URL event and, through `sshca
/// sign --request`, the Invoke API) and through `sshca sign --local --request`: the same error
/// type and message each time, no panic, and nothing written.
fn bad_request_corpus(server: S3Server) {
    let world = World::new(server);
    world.init("staging", &["--principals", "deploy", "--max-ttl", "8h"]);
    let cases = corpus(&world);
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let lambda = LambdaEmulator::start(&world.env());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(lambda.client());
    let before = runtime.block_on(world.objects());
    for case in &cases {
        let event = json!({
            "version": "2.0",
            "requestContext": {"http": {"method": "POST", "path": "/"}, "authorizer": {"iam": {"userArn": "arn:aws:iam::000000000000:user/tester"}}},
            "body": String::from_utf8(runtime.block_on(with_proof(&case.body, &default_audience(&world, "staging")))).unwrap(),
            "isBase64Encoded": false,
        });
        let output = runtime
            .block_on(client.invoke().function_name("sign_key").payload(aws_sdk_lambda::primitives::Blob::new(event.to_string())).send())
            .unwrap_or_else(|err| panic!("{}: invoke failed: {err:?}", case.what));
        let answer: Value = serde_json::from_slice(output.payload().unwrap().as_ref()).unwrap();
        let status = answer["statusCode"].as_u64().unwrap_or_default();
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap_or("{}")).unwrap();
        assert!((400..500).contains(&status), "{}: HTTP {status}: {body}", case.what);
        assert_eq!(body["errorType"], case.error_type, "{}: {body}", case.what);
        assert!(body["errorMessage"].as_str().unwrap().contains(case.says), "{}: expected {:?} in {body}", case.what, case.says);

        let file = world.path("request.json");
        std::fs::write(&file, &case.body).unwrap();
        let file = file.to_str().unwrap();
        for mode in [&["sign", "--local", "--request", file][..], &["sign", "--function", "sign_key", "--request", file][..]] {
            let output = world.command("sshca").env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).args(mode).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{} ({mode:?}): accepted", case.what);
            assert!(stderr.contains(&format!("error: {}: ", case.error_type)), "{} ({mode:?}): {stderr}", case.what);
            assert!(stderr.contains(case.says), "{} ({mode:?}): expected {:?} in {stderr}", case.what, case.says);
            assert!(!stderr.contains("panicked"), "{} ({mode:?}): {stderr}", case.what);
        }
    }
    let after = runtime.block_on(world.objects());
    assert_eq!(before, after, "a refused request wrote to the bucket");
}

on_both_s3_servers!(bad_request_corpus);
