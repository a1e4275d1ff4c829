//! Write access to the bucket must not let anyone pass a record off as the issuer's, or make it
//! hand out a serial twice: a record pre-planted at the next serial is not counted as the
//! issuance's own, and a deleted serial counter resumes above every lease the audit trail names.

use sshca_tests::*;

const ENV: &str = "staging";

fn planted_records_and_a_deleted_counter(server: S3Server) {
    let world = World::new(server);
    world.init(ENV, &["--principals", "deploy"]);
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let sign = || world.sshca(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "tampering", "--json", "-p", pub_path(&key).to_str().unwrap()]);
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

on_both_s3_servers!(planted_records_and_a_deleted_counter);
