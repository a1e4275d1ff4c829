//! Fleet health with real OpenSSH: `sshca doctor` against real sshd configurations (good, and
//! each broken in one way), and `sshca metrics` over a real sshd's log after real logins.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use sshca_tests::fleet::{Server, ENV, HOST};
use sshca_tests::*;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The doctor finds exactly `check` wrong, says what and the fix, and exits non-zero.
fn finds_only(server: &Server, config: &str, extra: &[&str], check: &str, what: &str, fix: &str) {
    let (output, stdout) = server.doctor(config, extra);
    assert_eq!(output.status.code(), Some(1), "{check}: {stdout}{}", stderr(&output));
    let failed: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{check}: exactly the planted problem: {stdout}");
    assert!(failed[0].contains(check) && failed[0].contains(what), "{check}: expected {what:?} in {stdout}");
    let fix_line = stdout.lines().find(|l| l.trim_start().starts_with("fix:")).unwrap();
    assert!(fix_line.contains(fix), "{check}: expected the fix {fix:?} in {stdout}");
}

#[test]
fn doctor_reports_exactly_the_planted_problem() {
    let server = Server::on(World::new(S3Server::LocalStack));
    let (output, stdout) = server.doctor(&server.config(&[]), &[]);
    assert!(output.status.success(), "the healthy server: {stdout}{}", stderr(&output));
    assert!(stdout.starts_with("sshca doctor staging: healthy"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.trim_start().starts_with("ok")).count(), 5, "{stdout}");

    finds_only(
        &server,
        &server.config(&[("TrustedUserCAKeys", "")]),
        &[],
        "TrustedUserCAKeys",
        "not set",
        "sshca config staging --only user-ca-keys",
    );
    finds_only(
        &server,
        &server.config(&[("AuthorizedKeysFile", "AuthorizedKeysFile .ssh/authorized_keys")]),
        &[],
        "AuthorizedKeysFile",
        "plain keys listed there are accepted",
        "AuthorizedKeysFile none",
    );
    finds_only(
        &server,
        &server.config(&[]),
        &["--at", "+31d", "--krl-max-age", "60d"],
        "HostCertificate",
        "expired 1d",
        "sshca renew-host -e staging -n web1.example.com",
    );
    // and a host certificate that really expired: three seconds of validity, four seconds ago
    let short_lived = server.world.path("short_host_key");
    std::fs::copy(&server.host_key, &short_lived).unwrap();
    std::fs::copy(pub_path(&server.host_key), pub_path(&short_lived)).unwrap();
    server.world.sshca_ok(&["renew-host", "--local", "-e", ENV, "-n", HOST, "-k", short_lived.to_str().unwrap(), "-t", "3s"]);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let expired_line = format!("HostCertificate {}", cert_path(&short_lived).display());
    finds_only(
        &server,
        &server.config(&[("HostCertificate", &expired_line)]),
        &[],
        "HostCertificate",
        "expired",
        "sshca renew-host -e staging -n web1.example.com",
    );
    finds_only(&server, &server.config(&[]), &["--within", "40d"], "HostCertificate", "within the renewal window", "sshca renew-host");
    finds_only(
        &server,
        &server.config(&[("RevokedKeys", "RevokedKeys {dir}/missing.krl")]),
        &[],
        "RevokedKeys",
        "cannot be read",
        "sshca krl staging -o",
    );
    let stale = Command::new("touch").args(["-d", "3 hours ago"]).arg(&server.krl).status().unwrap();
    assert!(stale.success());
    finds_only(&server, &server.config(&[]), &[], "RevokedKeys", "last refreshed 3h", "sshca krl staging -o");
    server.refresh();

    // a host certificate from another CA
    let other_ca = keygen(server.world.dir.path(), "other_ca", "ed25519", None, "");
    let foreign = server.world.path("foreign_host_key");
    std::fs::copy(&server.host_key, &foreign).unwrap();
    std::fs::copy(pub_path(&server.host_key), pub_path(&foreign)).unwrap();
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&other_ca)
        .args(["-h", "-I", "foreign", "-n", HOST, "-V", "-5m:+30d"])
        .arg(pub_path(&foreign))
        .status()
        .unwrap();
    assert!(signed.success());
    let foreign_line = format!("HostCertificate {}", cert_path(&foreign).display());
    finds_only(
        &server,
        &server.config(&[("HostCertificate", &foreign_line)]),
        &[],
        "HostCertificate",
        "signed by another CA",
        "sshca renew-host",
    );

    // a rotation announces a next user CA key this server does not trust yet: promoting it would lock it out
    server.world.sshca_ok(&["rotate", ENV, "--create-next", "--role", "user"]);
    finds_only(
        &server,
        &server.config(&[]),
        &[],
        "TrustedUserCAKeys",
        "lacks the next user CA key",
        "sshca config staging --only user-ca-keys",
    );
    server.refresh();
    let (output, stdout) = server.doctor(&server.config(&[]), &["--json"]);
    assert!(output.status.success(), "after the roll-out: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["healthy"], true, "{report}");

    // offline, with the CA keys from a file
    let keys = server.world.path("ca_keys");
    let known_hosts = server.world.sshca_ok(&["config", ENV, "--only", "known-hosts", "--host-pattern", "*.example.com"]);
    std::fs::write(&keys, std::fs::read_to_string(&server.user_ca_file).unwrap() + &known_hosts).unwrap();
    let sshd = Sshd::with_config("", &["deploy"], Some(&server.host_key), &server.config(&[]));
    let mut offline = Command::new(bin("sshca"));
    offline.args(["doctor", ENV, "--ca-keys", keys.to_str().unwrap(), "-n", HOST, "--sshd-config"]).arg(sshd.config_path());
    let output = offline.env_remove("SSHCA_BUCKET").env("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9").output().unwrap();
    assert!(output.status.success(), "offline: {}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
}

/// Series of a Prometheus text exposition, as a parser reads it: `metric{sorted labels}` → value.
fn scrape(path: &Path) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format");
    scrape
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                other => panic!("unexpected sample {other:?}"),
            };
            (format!("{}{{{}}}", sample.metric, labels.join(",")), value)
        })
        .collect()
}

