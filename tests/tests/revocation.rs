//! Revocation with real OpenSSH: `ssh-keygen -Q` and an sshd with `RevokedKeys` agree with what
//! `sshca revoke` recorded; concurrent revocations all land; bad input is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sshca_tests::*;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn issue(world: &World, user: &str, name: &str) -> PathBuf {
    let key = keygen(world.dir.path(), name, "ed25519", None, "");
    let url =
        world.sshca_ok(&["sign", "--local", "-e", "staging", "-u", user, "-r", "revocation test", "-p", pub_path(&key).to_str().unwrap()]);
    std::fs::write(cert_path(&key), download(url.trim()).unwrap()).unwrap();
    key
}

fn fetch_krl(world: &World) -> PathBuf {
    let path = world.path("revoked.krl");
    world.sshca_ok(&["krl", "staging", "-o", path.to_str().unwrap()]);
    path
}

/// `ssh-keygen -Q`: true when the KRL revokes the certificate.
fn revoked(krl: &Path, key: &Path) -> bool {
    let output = Command::new("ssh-keygen").arg("-Q").arg("-f").arg(krl).arg(cert_path(key)).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("REVOKED") || text.contains(": ok"), "ssh-keygen -Q: {text} {}", stderr(&output));
    text.contains("REVOKED")
}

fn revocation_records(world: &World) -> usize {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(world.objects()).iter().filter(|k| k.starts_with("audit/staging/revocations/")).count()
}

fn revoke_and_refuse(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy"]);
    world.init("other", &["--principals", "deploy"]);
    let jane: Vec<PathBuf> = (1..=4).map(|n| issue(&world, "jane", &format!("jane{n}"))).collect();
    let bob: Vec<PathBuf> = (1..=2).map(|n| issue(&world, "bob", &format!("bob{n}"))).collect();

    // nothing revoked yet: an empty KRL that sshd accepts
    let krl = fetch_krl(&world);
    assert!(jane.iter().all(|k| !revoked(&krl, k)));

    world.sshca_ok(&["revoke", "staging", "--serial", "2", "-r", "laptop stolen"]);
    world.sshca_ok(&["revoke", "staging", "--key-id", "jane#3", "-r", "key id"]);
    world.sshca_ok(&["revoke", "staging", "--public-key", pub_path(&jane[3]).to_str().unwrap(), "-r", "key compromised"]);
    world.sshca_ok(&["revoke", "staging", "--user", "bob", "-r", "left the company"]);
    // a revoked key gets no new certificate (each sshca process is a fresh container: no stale cache)
    let again = world.sshca(&["sign", "--local", "-e", "staging", "-u", "jane", "-r", "x", "-p", pub_path(&jane[3]).to_str().unwrap()]);
    assert!(!again.status.success(), "a revoked key was signed again");
    assert!(stderr(&again).contains("PolicyViolation: not allowed by policy: the key SHA256:"), "{}", stderr(&again));
    assert!(stderr(&again).contains("is revoked in environment \"staging\": make a new key"), "{}", stderr(&again));
    let krl = fetch_krl(&world);
    assert_eq!([&jane[..], &bob[..]].concat().iter().map(|k| revoked(&krl, k)).collect::<Vec<_>>(), [false, true, true, true, true, true]);
    let listing = Command::new("ssh-keygen").args(["-Q", "-l", "-f"]).arg(&krl).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for expected in ["serial: 2\n", "serial: 5-6", "id: jane#3", "# ssh-ed25519"] {
        assert!(listing.contains(expected), "{expected:?} not in:\n{listing}");
    }

    // sshd with RevokedKeys: the revoked certificate is refused, its sibling still logs in
    let sshd = Sshd::start(&ca, &["deploy"], &format!("RevokedKeys {}", krl.display()));
    assert!(!sshd.login_with(&jane[1]), "a revoked certificate logged in");
    assert!(sshd.login_with(&jane[0]), "the sibling certificate was refused: {}", sshd.log());

    // revoking twice: idempotent, one record
    let before = revocation_records(&world);
    let again = world.sshca(&["revoke", "staging", "--serial", "2", "-r", "again"]);
    assert!(again.status.success() && stderr(&again).contains("already revoked"), "{}", stderr(&again));
    assert_eq!(revocation_records(&world), before);

    // bad input
    let cases: [(&[&str], &str); 4] = [
        (&["revoke", "staging", "--serial", "999", "-r", "x"], "never issued"),
        (&["revoke", "other", "--serial", "3", "-r", "x"], "never issued in environment \"other\""),
        (&["revoke", "staging", "--serial", "1"], "a reason is required"),
        (&["revoke", "staging", "--user", "nobody", "-r", "x"], "no unexpired certificate"),
    ];
    for (args, expected) in cases {
        let output = world.sshca(args);
        assert!(!output.status.success(), "{args:?} accepted");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
    assert_eq!(revocation_records(&world), before, "a refused revocation was recorded");

    // the audit trail shows issuances and revocations, newest first
    let audit = world.sshca_ok(&["audit", "staging", "--json"]);
    let events: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let events = events.as_array().unwrap();
    assert_eq!(events.iter().filter(|e| e["event"] == "issued").count(), 6);
    assert_eq!(events.iter().filter(|e| e["event"] == "revoked").count(), 4);
    assert_eq!(events[0]["event"], "revoked");
    let shown = world.sshca_ok(&["show", "staging", "2"]);
    assert!(shown.starts_with("ssh-ed25519-cert-v01@openssh.com ") && shown.contains("\"serial\": 2"), "{shown}");
}

/// Concurrent revocations all land: each has its record and the KRL holds them all.
fn concurrent_revocations(server: S3Server) {
    let world = World::new(server);
    world.init("staging", &["--principals", "deploy"]);
    let keys: Vec<PathBuf> = (1..=6).map(|n| issue(&world, "jane", &format!("k{n}"))).collect();
    let children: Vec<_> = (1..=6)
        .map(|serial| {
            world
                .command("sshca")
                .args(["revoke", "staging", "--serial", &serial.to_string(), "-r", "concurrent"])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(revocation_records(&world), 6);
    let krl = fetch_krl(&world);
    assert!(keys.iter().all(|k| revoked(&krl, k)), "a concurrent revocation was lost");
}

/// 1,000 revoked serials: the KRL stays small and quick to build (numbers printed for the notes).
fn thousand_serials(server: S3Server) {
    let world = World::new(server);
    world.init("staging", &["--principals", "deploy"]);
    let key = issue(&world, "jane", "k");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // pretend 1,000 certificates were issued: the counter is what `revoke` checks serials against
        world
            .s3()
            .await
            .put_object()
            .bucket(&world.bucket)
            .key("serial/staging.json")
            .body(br#"{"next":1001}"#.to_vec().into())
            .send()
            .await
            .unwrap();
    });
    let serials: Vec<String> = (1..=1000).map(|s| s.to_string()).collect();
    let started = Instant::now();
    world.sshca_ok(&["revoke", "staging", "--serial", &serials.join(","), "-r", "mass revocation"]);
    let elapsed = started.elapsed();
    let krl = fetch_krl(&world);
    let size = std::fs::metadata(&krl).unwrap().len();
    eprintln!("1000 revoked serials ({server:?}): KRL {size} bytes, `sshca revoke` took {elapsed:?}");
    assert!(revoked(&krl, &key));
    assert!(size < 20_000, "KRL of {size} bytes");
}

on_both_s3_servers!(revoke_and_refuse, concurrent_revocations, thousand_serials);
