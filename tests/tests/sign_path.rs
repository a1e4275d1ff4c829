//! The sign path end to end on the real servers: `sshca init` → `sshca sign --local` → the
//! download link → a real `sshd` that trusts the CA lets the user in (and refuses what it must).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use sshca_tests::*;

fn sign(world: &World, environment: &str, key: &Path, extra: &[&str]) -> Result<String, String> {
    let public = pub_path(key);
    let mut args = vec!["sign", "--local", "-e", environment, "-u", "jane@example.com", "-r", "integration test", "-p"];
    let public = public.to_str().unwrap().to_owned();
    args.push(&public);
    args.extend_from_slice(extra);
    let output = world.sshca(&args);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap().trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Signs `key` and installs the downloaded certificate as `<key>-cert.pub`.
fn sign_and_install(world: &World, environment: &str, key: &Path, extra: &[&str]) {
    let url = sign(world, environment, key, extra).unwrap_or_else(|err| panic!("sign failed: {err}"));
    let certificate = download(&url).unwrap_or_else(|err| panic!("download of {url} failed: {err}"));
    std::fs::write(cert_path(key), certificate).unwrap();
}

fn end_to_end_login(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy", "--allowed-principals", "deploy,other"]);
    let ca_key_cmd = world.sshca_ok(&["ca-key", "staging"]);
    assert_eq!(ca_key_cmd.trim(), ca, "ca-key prints the key init printed");
    let sshd = Sshd::start(&ca, &["deploy"], "");

    let key = keygen(world.dir.path(), "id_ed25519", "ed25519", None, "");
    sign_and_install(&world, "staging", &key, &["-t", "+1h"]);
    assert!(sshd.login_with(&key), "certified key refused: {}", sshd.log());

    // a principal the server does not map to the account
    let other = keygen(world.dir.path(), "id_other", "ed25519", None, "");
    sign_and_install(&world, "staging", &other, &["--principal", "other"]);
    assert!(!sshd.login_with(&other), "wrong principal let in");

    // another CA's certificate (a second environment, its own CA)
    world.init("other", &["--principals", "deploy"]);
    let foreign = keygen(world.dir.path(), "id_foreign", "ed25519", None, "");
    sign_and_install(&world, "other", &foreign, &[]);
    assert!(!sshd.login_with(&foreign), "another CA's certificate let in");

    // an expired certificate: valid for 6 s (its link, no longer: a busy machine needs a few to
    // fetch it), used after 7 s
    let expiring = keygen(world.dir.path(), "id_expiring", "ed25519", None, "");
    sign_and_install(&world, "staging", &expiring, &["-t", "+6s"]);
    std::thread::sleep(std::time::Duration::from_secs(7));
    assert!(!sshd.login_with(&expiring), "expired certificate let in");
    assert!(sshd.login_with(&key), "the valid certificate stops working");
    assert!(sshd.log().contains("expired") || sshd.log().contains("Certificate invalid"), "{}", sshd.log());
}

/// Every CA key type signs every user key type; `ssh-keygen -L` shows what was asked for and
/// sshd accepts it.
fn key_types(server: S3Server) {
    let world = World::new(server);
    let user_keys = [
        keygen(world.dir.path(), "id_ed25519", "ed25519", None, ""),
        keygen(world.dir.path(), "id_ecdsa", "ecdsa", Some(256), ""),
        keygen(world.dir.path(), "id_rsa", "rsa", Some(3072), ""),
    ];
    let specs = [
        ("p256", "ECC_NIST_P256", "ECDSA"),
        ("p384", "ECC_NIST_P384", "ECDSA"),
        ("rsa3072", "RSA_3072", "RSA"),
        ("rsa4096", "RSA_4096", "RSA"),
        ("sealed", "ED25519_SEALED", "ED25519"),
    ];
    for (environment, spec, ca_type) in specs {
        let ca = world.init(environment, &["--key-spec", spec, "--principals", "deploy,ops", "--max-ttl", "8h"]);
        let sshd = Sshd::start(&ca, &["ops"], "");
        for key in &user_keys {
            let _ = std::fs::remove_file(cert_path(key));
            // an absolute expiry, so that ssh-keygen's reading can be compared to the second
            let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
            let (date, clock) = (expires.date(), expires.time());
            let (y, mo, d, h, mi, s) = (date.year(), u8::from(date.month()), date.day(), clock.hour(), clock.minute(), clock.second());
            let stamp = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}");
            sign_and_install(&world, environment, key, &["-t", &stamp, "--principal", "deploy,ops"]);
            let listing = ssh_keygen_list(&cert_path(key));
            assert!(listing.contains("Type: ") && listing.contains("user certificate"), "{listing}");
            assert!(listing.contains(&format!("Signing CA: {ca_type} SHA256:")), "{spec}: {listing}");
            if ca_type == "RSA" {
                assert!(listing.contains("(using rsa-sha2-512)"), "{listing}");
            }
            assert!(listing.contains("Key ID: \"jane@example.com#"), "{listing}");
            let serial = listing.lines().find_map(|l| l.trim().strip_prefix("Serial: ")).unwrap();
            assert!(listing.contains(&format!("Key ID: \"jane@example.com#{serial}\"")), "{listing}");
            let principals = listing.split("Principals:").nth(1).unwrap().split("Critical Options:").next().unwrap();
            assert_eq!(principals.split_whitespace().collect::<Vec<_>>(), ["deploy", "ops"], "{listing}");
            assert!(listing.contains("permit-pty"), "{listing}");
            let valid = listing.lines().find(|l| l.trim_start().starts_with("Valid:")).unwrap();
            assert!(valid.trim_end().ends_with(&format!(" to {y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")), "{listing}");
            assert!(sshd.login_with(key), "{spec} CA, {}: refused: {}", key.display(), sshd.log());
        }
    }
}

