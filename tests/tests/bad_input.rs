//! Bad input gets a clear error naming the problem and the fix, and writes nothing: no serial,
//! no audit record, no certificate.

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
    let (good, garbage, dsa, rsa1024) = (good.display().to_string(), garbage.display().to_string(), dsa.display().to_string(), rsa1024.display().to_string());
    let long_reason = "x".repeat(257);
    let sign_as = |user: &str, key: &str, extra: &[&str]| {
        let mut args: Vec<String> =
            ["sign", "--local", "-e", "staging", "-u", user, "-r", "testing", "-p", key].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let sign = |extra: &[&str]| sign_as("jane", &good, extra);
    let without_reason: Vec<String> = ["sign", "--local", "-e", "staging", "-u", "jane", "-p", &good].map(String::from).to_vec();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("unknown environment", ["sign", "--local", "-e", "nope", "-u", "jane", "-r", "t", "-p", &good].map(String::from).to_vec(), "sshca init nope"),
        ("malformed key", sign_as("jane", &garbage, &[]), "not an OpenSSH public key"),
        ("DSA key", sign_as("jane", &dsa, &[]), "DSA keys are insecure"),
        ("RSA-1024 key", sign_as("jane", &rsa1024, &[]), "1024 bits; at least 2048"),
        ("root principal", sign(&["--principal", "root"]), "principal \"root\" is not allowed"),
        ("principal with space", sign(&["--principal", "a b"]), "is not valid"),
        ("principal with control char", sign(&["--principal", "a\u{1}b"]), "is not valid"),
        ("ttl above max", sign(&["-t", "+9h"]), "longer than the 8h allowed"),
        ("ttl in the past", sign(&["-t", "20200101000000"]), "already have expired"),
        ("start after end", sign(&["-s", "20300101000000", "-t", "20290101000000"]), "must be before"),
        ("reason missing", without_reason, "a reason is required"),
        ("reason too long", ["sign", "--local", "-e", "staging", "-u", "jane", "-r", &long_reason, "-p", &good].map(String::from).to_vec(), "keep it to 256"),
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
        ("KMS key missing", vec!["init".into(), "broken".into(), "--user-ca-key".into(), "6b7a1b8e-0000-4000-8000-000000000000".into()], "not found"),
        ("KMS key not SIGN_VERIFY", vec!["init".into(), "broken".into(), "--user-ca-key".into(), symmetric], "SIGN_VERIFY"),
        ("bucket missing", vec!["--bucket".into(), format!("{}-missing", world.bucket), "sign".into(), "--local".into(), "-e".into(), "staging".into(), "-u".into(), "jane".into(), "-r".into(), "t".into(), "-p".into(), good.clone()], "does not exist"),
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
