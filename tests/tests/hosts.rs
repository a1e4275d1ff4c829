//! Host certificates and CA rotation with real OpenSSH: clients that know only the host CA
//! connect without a prompt; rotation keeps old and new certificates working during the overlap.

use std::path::Path;
use std::process::Output;

use sshca_tests::*;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ran(output: &Output, marker: &str) -> bool {
    String::from_utf8_lossy(&output.stdout).contains(marker)
}

fn sign_user(world: &World, environment: &str, key: &Path) {
    let url =
        world.sshca_ok(&["sign", "--local", "-e", environment, "-u", "jane", "-r", "hosts test", "-p", pub_path(key).to_str().unwrap()]);
    std::fs::write(cert_path(key), download(url.trim()).unwrap()).unwrap();
}

fn host_certificates(server: S3Server) {
    let world = World::new(server);
    let user_ca = world.init("staging", &["--principals", "deploy", "--allowed-host-principals", "*.example.com"]);
    world.init("other", &["--principals", "deploy", "--allowed-host-principals", "*.example.com"]);
    let user_key = keygen(world.dir.path(), "id_user", "ed25519", None, "");
    sign_user(&world, "staging", &user_key);

    // the host gets its certificate the way its systemd timer would
    let host_key = keygen(world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");
    let renew = |extra: &[&str]| {
        let mut args =
            vec!["renew-host", "--local", "-e", "staging", "-n", "web1.example.com", "-k", host_key.to_str().unwrap(), "-t", "30d"];
        args.extend_from_slice(extra);
        world.sshca(&args)
    };
    let output = renew(&[]);
    assert!(output.status.success() && stderr(&output).contains("renewed"), "{}", stderr(&output));
    let listing = ssh_keygen_list(&cert_path(&host_key));
    assert!(listing.contains("host certificate") && listing.contains("web1.example.com"), "{listing}");
    let output = renew(&[]);
    assert!(output.status.success() && stderr(&output).contains("not due"), "{}", stderr(&output));
    let output = renew(&["--within", "31d"]);
    assert!(output.status.success() && stderr(&output).contains("renewed"), "{}", stderr(&output));
    assert!(ssh_keygen_list(&cert_path(&host_key)).contains("Serial: 3"), "the due renewal issued a new certificate");

    let sshd = Sshd::start_with_host_certificate(&user_ca, &["deploy"], &host_key);
    let known_hosts = world.path("known_hosts");
    let lines = world.sshca_ok(&["config", "staging", "--only", "known-hosts", "--host-pattern", "*.example.com"]);
    assert!(lines.starts_with("@cert-authority *.example.com "), "{lines}");
    std::fs::write(&known_hosts, &lines).unwrap();
    let connect = |name: &str| sshd.echo_checking_host(&known_hosts, name, &user_key);
    let output = connect("web1.example.com");
    assert!(ran(&output, "host-trusted"), "{} {}", stderr(&output), sshd.log());
    assert!(
        !std::fs::read_to_string(&known_hosts).unwrap().contains("[127.0.0.1]"),
        "the host key was learnt instead of trusted via the CA"
    );

    // a name the certificate does not carry
    let output = connect("db1.example.com");
    assert!(!ran(&output, "host-trusted"), "a host certificate for another name was accepted");
    assert!(stderr(&output).contains("Host key verification failed") || stderr(&output).contains("certificate"), "{}", stderr(&output));

    // a client that trusts another environment's host CA
    let other = world.sshca_ok(&["config", "other", "--only", "known-hosts", "--host-pattern", "*.example.com"]);
    std::fs::write(&known_hosts, other).unwrap();
    assert!(!ran(&connect("web1.example.com"), "host-trusted"), "another host CA was accepted");

    // policy: names outside the allowed domains
    let output = world.sshca(&[
        "sign",
        "--local",
        "-e",
        "staging",
        "--host",
        "-n",
        "web1.evil.com",
        "-r",
        "x",
        "-p",
        pub_path(&host_key).to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("principal \"web1.evil.com\" is not allowed"), "{}", stderr(&output));

    // what `sshca config` prints for servers
    let all = world.sshca_ok(&["config", "staging"]);
    for line in ["TrustedUserCAKeys ", "HostCertificate ", "RevokedKeys ", "AuthorizedPrincipalsFile ", &user_ca] {
        assert!(all.contains(line), "{line:?} missing from:\n{all}");
    }
}

fn ca_fingerprint(cert: &Path) -> String {
    let listing = ssh_keygen_list(cert);
    listing.lines().find(|l| l.contains("Signing CA:")).unwrap().split_whitespace().nth(3).unwrap().to_owned()
}

fn ca_rotation(server: S3Server) {
    let world = World::new(server);
    let old_ca = world.init("staging", &["--principals", "deploy"]);
    let (old_key, new_key) =
        (keygen(world.dir.path(), "id_old", "ed25519", None, ""), keygen(world.dir.path(), "id_new", "ed25519", None, ""));

    world.sshca_ok(&["rotate", "staging", "--role", "user", "--create-next"]);
    let overlap = world.sshca_ok(&["config", "staging", "--only", "user-ca-keys"]);
    assert_eq!(overlap.lines().count(), 2, "{overlap}");
    assert!(overlap.contains(old_ca.split(' ').nth(1).unwrap()), "{overlap}");
    // announced, not signing yet
    sign_user(&world, "staging", &old_key);
    let old_fingerprint = ca_fingerprint(&cert_path(&old_key));

    let sshd = Sshd::start(&overlap, &["deploy"], "");
    assert!(sshd.login_with(&old_key), "{}", sshd.log());
    world.sshca_ok(&["rotate", "staging", "--role", "user", "--promote"]);
    sign_user(&world, "staging", &new_key);
    assert_ne!(ca_fingerprint(&cert_path(&new_key)), old_fingerprint, "the promoted key did not sign");
    assert!(sshd.login_with(&new_key), "{}", sshd.log());
    assert!(sshd.login_with(&old_key), "the old certificate must keep working during the overlap");
    let blobs = |keys: &str| {
        let mut blobs: Vec<String> = keys.lines().map(|l| l.split(' ').nth(1).unwrap().to_owned()).collect();
        blobs.sort();
        blobs
    };
    assert_eq!(
        blobs(&world.sshca_ok(&["config", "staging", "--only", "user-ca-keys"])),
        blobs(&overlap),
        "promotion changed the trusted set"
    );

    let refused = world.sshca(&["rotate", "staging", "--role", "user", "--promote"]);
    assert!(!refused.status.success() && stderr(&refused).contains("no next key"), "{}", stderr(&refused));

    world.sshca_ok(&["rotate", "staging", "--role", "user", "--retire"]);
    let after = world.sshca_ok(&["config", "staging", "--only", "user-ca-keys"]);
    assert_eq!(after.lines().count(), 1, "{after}");
    drop(sshd);
    let sshd = Sshd::start(&after, &["deploy"], "");
    assert!(sshd.login_with(&new_key), "{}", sshd.log());
    assert!(!sshd.login_with(&old_key), "a certificate of the retired CA was accepted");
}

on_both_s3_servers!(host_certificates, ca_rotation);
