//! Nothing secret reaches the logs: with the function logging at its most verbose, neither a
//! presigned URL's signature, nor the AWS secret key, nor any form of the CA's private key (here
//! a KMS-sealed Ed25519 key, which the function holds in memory) appears in what it wrote.

use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use sshca_tests::*;

#[test]
fn function_logs_hold_no_secrets() {
    let world = World::new(S3Server::LocalStack);
    world.init("staging", &["--principals", "deploy", "--key-spec", "ED25519_SEALED"]);
    let secret_key = format!("canary-secret-{}", uuid::Uuid::new_v4().simple());
    let mut env: Vec<(&'static str, String)> = world.env().into_iter().filter(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY").collect();
    env.push(("AWS_SECRET_ACCESS_KEY", secret_key.clone()));
    env.push(("RUST_LOG", "trace".into()));
    let lambda = LambdaEmulator::start(&env);
    let key = keygen(world.dir.path(), "id", "ed25519", None, "");
    let sign = |extra: &[&str]| {
        world
            .command("sshca")
            .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
            .args(["sign", "-e", "staging", "-u", "jane", "-r", "secrets", "--function", "sign_key", "-p"])
            .arg(pub_path(&key))
            .args(extra)
            .output()
            .unwrap()
    };
    let signed = sign(&[]);
    assert!(signed.status.success(), "{}", String::from_utf8_lossy(&signed.stderr));
    let url = String::from_utf8(signed.stdout).unwrap().trim().to_owned();
    let signature = url.split("X-Amz-Signature=").nth(1).expect("a presigned URL").to_owned();
    assert!(!sign(&["--principal", "root"]).status.success());

    // every form the CA's private key could take: the sealed plaintext KMS returns, and the seed
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let plaintext = runtime.block_on(async {
        let objects = world.objects().await;
        let sealed = objects.iter().find(|k| k.starts_with("ca/staging/")).expect("a sealed CA key").clone();
        let body = world.s3().await.get_object().bucket(&world.bucket).key(&sealed).send().await.unwrap().body.collect().await.unwrap();
        let decrypted = world
            .kms()
            .await
            .decrypt()
            .ciphertext_blob(Blob::new(body.into_bytes().to_vec()))
            .set_encryption_context(Some(sshca_aws::kms::sealing_context("staging")))
            .send()
            .await
            .unwrap();
        decrypted.plaintext().unwrap().as_ref().to_vec()
    });
    let ca = ssh_key::PrivateKey::from_bytes(&plaintext).unwrap();
    let seed = ca.key_data().ed25519().unwrap().private.to_bytes();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let pem = ca.to_openssh(ssh_key::LineEnding::LF).unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();

    let logs = lambda.logs();
    assert!(logs.contains("certificate issued") && logs.contains("request refused"), "the function logged nothing: {logs}");
    let secrets = [
        ("the presigned URL's signature", signature),
        ("the presigned URL", url),
        ("the AWS secret key", secret_key),
        ("the CA seed (hex)", hex(&seed)),
        ("the sealed plaintext (hex)", hex(&plaintext)),
        ("the sealed plaintext (base64)", base64::engine::general_purpose::STANDARD.encode(&plaintext)[..40].to_owned()),
        ("the CA key (OpenSSH PEM body)", pem_body[..60].to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(&secret), "{what} is in the function's logs");
    }
    for marker in ["X-Amz-Signature", "PRIVATE KEY", "Plaintext"] {
        assert!(!logs.contains(marker), "{marker:?} is in the function's logs");
    }
}
