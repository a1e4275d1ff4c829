//! Who holds access: `sshca certs` tells an active certificate from a revoked and an expired one,
//! from the audit trail and the revocation log; `get_key status` shows what is installed (with
//! ssh-agent and the host KRL) and exits 0 only when every certificate is good; `get_key logout`
//! removes the certificates and their agent entries and leaves the private keys.

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sshca_tests::*;

const ENV: &str = "prod";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Signs `key` for `user` (`--local`, as the admin) and writes the certificate next to it; the serial.
fn sign(world: &World, user: &str, key: &Path, expires: &str) -> u64 {
    let out = world.sshca_ok(
        &["sign", "--local", "--json", "-e", ENV, "-u", user, "-r", "holdings test", "-t", expires, "-p"]
            .iter()
            .copied()
            .chain([pub_path(key).to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    let response: Value = serde_json::from_str(&out).unwrap();
    std::fs::write(cert_path(key), response["certificate"].as_str().unwrap()).unwrap();
    response["serial"].as_u64().unwrap()
}

#[test]
fn certificates_held_installed_and_taken_away() {
    let world = World::new(S3Server::LocalStack);
    world.init(ENV, &["--principals", "deploy"]);
    let ssh_dir = world.path("ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let active_key = keygen(&ssh_dir, "id_ed25519_prod", "ed25519", None, "");
    let expired_key = keygen(&ssh_dir, "id_old_prod", "ed25519", None, "");
    let revoked_key = keygen(world.dir.path(), "revoked", "ed25519", None, "");
    let expired = sign(&world, "carol", &expired_key, "+2s");
    let active = sign(&world, "alice", &active_key, "+1h");
    let revoked = sign(&world, "bob", &revoked_key, "+1h");
    world.sshca_ok(&["revoke", ENV, "--serial", &revoked.to_string(), "-r", "laptop stolen"]);
    std::thread::sleep(std::time::Duration::from_secs(3));

    let listed = world.sshca_ok(&["certs", ENV]);
    let status_of = |serial: u64| {
        listed
            .lines()
            .find(|line| line.contains(&format!("serial {serial} ")))
            .unwrap_or_else(|| panic!("{serial}: {listed}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!([status_of(active), status_of(revoked), status_of(expired)], ["active", "revoked", "expired"], "{listed}");
    let now: Value = serde_json::from_str(&world.sshca_ok(&["certs", ENV, "--active", "--json"])).unwrap();
    let serials: Vec<u64> = now.as_array().unwrap().iter().map(|c| c["serial"].as_u64().unwrap()).collect();
    assert_eq!(serials, [active], "who has access right now: {now}");
    assert_eq!(world.sshca_ok(&["certs", ENV, "--user", "bob"]).lines().count(), 1);

    // what is installed, with the agent holding the active one
    let agent = Agent::start(world.dir.path());
    let add = std::process::Command::new("ssh-add").arg(&active_key).env("SSH_AUTH_SOCK", &agent.socket).output().unwrap();
    assert!(add.status.success(), "{}", stderr(&add));
    let status = |extra: &[&str]| {
        world
            .command("get_key")
            .args(["status", "--ssh-dir", ssh_dir.to_str().unwrap()])
            .args(extra)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .unwrap()
    };
    let both = status(&["--json"]);
    assert!(!both.status.success(), "an expired certificate is installed: not all good");
    let shown: Value = serde_json::from_slice(&both.stdout).unwrap();
    let states: Vec<(&str, u64, bool)> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["state"].as_str().unwrap(), c["serial"].as_u64().unwrap(), c["in_agent"].as_bool().unwrap()))
        .collect();
    assert_eq!(states, [("good", active, true), ("expired", expired, false)], "{shown} {}", agent.list());
    assert!(shown.as_array().unwrap().iter().all(|c| c["environment"] == "prod"), "{shown}");
    std::fs::remove_file(cert_path(&expired_key)).unwrap();
    let good = status(&["-e", ENV]);
    assert!(good.status.success(), "{}{}", String::from_utf8_lossy(&good.stdout), stderr(&good));
    assert!(String::from_utf8_lossy(&good.stdout).starts_with("good  "), "{}", String::from_utf8_lossy(&good.stdout));
    assert!(!status(&["--min-validity", "2h"]).status.success(), "an hour left is not good for two");

    let logout = world
        .command("get_key")
        .args(["logout", "--ssh-dir", ssh_dir.to_str().unwrap()])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(logout.status.success(), "{}", stderr(&logout));
    assert!(String::from_utf8_lossy(&logout.stdout).contains("(1 agent entries)"), "{}", String::from_utf8_lossy(&logout.stdout));
    assert!(!cert_path(&active_key).exists() && active_key.exists() && expired_key.exists(), "certificates gone, keys kept");
    assert!(!agent.list().contains("CERT"), "the agent holds no certificate: {}", agent.list());
}
