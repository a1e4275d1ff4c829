//! Write access to the bucket must not let anyone pass a record off as the issuer's, or make it
//! hand out a serial twice: a record pre-planted at the next serial is not counted as the
//! issuance's own, and a deleted serial counter resumes above every lease the audit trail names.
//! And admins changing the policy at once do not undo each other's changes.

use sshca_tests::*;

const ENV: &str = "staging";

fn planted_records_and_a_deleted_counter(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let sign =
        || world.sshca(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "tampering", "--json", "-p", pub_path(&key).to_str().unwrap()]);
    let serial_of = |output: std::process::Output| -> u64 {
        assert!(output.status.success(), "sign: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["serial"].as_u64().unwrap()
    };
    assert_eq!(serial_of(sign()), 1);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let today = time::OffsetDateTime::now_utc();
    let planted = format!("audit/{ENV}/{:04}/{:02}/{:02}/{:020}-issued.json", today.year(), u8::from(today.month()), today.day(), 2);
    let put = s3.put_object().bucket(&world.bucket).key(&planted).body(b"{\"planted\": true}".to_vec().into());
    runtime.block_on(put.send()).unwrap();
    let refused = sign();
    assert!(!refused.status.success(), "an issuance counted a planted record as its own");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{planted} already holds something this write did not put there")), "{stderr}");
    let objects = runtime.block_on(world.objects());
    assert!(objects.iter().any(|k| k.ends_with(&format!("{:020}-void.json", 2))), "serial 2 is voided on record: {objects:?}");
    assert_eq!(serial_of(sign()), 3);

    runtime.block_on(s3.delete_object().bucket(&world.bucket).key(format!("serial/{ENV}.json")).send()).unwrap();
    assert_eq!(serial_of(sign()), 4, "a deleted counter resumes above the highest lease, never at 1");
}