/// 16 signers (each its own `Issuer`, as separate Lambda containers are, leasing serials 8 at a
/// time) × 25 certificates: 400 distinct serials, each with exactly one audit record and inside a
/// recorded lease of the signer that used it; `sshca verify` then finds nothing.
fn concurrent_signers(server: S3Server) {
    let world = World::new(server);
    world.init("load", &["--principals", "deploy", "--allow-unproven"]);
    let public_key = std::fs::read_to_string(pub_path(&keygen(world.dir.path(), "id", "ed25519", None, ""))).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let aws = world.aws().await;
        let public_key = Arc::new(public_key);
        let signers: Vec<_> = (0..16)
            .map(|signer| {
                let issuer = aws.issuer(&world.bucket, None).with_serial_block(8, format!("signer-{signer}"));
                let public_key = public_key.clone();
                tokio::spawn(async move {
                    let mut serials = Vec::new();
                    for n in 0..25u64 {
                        let request = sshca_core::SignRequest {
                            environment: "load".into(),
                            username: format!("user{signer}"),
                            public_key: Some(public_key.to_string()),
                            reason: format!("load {n}"),
                            ..Default::default()
                        };
                        let caller = sshca_core::Caller { request_id: format!("{signer}-{n}") };
                        serials.push((issuer.issue(&request, &caller).await.expect("issue").serial, signer));
                    }
                    serials
                })
            })
            .collect();
        let mut serials = BTreeMap::new();
        for signer in signers {
            for (serial, signer) in signer.await.unwrap() {
                assert!(serials.insert(serial, signer).is_none(), "serial {serial} issued twice");
            }
        }
        assert_eq!(serials.len(), 400);

        let store = sshca_aws::s3::S3Store::new(aws.s3.clone(), world.bucket.clone());
        let (leases, _) = sshca_core::serial::lease_records(&store, "load").await.unwrap();
        assert_eq!(leases.iter().map(|l| l.last + 1 - l.first).sum::<u64>(), 8 * leases.len() as u64);
        for (serial, signer) in &serials {
            let lease = leases.iter().find(|l| (l.first..=l.last).contains(serial));
            assert_eq!(lease.map(|l| l.holder.as_str()), Some(format!("signer-{signer}").as_str()), "serial {serial}");
        }
        let serials: BTreeSet<u64> = serials.into_keys().collect();

        let mut audit: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        let issuance_records = world.objects().await.into_iter().filter(|k| k.starts_with("audit/load/2"));
        for key in issuance_records {
            let name = key.rsplit('/').next().unwrap();
            let serial: u64 = name.split('-').next().unwrap().parse().unwrap();
            audit.entry(serial).or_default().push(key);
        }
        assert_eq!(audit.keys().copied().collect::<BTreeSet<_>>(), serials, "audit serials differ from issued ones");
        for (serial, records) in &audit {
            assert_eq!(records.len(), 1, "serial {serial} has {records:?}");
            assert!(records[0].ends_with("-issued.json"), "{records:?}");
        }
    });
    // and the books balance: sshca verify finds nothing after the load
    let output = world.sshca(&["verify", "load"]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && said.contains("400 issued") && said.contains("nothing wrong"),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A key uploaded once is used when a request names none: the environment's first, then the one
/// kept for all environments.
fn public_key_cache(server: S3Server) {
    let world = World::new(server);
    world.init("staging", &["--principals", "deploy"]);
    let general = keygen(world.dir.path(), "general", "ed25519", None, "");
    let specific = keygen(world.dir.path(), "specific", "ed25519", None, "");
    world.sshca_ok(&["sign", "-u", "sam", "--upload", "-p", pub_path(&general).to_str().unwrap()]);
    let fingerprint = |key: &Path| {
        let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(pub_path(key)).output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned()
    };
    let certified_key = |world: &World| {
        let url = world.sshca_ok(&["sign", "--local", "-e", "staging", "-u", "sam", "-r", "cache test"]);
        let cert = String::from_utf8(download(url.trim()).unwrap()).unwrap();
        let path = world.path("sam-cert.pub");
        std::fs::write(&path, cert).unwrap();
        let listing = ssh_keygen_list(&path);
        listing.lines().find(|l| l.contains("Public key:")).unwrap().split_whitespace().last().unwrap().to_owned()
    };
    assert_eq!(certified_key(&world), fingerprint(&general));
    world.sshca_ok(&["sign", "-e", "staging", "-u", "sam", "--upload", "-p", pub_path(&specific).to_str().unwrap()]);
    assert_eq!(certified_key(&world), fingerprint(&specific));

    let output = world.sshca(&["sign", "--local", "-e", "staging", "-u", "nobody", "-r", "x"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no public key for user \"nobody\""));
}

on_both_s3_servers!(end_to_end_login, key_types, concurrent_signers, public_key_cache);
