//! `get_key` on the real servers: it installs a certificate issued by the sign path next to the
//! right key, OpenSSH then uses it by itself, ssh-agent gets it, and every refusal leaves the
//! ssh directory exactly as it was.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sshca_tests::*;

const USER: &str = "jane";

/// A temporary ssh directory holding keys of several types, one passphrase-protected, plus files
/// that are not keys.
fn ssh_dir(world: &World) -> PathBuf {
    let dir = world.path("ssh");
    std::fs::create_dir(&dir).unwrap();
    keygen(&dir, "id_ed25519", "ed25519", None, "");
    keygen(&dir, "id_ecdsa_staging", "ecdsa", Some(256), "");
    keygen(&dir, "id_rsa", "rsa", Some(3072), "");
    let locked = keygen(&dir, "id_locked", "ed25519", None, "correct horse");
    std::fs::remove_file(pub_path(&locked)).unwrap();
    std::fs::write(
        dir.join("known_hosts"),
        "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
    )
    .unwrap();
    std::fs::write(dir.join("config"), "Host *\n  ServerAliveInterval 30\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a key\n").unwrap();
    dir
}

/// Every file of the directory with its bytes and mode.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode();
            let bytes = std::fs::read(&path).unwrap_or_default();
            (path.file_name().unwrap().to_string_lossy().into_owned(), (bytes, mode))
        })
        .collect()
}

fn sign(world: &World, environment: &str, public_key: &Path, extra: &[&str]) -> String {
    let mut args = vec!["sign", "--local", "-e", environment, "-u", USER, "-r", "get_key test", "-p", public_key.to_str().unwrap()];
    args.extend_from_slice(extra);
    world.sshca_ok(&args).trim().to_owned()
}

fn get_key(world: &World, url: &str, dir: &Path, extra: &[&str]) -> Output {
    world.command("get_key").arg(url).arg("--ssh-dir").arg(dir).args(extra).output().expect("run get_key")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A presigned GET of `object` made by the test itself, with its own expiry.
fn presign(world: &World, object: &str, expires: Duration) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = world.s3().await;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires).unwrap();
        s3.get_object().bucket(&world.bucket).key(object).presigned(config).await.unwrap().uri().to_string()
    })
}

/// The object key a path-style download link points at (`…/<bucket>/<key>?…`).
fn object_key(world: &World, url: &str) -> String {
    let path = url.split('?').next().unwrap();
    let marker = format!("/{}/", world.bucket);
    path.split_once(&marker).expect("path-style URL").1.to_owned()
}