/// Policy writes are compare-and-swap: concurrent `sshca init`s that each add an admin all land
/// (none overwrites another's change with what it read before), and a key cannot be both a user
/// and a host CA.
fn concurrent_policy_changes_are_all_kept(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let admins: Vec<String> = (0..6).map(|n| format!("arn:aws:iam::000000000000:user/admin{n}")).collect();
    let children: Vec<_> = admins
        .iter()
        .map(|admin| {
            world
                .command("sshca")
                .args(["init", ENV, "--admin", admin])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a concurrent init: {}", String::from_utf8_lossy(&output.stderr));
    }
    let policy: serde_json::Value = serde_json::from_str(&world.sshca_ok(&["show-policy", ENV, "--json"])).unwrap();
    let rules = policy["access"]["rules"].to_string();
    for admin in &admins {
        assert!(rules.contains(admin.as_str()), "{admin} was lost: {rules}");
    }
    assert!(rules.contains("arn:aws:iam::000000000000:root"), "the first admin was lost: {rules}");

    let user_ca = policy["user_ca"]["key_id"].as_str().unwrap();
    let both = world.sshca(&["rotate", ENV, "--role", "host", "--next-ca-key", user_ca]);
    assert!(!both.status.success(), "a user CA key became a host CA key");
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("is both a user and a host CA key"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

/// `count` keys, each with a certificate of jane's (serials 1 to `count`) installed beside it.
fn certified_keys(world: &World, count: usize) -> Vec<std::path::PathBuf> {
    (1..=count)
        .map(|n| {
            let key = keygen(world.dir.path(), &format!("k{n}"), "ed25519", None, "");
            let url =
                world.sshca_ok(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "revocation", "-p", pub_path(&key).to_str().unwrap()]);
            std::fs::write(cert_path(&key), download(url.trim()).unwrap()).unwrap();
            key
        })
        .collect()
}

/// `ssh-keygen -Q`: whether the environment's published KRL revokes `key`'s certificate.
fn revoked(world: &World, key: &std::path::Path) -> bool {
    let krl = world.path("revoked.krl");
    world.sshca_ok(&["krl", ENV, "-o", krl.to_str().unwrap()]);
    let output = std::process::Command::new("ssh-keygen").arg("-Q").arg("-f").arg(&krl).arg(cert_path(key)).output().unwrap();
    String::from_utf8_lossy(&output.stdout).contains("REVOKED")
}

/// The revocation log decides, not a summary: a garbage record at the next version neither blocks
/// later revocations nor hides earlier ones (and is named), a planted summary file changes
/// nothing, and a planted KRL claiming a huge version is replaced by the next revocation.
fn revocations_survive_planted_records(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let keys = certified_keys(&world, 3);
    world.sshca_ok(&["revoke", ENV, "--serial", "1", "-r", "first"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let plant =
        |key: String, body: Vec<u8>| runtime.block_on(s3.put_object().bucket(&world.bucket).key(key).body(body.into()).send()).unwrap();
    let garbage = format!("audit/{ENV}/revocations/{:020}.json", 2);
    plant(garbage.clone(), b"garbage".to_vec());
    // a name as far ahead as names go: it must not become the next version
    plant(format!("audit/{ENV}/revocations/{}.json", u64::MAX), b"garbage".to_vec());
    let output = world.sshca(&["revoke", ENV, "--serial", "2", "-r", "second"]);
    assert!(output.status.success(), "a garbage record blocked a revocation: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("the revocation record {garbage} cannot be read and was skipped")));
    plant(format!("revoked/{ENV}.json"), br#"{"version": 99, "serials": [], "key_ids": [], "keys": []}"#.to_vec());
    assert_eq!(keys.iter().map(|k| revoked(&world, k)).collect::<Vec<_>>(), [true, true, false]);

    // a planted KRL that revokes nothing is refused by servers (it would un-revoke), and the
    // next revocation republishes the whole log
    let planted = sshca_core::krl::encode(&sshca_core::krl::Revoked::default(), u64::MAX, 0, "planted");
    plant(format!("krl/{ENV}.krl"), planted);
    let installed = world.path("revoked.krl");
    let refused = world.sshca(&["krl", ENV, "-o", installed.to_str().unwrap()]);
    assert!(!refused.status.success(), "a server installed a KRL that revokes less");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("fewer than the installed KRL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    plant(format!("krl/{ENV}.krl"), b"<html>Not Found</html>".to_vec());
    let refused = world.sshca(&["krl", ENV, "-o", installed.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not one sshca publishes"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(sshca_core::krl::summarize(&std::fs::read(&installed).unwrap()).unwrap().revoked >= 2, "the installed KRL was kept");
    world.sshca_ok(&["revoke", ENV, "--serial", "3", "-r", "third"]);
    assert_eq!(
        keys.iter().map(|k| revoked(&world, k)).collect::<Vec<_>>(),
        [true, true, true],
        "the next revocation republished the whole log"
    );
}

/// Records an attacker writes so that they parse, at names and in forms nobody expects: a
/// readable revocation at version `u64::MAX`, an object in a storage class nobody can read
/// without a restore, a revocation hidden by a delete marker. Issuance, revocation and the
/// published KRL go on, and `sshca verify` names each.
fn revocations_survive_well_formed_plants(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let keys = certified_keys(&world, 4);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let sign =
        || world.sshca(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "after the plants", "-p", pub_path(&keys[0]).to_str().unwrap()]);

    // before anything is revoked or published: an archived object under the revocations
    let archived = format!("audit/{ENV}/revocations/{:020}.json", 7);
    let put = s3
        .put_object()
        .bucket(&world.bucket)
        .key(&archived)
        .body(b"{}".to_vec().into())
        .storage_class(aws_sdk_s3::types::StorageClass::DeepArchive);
    runtime.block_on(put.send()).unwrap();
    let signed = sign();
    assert!(signed.status.success(), "an archived record stopped issuance: {}", String::from_utf8_lossy(&signed.stderr));

    world.sshca_ok(&["revoke", ENV, "--serial", "1", "-r", "first"]);
    // a readable, well-formed record at the last version there is
    let at_max = serde_json::json!({
        "event": "revoked", "environment": ENV, "version": u64::MAX, "serials": [], "key_ids": [], "keys": [],
        "reason": "planted", "requested_by": null, "timestamp": "2026-01-01T00:00:00Z",
    });
    let put = s3
        .put_object()
        .bucket(&world.bucket)
        .key(format!("audit/{ENV}/revocations/{}.json", u64::MAX))
        .body(at_max.to_string().into_bytes().into());
    runtime.block_on(put.send()).unwrap();
    let output = world.sshca(&["revoke", ENV, "--serial", "2", "-r", "second"]);
    assert!(
        output.status.success(),
        "a record at u64::MAX or an archived one blocked a revocation: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(&format!("the revocation record {archived} cannot be read")),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signed = sign();
    assert!(signed.status.success(), "the plants stopped issuance: {}", String::from_utf8_lossy(&signed.stderr));
    assert_eq!(keys.iter().map(|k| revoked(&world, k)).collect::<Vec<_>>(), [true, true, false, false]);

    // the record of serial 1 hidden by a delete marker: the next revocation keeps serial 1 revoked
    let first = format!("audit/{ENV}/revocations/{:020}.json", 1);
    runtime.block_on(s3.delete_object().bucket(&world.bucket).key(&first).send()).unwrap();
    let output = world.sshca(&["revoke", ENV, "--serial", "3", "-r", "third"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("kept revoked"), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        keys.iter().map(|k| revoked(&world, k)).collect::<Vec<_>>(),
        [true, true, true, false],
        "a hidden record un-revoked nothing"
    );
    let report = world.sshca(&["verify", ENV, "--json"]);
    let findings = String::from_utf8_lossy(&report.stdout).into_owned();
    for expected in ["krl-revokes-unrecorded", "record-deleted", &archived] {
        assert!(findings.contains(expected), "{expected} not in {findings}");
    }
    // only an explicit admin action drops it
    world.sshca_ok(&["krl", ENV, "--publish", "--allow-shrink"]);
    let installed = world.path("revoked.krl");
    let refused = world.sshca(&["krl", ENV, "-o", installed.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("fewer than the installed KRL"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    world.sshca_ok(&["krl", ENV, "-o", installed.to_str().unwrap(), "--allow-shrink"]);
    assert_eq!(keys.iter().map(|k| revoked(&world, k)).collect::<Vec<_>>(), [false, true, true, false]);
}

/// Lease records as a writer of the audit prefix would plant them, so that they parse: one of a
/// million serials at the counter's next value, and, with the counter lowered, a decoy just below
/// it. Every issuance still gets a serial, and none is handed out twice.
fn planted_leases_neither_block_nor_reuse(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let sign = || {
        let output =
            world.sshca(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "leases", "--json", "-p", pub_path(&key).to_str().unwrap()]);
        assert!(output.status.success(), "sign: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["serial"].as_u64().unwrap()
    };
    let mut serials = std::collections::BTreeSet::new();
    for _ in 0..3 {
        serials.insert(sign());
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let plant =
        |key: String, body: Vec<u8>| runtime.block_on(s3.put_object().bucket(&world.bucket).key(key).body(body.into()).send()).unwrap();
    let lease = |first: u64, last: u64| {
        let record = serde_json::json!({"environment": ENV, "first": first, "last": last, "holder": "mallory", "request_id": "planted", "leased_at": "2026-01-01T00:00:00Z"});
        plant(format!("audit/{ENV}/leases/{first:020}.json"), record.to_string().into_bytes());
    };
    lease(4, 4 + (1 << 20));
    for _ in 0..5 {
        assert!(serials.insert(sign()), "a serial was handed out twice");
    }
    assert_eq!(serials.len(), 8);
    // the counter lowered to 2, a decoy just below, and a small planted lease above what was handed out
    plant(format!("serial/{ENV}.json"), br#"{"next": 2}"#.to_vec());
    plant(format!("audit/{ENV}/leases/{:020}.json", 1), b"decoy".to_vec());
    lease(*serials.last().unwrap() + 1, *serials.last().unwrap() + 2);
    for _ in 0..5 {
        let serial = sign();
        assert!(serials.insert(serial), "serial {serial} was handed out twice: {serials:?}");
    }
}

/// A policy may name only KMS keys made for its environment and role, in this account: an
/// untagged key, one tagged for another environment or role, or one in another account is refused
/// by `sshca init`, and a next CA key planted straight into the policy in the bucket is refused
/// by `sshca config` rather than handed to servers to trust.
#[test]
fn only_keys_made_for_the_environment_are_trusted() {
    let world = World::new(S3Server::LocalStack);
    world.init(ENV, &["--principals", "deploy"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kms = runtime.block_on(world.kms());
    let create = |tags: &[(&str, &str)]| {
        let mut request =
            kms.create_key().key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify).key_spec(aws_sdk_kms::types::KeySpec::EccNistP256);
        for (key, value) in tags {
            request = request.tags(aws_sdk_kms::types::Tag::builder().tag_key(*key).tag_value(*value).build().unwrap());
        }
        runtime.block_on(request.send()).unwrap().key_metadata().unwrap().arn().unwrap().to_owned()
    };
    let untagged = create(&[]);
    let elsewhere = create(&[("sshca:environment", "production"), ("sshca:role", "user")]);
    let host_role = create(&[("sshca:environment", ENV), ("sshca:role", "host")]);
    let foreign = {
        let mut config = aws_sdk_kms::config::Builder::from(&runtime.block_on(sdk_config(Some(&kms_endpoint()))));
        config = config.credentials_provider(aws_sdk_kms::config::Credentials::new("111111111111", "test", None, None, "another account"));
        let other = aws_sdk_kms::Client::from_conf(config.build());
        let tag = |k: &str, v: &str| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().unwrap();
        let created =
            other.create_key().key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify).key_spec(aws_sdk_kms::types::KeySpec::EccNistP256);
        let created = runtime.block_on(created.tags(tag("sshca:environment", ENV)).tags(tag("sshca:role", "user")).send()).unwrap();
        created.key_metadata().unwrap().arn().unwrap().to_owned()
    };
    let cases = [
        (&untagged, "it has no sshca:environment tag"),
        (&elsewhere, "it is tagged sshca:environment=production, not staging"),
        (&host_role, "it is tagged sshca:role=host, not user"),
        (&foreign, "it is in account 111111111111, not this account (000000000000)"),
    ];
    for (key, expected) in cases {
        let output = world.sshca(&["init", ENV, "--user-ca-key", key]);
        assert!(!output.status.success(), "{key} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.contains("aws kms tag-resource"), "{expected:?} not in {stderr}");
    }

    // a next user CA planted straight into the policy object
    let s3 = runtime.block_on(world.s3());
    let key = format!("config/{ENV}.json");
    let object = runtime.block_on(s3.get_object().bucket(&world.bucket).key(&key).send()).unwrap();
    let mut policy: serde_json::Value = serde_json::from_slice(&runtime.block_on(object.body.collect()).unwrap().into_bytes()).unwrap();
    policy["next_user_ca"] = serde_json::json!({"kind": "kms", "key_id": foreign});
    runtime.block_on(s3.put_object().bucket(&world.bucket).key(&key).body(policy.to_string().into_bytes().into()).send()).unwrap();
    let output = world.sshca(&["config", ENV, "--only", "user-ca-keys"]);
    assert!(!output.status.success(), "servers were handed a planted CA key: {}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stderr).contains("it is in account 111111111111"));
}

/// `sshca verify`: nothing on clean books; after each tampering, exactly that.
fn verify_finds_exactly_each_tampering(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let sign = || world.sshca_ok(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "books", "-p", pub_path(&key).to_str().unwrap()]);
    for _ in 0..3 {
        sign();
    }
    world.sshca_ok(&["revoke", ENV, "--serial", "1", "-r", "books"]);
    let verify = || {
        let output = world.sshca(&["verify", ENV, "--json"]);
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&output.stderr)));
        let findings: Vec<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| format!("{}: {}", f["check"].as_str().unwrap(), f["what"].as_str().unwrap()))
            .collect();
        assert_eq!(output.status.success(), findings.is_empty(), "exit code vs {findings:?}");
        (report["summary"].clone(), findings)
    };
    let (summary, findings) = verify();
    assert!(findings.is_empty(), "clean books: {findings:?}");
    assert_eq!((summary["issued"].as_u64(), summary["certificates"].as_u64()), (Some(3), Some(3)), "{summary}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let put = |key: &str, body: &[u8]| {
        runtime.block_on(s3.put_object().bucket(&world.bucket).key(key).body(body.to_vec().into()).send()).unwrap()
    };
    let delete = |key: &str| runtime.block_on(s3.delete_object().bucket(&world.bucket).key(key).send()).unwrap();
    // the bucket keeps versions (sshca init makes it so): taking a planted object back for good
    // means deleting every version of it, delete markers included
    let erase = |key: &str| {
        let listed = runtime.block_on(s3.list_object_versions().bucket(&world.bucket).prefix(key).send()).unwrap();
        let versions = listed.versions().iter().filter_map(|v| v.version_id());
        let markers = listed.delete_markers().iter().filter_map(|m| m.version_id());
        for version in versions.chain(markers) {
            runtime.block_on(s3.delete_object().bucket(&world.bucket).key(key).version_id(version).send()).unwrap();
        }
    };
    let only = |expected: &str| {
        let (_, findings) = verify();
        assert_eq!(findings.len(), 1, "exactly the tampering: {findings:?}");
        assert!(findings[0].starts_with(expected), "{expected} not in {findings:?}");
    };

    let replaced = format!("certs/{ENV}/jane/{:020}-cert.pub", 2);
    let original = {
        let object = runtime.block_on(s3.get_object().bucket(&world.bucket).key(&replaced).send()).unwrap();
        runtime.block_on(object.body.collect()).unwrap().into_bytes().to_vec()
    };
    let other = String::from_utf8(original.clone()).unwrap().replace("jane", "jane ");
    put(&replaced, other.as_bytes());
    only(&format!("certificate-differs: {replaced} does not hold the certificate"));
    put(&replaced, &original);
    assert!(verify().1.is_empty(), "the certificate object holds its certificate again");

    let stray = format!("certs/{ENV}/mallory/{:020}-cert.pub", 99);
    put(&stray, b"ssh-ed25519-cert-v01@openssh.com AAAA");
    only(&format!("certificate-without-record: {stray}"));
    erase(&stray);

    let today = time::OffsetDateTime::now_utc();
    let garbage = format!("audit/{ENV}/{:04}/{:02}/{:02}/{:020}-issued.json", today.year(), u8::from(today.month()), today.day(), 77);
    put(&garbage, b"garbage");
    only(&format!("unreadable-record: {garbage}"));
    delete(&garbage);
    only(&format!("record-deleted: {garbage} was deleted"));
    erase(&garbage);

    delete(&format!("serial/{ENV}.json"));
    only("counter-behind: the serial counter is at 1");
    sign();
    assert!(verify().1.is_empty(), "the next issuance rebuilt the counter");

    put(&format!("krl/{ENV}.krl"), &sshca_core::krl::encode(&sshca_core::krl::Revoked::default(), u64::MAX, 0, "planted"));
    only("krl-differs");
    world.sshca_ok(&["revoke", ENV, "--serial", "2", "-r", "books"]);
    assert!(verify().1.is_empty(), "the next revocation republished the KRL");

    {
        // a record written twice shows in its versions
        let record = runtime.block_on(world.objects()).into_iter().find(|k| k.ends_with(&format!("{:020}-issued.json", 3))).unwrap();
        let object = runtime.block_on(s3.get_object().bucket(&world.bucket).key(&record).send()).unwrap();
        let body = runtime.block_on(object.body.collect()).unwrap().into_bytes().to_vec();
        put(&record, &body);
        put(&record, &body);
        only(&format!("record-overwritten: {record} was written"));
    }
}

on_both_s3_servers!(
    planted_records_and_a_deleted_counter,
    concurrent_policy_changes_are_all_kept,
    revocations_survive_planted_records,
    revocations_survive_well_formed_plants,
    planted_leases_neither_block_nor_reuse,
    verify_finds_exactly_each_tampering
);

/// `sshca init --create-bucket` makes the bucket the template makes: versioned (an overwritten
/// record keeps its old version), encrypted at rest, closed to the public.
#[test]
fn created_buckets_are_versioned_encrypted_and_private() {
    let world = World::new(S3Server::LocalStack);
    world.init(ENV, &["--principals", "deploy"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    let versioning = runtime.block_on(s3.get_bucket_versioning().bucket(&world.bucket).send()).unwrap();
    assert_eq!(versioning.status(), Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled));
    let encryption = runtime.block_on(s3.get_bucket_encryption().bucket(&world.bucket).send()).unwrap();
    let rule = &encryption.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().sse_algorithm(), &aws_sdk_s3::types::ServerSideEncryption::Aes256);
    let block = runtime.block_on(s3.get_public_access_block().bucket(&world.bucket).send()).unwrap();
    let block = block.public_access_block_configuration().unwrap();
    assert_eq!(
        (block.block_public_acls(), block.block_public_policy(), block.ignore_public_acls(), block.restrict_public_buckets()),
        (Some(true), Some(true), Some(true), Some(true))
    );
}

/// A KMS-sealed Ed25519 CA rotates like any other: the next key is sealed under a name of its own.
#[test]
fn a_sealed_ed25519_ca_rotates() {
    let world = World::new(S3Server::LocalStack);
    world.init(ENV, &["--principals", "deploy", "--key-spec", "ED25519_SEALED"]);
    world.sshca_ok(&["rotate", ENV, "--create-next", "--key-spec", "ED25519_SEALED"]);
    world.sshca_ok(&["rotate", ENV, "--promote"]);
    let keys = world.sshca_ok(&["config", ENV, "--only", "user-ca-keys"]);
    assert_eq!(keys.lines().filter(|l| l.starts_with("ssh-ed25519 ")).count(), 2, "current and previous: {keys}");
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    world.sshca_ok(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "after rotation", "-p", pub_path(&key).to_str().unwrap()]);
}