#[test]
fn metrics_count_real_logins_and_only_new_ones() {
    let server = Server::on(World::new(S3Server::LocalStack));
    let world = &server.world;
    let user = current_user();
    // a second user CA, local, for a certificate sshca would never sign: an expired one
    let local_ca = keygen(world.dir.path(), "local_ca", "ed25519", None, "");
    let trusted = std::fs::read_to_string(&server.user_ca_file).unwrap() + &std::fs::read_to_string(pub_path(&local_ca)).unwrap();
    std::fs::write(&server.user_ca_file, &trusted).unwrap();
    let sign = |name: &str, principal: &str| {
        let key = keygen(world.dir.path(), name, "ed25519", None, "");
        let url = world.sshca_ok(&[
            "sign",
            "--local",
            "-e",
            ENV,
            "-u",
            name,
            "--principal",
            principal,
            "-r",
            "metrics",
            "-p",
            pub_path(&key).to_str().unwrap(),
        ]);
        std::fs::write(cert_path(&key), download(url.trim()).unwrap()).unwrap();
        key
    };
    let good = sign("good", "deploy");
    let wrong_principal = sign("wrong", "other");
    let revoked = sign("revoked", "deploy");
    let serial = ssh_keygen_list(&cert_path(&revoked)).split("Serial: ").nth(1).unwrap().lines().next().unwrap().to_owned();
    world.sshca_ok(&["revoke", ENV, "--serial", &serial, "-r", "metrics test"]);
    server.refresh();
    std::fs::write(&server.user_ca_file, &trusted).unwrap();
    let expired = keygen(world.dir.path(), "expired", "ed25519", None, "");
    let signed = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&local_ca)
        .args(["-I", "old", "-n", "deploy", "-V", "20200101:20200102"])
        .arg(pub_path(&expired))
        .status()
        .unwrap();
    assert!(signed.success());
    let plain = keygen(world.dir.path(), "plain", "ed25519", None, "");
    std::fs::create_dir(world.path("authorized")).unwrap();
    std::fs::copy(pub_path(&plain), world.path("authorized").join(&user)).unwrap();
    let authorized = format!("AuthorizedKeysFile {}/authorized/%u", world.dir.path().display());
    let sshd = Sshd::with_config("", &["deploy"], Some(&server.host_key), &server.config(&[("AuthorizedKeysFile", &authorized)]));

    let logins = [(&good, true), (&good, true), (&wrong_principal, false), (&revoked, false), (&expired, false), (&plain, true)];
    for (key, accepted) in logins {
        assert_eq!(sshd.login_with(key), accepted, "{}: {}", key.display(), sshd.log());
    }
    let output_file = world.path("sshca.prom");
    let metrics = || {
        let output = world
            .command("sshca")
            .args(["metrics", "--log", sshd.log_path().to_str().unwrap(), "--output", output_file.to_str().unwrap(), "--sshd-config"])
            .arg(sshd.config_path())
            .output()
            .unwrap();
        assert!(output.status.success(), "sshca metrics: {}", stderr(&output));
        stderr(&output)
    };
    metrics();
    let sshca_ca = ssh_keygen_list(&cert_path(&good)).split("Signing CA: ").nth(1).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let local_fp =
        ssh_keygen_list(&cert_path(&expired)).split("Signing CA: ").nth(1).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let cert = |ca: &str, result: &str| format!("ssh_cert_auth_total{{ca={ca},principal={user},result={result}}}");
    let samples = scrape(&output_file);
    let expected = [
        (cert(&sshca_ca, "accepted"), 2.0),
        (cert(&sshca_ca, "wrong_principal"), 1.0),
        (cert(&sshca_ca, "revoked"), 1.0),
        (cert(&local_fp, "expired"), 1.0),
        ("ssh_key_auth_total{result=accepted}".to_owned(), 1.0),
    ];
    for (series, value) in &expected {
        assert_eq!(samples.get(series), Some(value), "{series} in {samples:?}");
    }
    let cert_series = samples.keys().filter(|k| k.starts_with("ssh_cert_auth_total")).count();
    assert_eq!(cert_series, 4, "no other certificate outcome: {samples:?}");
    let krl = format!("ssh_revoked_certs_total{{krl={}}}", server.krl.display());
    assert!(samples[&krl] >= 1.0, "{samples:?}");
    let expiry = format!("ssh_ca_cert_expiry_seconds{{certificate={}}}", cert_path(&server.host_key).display());
    assert!((29.0 * 86_400.0..=30.0 * 86_400.0 + 60.0).contains(&samples[&expiry]), "{samples:?}");
    assert!(
        samples.keys().any(|k| k.starts_with("ssh_krl_age_seconds")) && samples.keys().any(|k| k.starts_with("ssh_ca_cert_age_seconds"))
    );

    // the next run reads only what was logged since: one more accepted login
    assert!(sshd.login_with(&good));
    let said = metrics();
    let samples = scrape(&output_file);
    assert_eq!(samples.get(&cert(&sshca_ca, "accepted")), Some(&3.0), "{samples:?}");
    assert_eq!(samples.get(&cert(&sshca_ca, "wrong_principal")), Some(&1.0), "{samples:?}");
    assert_eq!(samples.get("ssh_key_auth_total{result=accepted}"), Some(&1.0), "{samples:?}");
    let new_lines: usize = said.split_whitespace().next().unwrap().parse().unwrap();
    let all_lines = sshd.log().lines().count();
    assert!(new_lines < all_lines / 2, "the second run read {new_lines} of {all_lines} lines: {said}");
    let unchanged = metrics();
    assert!(unchanged.starts_with("0 new log line(s), 0 login(s) counted"), "{unchanged}");
    assert_eq!(scrape(&output_file).get(&cert(&sshca_ca, "accepted")), Some(&3.0));
}