fn installs_next_to_the_right_key(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy"]);
    let dir = ssh_dir(&world);
    let key = dir.join("id_ecdsa_staging");
    let sshd = Sshd::start(&ca, &["deploy"], "");

    let url = sign(&world, "staging", &pub_path(&key), &[]);
    let before = snapshot(&dir);
    let output = get_key(&world, &url, &dir, &["--no-agent"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("id_ecdsa_staging-cert.pub") && stdout.contains("deploy") && stdout.contains("jane#1"), "{stdout}");

    let after = snapshot(&dir);
    let added: Vec<_> = after.keys().filter(|name| !before.contains_key(*name)).collect();
    assert_eq!(added, ["id_ecdsa_staging-cert.pub"], "get_key wrote something else");
    assert!(before.iter().all(|(name, content)| after.get(name) == Some(content)), "get_key changed an existing file");
    assert_eq!(after["id_ecdsa_staging-cert.pub"].1 & 0o777, 0o644);
    assert!(ssh_keygen_list(&cert_path(&key)).contains("Key ID: \"jane#1\""));

    // OpenSSH finds <key>-cert.pub by itself: the command line names only the key.
    assert!(sshd.login_with(&key), "refused: {}", sshd.log());

    // the same link again changes nothing
    let again = get_key(&world, &url, &dir, &["--no-agent"]);
    assert!(again.status.success() && String::from_utf8_lossy(&again.stdout).contains("nothing changed"), "{}", stderr(&again));
    assert_eq!(snapshot(&dir), after);

    // a newer certificate keeps the older, still valid one as a backup; --force does not
    let newer = sign(&world, "staging", &pub_path(&key), &[]);
    let output = get_key(&world, &newer, &dir, &["--no-agent", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["serial"], 2);
    assert_eq!(report["action"], "installed");
    let backup = PathBuf::from(report["backup"].as_str().expect("a backup"));
    assert_eq!(std::fs::read(&backup).unwrap(), after["id_ecdsa_staging-cert.pub"].0);
    let newest = sign(&world, "staging", &pub_path(&key), &[]);
    let output = get_key(&world, &newest, &dir, &["--no-agent", "--force", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["backup"].is_null(), "{report}");
    assert!(sshd.login_with(&key), "refused after renewal: {}", sshd.log());
    assert!(!snapshot(&dir).keys().any(|name| name.ends_with(".tmp")), "a temporary file was left");

    // a passphrase-protected key whose .pub was removed is still found
    let locked = dir.join("id_locked");
    let locked_pub = world.path("id_locked.pub");
    let output = Command::new("ssh-keygen").args(["-y", "-P", "correct horse", "-f"]).arg(&locked).output().unwrap();
    std::fs::write(&locked_pub, &output.stdout).unwrap();
    let url = sign(&world, "staging", &locked_pub, &[]);
    let output = get_key(&world, &url, &dir, &["--no-agent"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(cert_path(&locked).exists());
    assert!(!pub_path(&locked).exists());
}

fn adds_to_ssh_agent(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy"]);
    let dir = ssh_dir(&world);
    let key = dir.join("id_ed25519");
    let agent = Agent::start(world.dir.path());
    let sshd = Sshd::start(&ca, &["deploy"], "");

    for round in 1..=2 {
        let url = sign(&world, "staging", &pub_path(&key), &[]);
        let output = world.command("get_key").arg(&url).arg("--ssh-dir").arg(&dir).env("SSH_AUTH_SOCK", &agent.socket).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(String::from_utf8_lossy(&output.stdout).contains("added to ssh-agent for"), "{}", String::from_utf8_lossy(&output.stdout));
        let listed = agent.list();
        let certs: Vec<_> = listed.lines().filter(|l| l.contains("CERT")).collect();
        assert_eq!(certs.len(), 1, "round {round}: the agent should hold exactly the newest certificate: {listed}");
        assert!(certs[0].contains(&format!("jane#{round}")), "{listed}");
    }

    // log in through the agent alone: no key file on the command line, no default keys
    let empty_home = world.path("home");
    std::fs::create_dir(&empty_home).unwrap();
    let output = sshd
        .ssh()
        .env("HOME", &empty_home)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .args(["-o", &format!("IdentityAgent={}", agent.socket.display())])
        .arg(format!("{}@127.0.0.1", current_user()))
        .arg("echo via-agent")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("via-agent"), "{} {}", stderr(&output), sshd.log());
}

fn refusals_leave_the_ssh_dir_untouched(server: S3Server) {
    let world = World::new(server);
    let ca = world.init("staging", &["--principals", "deploy"]);
    world.init("other", &["--principals", "deploy"]);
    let dir = ssh_dir(&world);
    let key = dir.join("id_ed25519");
    let stranger = keygen(world.dir.path(), "stranger", "ed25519", None, "");

    let expiring = sign(&world, "staging", &pub_path(&key), &["-t", "+2s"]);
    let expiring_object = object_key(&world, &expiring);
    let good = sign(&world, "staging", &pub_path(&key), &[]);
    let tampered = {
        let (head, signature) = good.rsplit_once("X-Amz-Signature=").unwrap();
        let flipped: String = signature.chars().rev().collect();
        format!("{head}X-Amz-Signature={flipped}")
    };
    let public_key_link = presign(&world, &format!("keys/staging/{USER}.pub"), Duration::from_secs(600));
    let no_such_key = sign(&world, "staging", &pub_path(&stranger), &[]);
    let other_ca = sign(&world, "other", &pub_path(&key), &[]);
    let missing = presign(&world, "certs/staging/jane/nothing-cert.pub", Duration::from_secs(600));
    std::thread::sleep(Duration::from_secs(3));
    // the certificate behind `expiring` has expired; a fresh link to it tests the certificate check
    let expired_certificate = presign(&world, &expiring_object, Duration::from_secs(600));

    let pinned = ["--ca-key", ca.as_str()];
    let cases: Vec<(&str, &str, &[&str], &str)> = vec![
        ("expired link", &expiring, &[], "this link has expired"),
        ("tampered link", &tampered, &[], "changed or damaged"),
        ("link to a public key", &public_key_link, &[], "holds a public key, not a certificate"),
        ("link to nothing", &missing, &[], "nothing is stored at this link"),
        ("no matching private key", &no_such_key, &[], "no private key in"),
        ("another CA while pinned", &other_ca, &pinned, "not a CA you trust"),
        ("expired certificate", &expired_certificate, &[], "the certificate expired at"),
        ("not a link", "ftp://example.com/x", &[], "not an http"),
    ];
    let before = snapshot(&dir);
    for (what, url, extra, expected) in cases {
        let mut args = vec!["--no-agent"];
        args.extend_from_slice(extra);
        let output = get_key(&world, url, &dir, &args);
        assert!(!output.status.success(), "{what}: accepted");
        assert!(stderr(&output).contains(expected), "{what}: expected {expected:?} in {:?}", stderr(&output));
        assert_eq!(snapshot(&dir), before, "{what}: the ssh directory changed");
    }

    // the pin accepts its own CA's certificate, also from a file
    let pin_file = world.path("trusted_ca.pub");
    std::fs::write(&pin_file, format!("# staging\n{ca}\n")).unwrap();
    let output = get_key(&world, &good, &dir, &["--no-agent", "--ca-key", pin_file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));

    // a symlinked certificate path is refused, and nothing is written through it
    let decoy = world.path("decoy");
    std::fs::write(&decoy, "untouched").unwrap();
    std::fs::remove_file(cert_path(&key)).unwrap();
    std::os::unix::fs::symlink(&decoy, cert_path(&key)).unwrap();
    let output = get_key(&world, &good, &dir, &["--no-agent"]);
    assert!(!output.status.success() && stderr(&output).contains("symbolic link"), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "untouched");
}

/// A hostile HTTP server on loopback: every request gets `respond`'s answer.
fn hostile_server(respond: fn(tiny_http::Request)) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let address = server.server_addr().to_ip().unwrap();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            std::thread::spawn(move || respond(request));
        }
    });
    format!("http://{address}/cert")
}

