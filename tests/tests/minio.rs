//! A real, old MinIO (RELEASE.2024-01-01), which ignores `If-None-Match: *`: `sshca init` and a
//! signer refuse it, writing nothing but their probe; what needs no conditional create works
//! there (path-style SigV4, presigned links, `get_key`).

use std::process::Command;

use sshca_aws::s3::S3Store;
use sshca_core::Store;
use sshca_tests::*;

const ENV: &str = "staging";

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_server_ignoring_conditional_creates_is_refused() {
    let world = World::new(S3Server::MinIo);
    let output = world.sshca(&["init", ENV, "--create-bucket", "--create-keys", "--principals", "deploy"]);
    assert!(!output.status.success(), "sshca init trusted a server that ignores conditional creates");
    assert!(stderr(&output).contains("this S3 server ignores conditional creates"), "{}", stderr(&output));
    assert_eq!(stderr(&output).lines().filter(|l| l.starts_with("error:")).count(), 1, "one line says why: {}", stderr(&output));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(runtime.block_on(world.objects()), ["probe/conditional-create"], "init wrote more than its probe");

    // an environment made elsewhere and copied here: its signer refuses too, before any serial
    let elsewhere = World::new(S3Server::LocalStack);
    elsewhere.init(ENV, &["--principals", "deploy"]);
    let policy = runtime.block_on(async {
        let object = elsewhere.s3().await.get_object().bucket(&elsewhere.bucket).key(format!("config/{ENV}.json")).send().await.unwrap();
        object.body.collect().await.unwrap().into_bytes().to_vec()
    });
    let minio = runtime.block_on(world.s3());
    runtime.block_on(minio.put_object().bucket(&world.bucket).key(format!("config/{ENV}.json")).body(policy.into()).send()).unwrap();
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let output = world.sshca(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "minio", "-p", pub_path(&key).to_str().unwrap()]);
    assert!(!output.status.success(), "a signer issued on a server that ignores conditional creates");
    assert!(stderr(&output).contains("ignores conditional creates"), "{}", stderr(&output));
    let objects = runtime.block_on(world.objects());
    assert!(!objects.iter().any(|k| k.starts_with("serial/") || k.starts_with("certs/") || k.contains("-issued")), "{objects:?}");
}

#[test]
fn get_key_installs_from_minio_presigned_links() {
    let world = World::new(S3Server::MinIo);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let s3 = runtime.block_on(world.s3());
    runtime.block_on(s3.create_bucket().bucket(&world.bucket).send()).unwrap();
    let dir = world.path("ssh");
    std::fs::create_dir(&dir).unwrap();
    let ca = keygen(world.dir.path(), "ca", "ed25519", None, "");
    let key = keygen(&dir, "id_ed25519", "ed25519", None, "");
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "jane#1", "-n", "deploy", "-V", "-5m:+1h"])
        .arg(pub_path(&key))
        .status()
        .unwrap();
    assert!(signed.success());
    let certificate = std::fs::read(cert_path(&key)).unwrap();
    std::fs::remove_file(cert_path(&key)).unwrap();
    let store = S3Store::new(s3, world.bucket.clone());
    let object = "certs/staging/jane/00000000000000000001-cert.pub";
    runtime.block_on(store.put(object, certificate.clone(), sshca_core::store::Condition::Always)).unwrap();
    let url = runtime.block_on(store.presign_get(object, std::time::Duration::from_secs(600))).unwrap();

    let tampered = url.replacen("X-Amz-Signature=", "X-Amz-Signature=0", 1);
    let refused = world.command("get_key").arg(&tampered).arg("--ssh-dir").arg(&dir).arg("--no-agent").output().unwrap();
    assert!(!refused.status.success(), "a tampered link was served");
    assert!(!cert_path(&key).exists());
    let installed =
        world.command("get_key").arg(&url).arg("--ssh-dir").arg(&dir).args(["--no-agent", "--ca-key"]).arg(pub_path(&ca)).output().unwrap();
    assert!(installed.status.success(), "get_key from MinIO: {}", stderr(&installed));
    assert_eq!(std::fs::read(cert_path(&key)).unwrap(), certificate);
    assert!(ssh_keygen_list(&cert_path(&key)).contains("jane#1"));
}