/// `sshca doctor --client` on a user's machine: known_hosts scoped to the environment's hosts,
/// the `Match exec` block, an agent with too many keys, a certificate about to expire.
#[test]
fn client_doctor_finds_what_fails_logins() {
    let world = World::new(S3Server::LocalStack);
    world.init(ENV, &["--principals", "deploy", "--allowed-host-principals", "*.example.com"]);
    let ssh_dir = world.path("ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let doctor = |agent: Option<&Path>, extra: &[&str]| {
        let mut command = world.command("sshca");
        command.args(["doctor", ENV, "--client", "--ssh-dir", ssh_dir.to_str().unwrap()]).args(extra);
        if let Some(socket) = agent {
            command.env("SSH_AUTH_SOCK", socket);
        }
        let output = command.output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let failed = |stdout: &str| stdout.lines().filter(|l| l.trim_start().starts_with("FAIL")).map(str::to_owned).collect::<Vec<_>>();

    let (code, stdout) = doctor(None, &[]);
    assert_eq!(code, Some(1), "{stdout}");
    let problems = failed(&stdout);
    assert_eq!(problems.len(), 2, "{stdout}");
    assert!(problems[0].contains("known_hosts") && problems[0].contains("no @cert-authority line for the current host CA"), "{stdout}");
    assert!(problems[1].contains("ssh config") && problems[1].contains("get_key ensure -e staging"), "{stdout}");

    let block = world.sshca_ok(&["config", ENV, "--client"]);
    let (ssh_config, known_hosts) = block.split_once("#\n# 2.").unwrap();
    std::fs::write(ssh_dir.join("config"), ssh_config).unwrap();
    std::fs::write(ssh_dir.join("known_hosts"), known_hosts).unwrap();
    let (code, stdout) = doctor(None, &[]);
    assert_eq!(code, Some(0), "with the block of sshca config --client: {stdout}");

    let everywhere = known_hosts.replace("@cert-authority *.example.com ", "@cert-authority * ");
    std::fs::write(ssh_dir.join("known_hosts"), everywhere).unwrap();
    let (_, stdout) = doctor(None, &[]);
    assert!(failed(&stdout).iter().any(|l| l.contains("trusted for every host (*)")), "{stdout}");
    std::fs::write(ssh_dir.join("known_hosts"), known_hosts).unwrap();

    // a certificate with 10 minutes left, against a wish for an hour
    let key = keygen(&ssh_dir, "id_ed25519_staging", "ed25519", None, "");
    let url =
        world.sshca_ok(&["sign", "--local", "-e", ENV, "-u", "jane", "-r", "doctor", "-t", "+10m", "-p", pub_path(&key).to_str().unwrap()]);
    std::fs::write(cert_path(&key), download(url.trim()).unwrap()).unwrap();
    let (code, stdout) = doctor(None, &["--min-validity", "1h"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(failed(&stdout).iter().any(|l| l.contains("certificates") && l.contains("-cert.pub expires in ")), "{stdout}");
    assert_eq!(doctor(None, &["--min-validity", "5m"]).0, Some(0));

    // a real ssh-agent holding more keys than MaxAuthTries lets a server try
    let agent = Agent::start(world.dir.path());
    for n in 0..6 {
        let extra = keygen(world.dir.path(), &format!("agent{n}"), "ed25519", None, "");
        let added = Command::new("ssh-add").arg("-q").arg(&extra).env("SSH_AUTH_SOCK", &agent.socket).status().unwrap();
        assert!(added.success());
    }
    let (code, stdout) = doctor(Some(&agent.socket), &["--min-validity", "5m"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(failed(&stdout).iter().any(|l| l.contains("ssh-agent") && l.contains("6 keys and certificates")), "{stdout}");
}

/// `sshca metrics --log -` counts the lines on standard input, as `journalctl --cursor-file`
/// hands over only the new ones each run, and keeps its counters across runs.
#[test]
fn metrics_from_standard_input_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    let output_file = dir.path().join("sshca.prom");
    let accepted =
        "Accepted publickey for deploy from 10.0.0.1 port 1 ssh2: ED25519-CERT SHA256:k ID jane#1 (serial 1) CA ECDSA SHA256:ca\n";
    let plain = "Accepted publickey for root from 10.0.0.1 port 2 ssh2: ED25519 SHA256:p\n";
    let sshd_config = dir.path().join("sshd_config");
    let host_key = keygen(dir.path(), "host", "ed25519", None, "");
    std::fs::write(&sshd_config, format!("HostKey {}\nAuthorizedKeysFile none\n", host_key.display())).unwrap();
    for batch in [format!("{accepted}{plain}"), accepted.to_owned()] {
        let mut child = Command::new(bin("sshca"))
            .args(["metrics", "--log", "-", "--output", output_file.to_str().unwrap(), "--sshd-config", sshd_config.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(batch.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let samples = scrape(&output_file);
    assert_eq!(samples.get("ssh_cert_auth_total{ca=SHA256:ca,principal=deploy,result=accepted}"), Some(&2.0), "{samples:?}");
    assert_eq!(samples.get("ssh_key_auth_total{result=accepted}"), Some(&1.0), "{samples:?}");
}