/// Links that redirect or never end, and key directories with unsafe permissions: refused with a
/// message that says what to do, nothing written anywhere, no partial file.
#[test]
fn hostile_links_and_directories() {
    let world = World::new(S3Server::SeaweedFs);
    world.init("staging", &["--principals", "deploy"]);
    let dir = ssh_dir(&world);
    let key = dir.join("id_ed25519");
    let good = sign(&world, "staging", &pub_path(&key), &[]);

    let redirect = hostile_server(|request| {
        let location = tiny_http::Header::from_bytes("Location", "http://127.0.0.1:1/elsewhere").unwrap();
        let _ = request.respond(tiny_http::Response::empty(302).with_header(location));
    });
    let five_gib = hostile_server(|request| {
        let zeros = std::io::Read::take(std::io::repeat(b'A'), 5 << 30);
        let _ = request.respond(tiny_http::Response::new(200.into(), vec![], zeros, Some(5 << 30), None));
    });
    let endless = hostile_server(|request| {
        let _ = request.respond(tiny_http::Response::new(200.into(), vec![], std::io::repeat(b'A'), None, None));
    });
    let before = snapshot(&dir);
    let started = Instant::now();
    for (what, url, expected) in [
        ("redirect", &redirect, "redirects elsewhere (HTTP 302 to http://127.0.0.1:1/elsewhere): refusing"),
        ("5 GiB body", &five_gib, "larger than 65536 bytes"),
        ("endless chunked body", &endless, "larger than 65536 bytes"),
    ] {
        let output = get_key(&world, url, &dir, &["--no-agent"]);
        assert!(!output.status.success(), "{what}: accepted");
        assert!(stderr(&output).contains(expected), "{what}: expected {expected:?} in {}", stderr(&output));
        assert!(snapshot(&dir) == before, "{what}: the ssh directory changed");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "the hostile bodies were read far beyond the limit");

    // a private key others can read (ssh would ignore it), and a key directory anyone can write
    // to: get_key says how to fix each
    let unsafe_modes = [
        (&key, 0o644, 0o600, format!("run `chmod 600 {}`", key.display())),
        (&dir, 0o777, 0o700, format!("run `chmod go-w {}`", dir.display())),
    ];
    for (path, unsafe_mode, safe_mode, fix) in unsafe_modes {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(unsafe_mode)).unwrap();
        let before = snapshot(&dir);
        let output = get_key(&world, &good, &dir, &["--no-agent"]);
        assert!(stderr(&output).contains(&fix), "{}", stderr(&output));
        assert!(snapshot(&dir) == before, "the ssh directory changed");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(safe_mode)).unwrap();
    }
    let before = snapshot(&dir);

    // a dangling symlink where the certificate goes, pointing outside the ssh directory
    let outside = world.path("outside-cert.pub");
    std::os::unix::fs::symlink(&outside, cert_path(&key)).unwrap();
    let output = get_key(&world, &good, &dir, &["--no-agent"]);
    assert!(stderr(&output).contains("symbolic link"), "{}", stderr(&output));
    assert!(!outside.exists(), "written through the symlink");
    std::fs::remove_file(cert_path(&key)).unwrap();

    // all fixed: it installs, and leaves no temporary file behind
    let output = get_key(&world, &good, &dir, &["--no-agent"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let names: Vec<String> = snapshot(&dir).into_keys().collect();
    let expected: Vec<String> =
        before.into_keys().chain(["id_ed25519-cert.pub".to_owned()]).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert_eq!(names, expected, "only the certificate was added");
}

on_both_s3_servers!(installs_next_to_the_right_key, adds_to_ssh_agent, refusals_leave_the_ssh_dir_untouched);

/// `get_key` installs user certificates only: a host certificate's link is refused, and nothing
/// lands next to the key.
#[test]
fn a_host_certificate_link_is_refused() {
    let world = World::new(S3Server::LocalStack);
    world.init("staging", &["--principals", "deploy", "--allowed-host-principals", "*.example.com"]);
    let dir = world.path("ssh");
    std::fs::create_dir(&dir).unwrap();
    let key = keygen(&dir, "id_ed25519", "ed25519", None, "");
    let url = world.sshca_ok(&[
        "sign",
        "--local",
        "-e",
        "staging",
        "--host",
        "-n",
        "web1.example.com",
        "-r",
        "host",
        "-p",
        pub_path(&key).to_str().unwrap(),
    ]);
    let output = get_key(&world, url.trim(), &dir, &["--no-agent"]);
    assert!(!output.status.success(), "a host certificate was installed as a user's");
    assert!(stderr(&output).contains("this is a host certificate"), "{}", stderr(&output));
    assert!(!cert_path(&key).exists());
}
