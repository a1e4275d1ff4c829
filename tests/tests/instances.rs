//! Hosts named as users type them: a host rule whose names come from the instance looks the
//! instance up in EC2 and refuses what is not the host's own running instance. LocalStack's EC2
//! cannot attach an instance profile (it looks profiles up where LocalStack's IAM does not keep
//! them): genuine instances run on moto's EC2, with the profile in both IAMs (moto's, for
//! run-instances; LocalStack's, which the lookup asks and whose STS proves the host's role).

use std::process::Output;

use serde_json::json;
use sshca_tests::identities::{Account, Ec2, Identity, Instance};
use sshca_tests::*;

const ENV: &str = "fleet";

fn renew(world: &World, host: &Identity, key: &std::path::Path, extra: &[&str]) -> Output {
    renew_in(Ec2::LocalStack(Account::CA), world, host, key, extra)
}

/// `sshca renew-host --local` as `host`, its instance looked up in `ec2`.
fn renew_in(ec2: Ec2, world: &World, host: &Identity, key: &std::path::Path, extra: &[&str]) -> Output {
    let mut command = world.command("sshca");
    host.apply(&mut command).env("AWS_EC2_METADATA_DISABLED", "true").env("AWS_ENDPOINT_URL_EC2", ec2.endpoint());
    command.args(["renew-host", "--local", "--force", "-e", ENV, "-k", key.to_str().unwrap()]).args(extra).output().unwrap()
}

fn refused(output: &Output, expected: &str, what: &str) {
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{what}: accepted");
    assert!(text.contains(expected), "{what}: expected {expected:?} in {text}");
}

#[test]
fn what_is_not_the_hosts_own_running_instance_gets_nothing() {
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let role = format!("web-hosts-{id}");
    let role_arn = Identity::create_role(&role, "/");
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": format!("arn:aws:sts::000000000000:assumed-role/{role}/*"), "grant": "host", "session_name_set_by_aws": true,
         "principals": ["*.ec2.internal", "10.*", "*.hosts.example.com"], "from_instance": {"name_suffix": "hosts.example.com"}},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    world.init(ENV, &["--allowed-host-principals", "*.ec2.internal,10.*,*.hosts.example.com", "--rules", rules_file.to_str().unwrap()]);
    let key = keygen(world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");

    let web = Instance::run(&format!("web-{id}"));
    let host = Identity::session_of(&role_arn, &web.id);
    refused(&renew(&world, &host, &key, &[]), "has no instance profile", "an instance without the role in its profile");
    let nowhere = Identity::session_of(&role_arn, "i-0123456789abcdef0");
    refused(&renew(&world, &nowhere, &key, &[]), "there is no instance i-0123456789abcdef0", "a session named after no instance");
    let chosen = Identity::session_of(&role_arn, "web1");
    refused(&renew(&world, &chosen, &key, &[]), "not named after an EC2 instance", "a session not named after an instance");
    web.stop();
    refused(&renew(&world, &host, &key, &[]), "not running", "a stopped instance");
    assert!(!cert_path(&key).exists(), "nothing was installed");
}

/// A genuine instance gets exactly its own names (private DNS name, private IP, Name tag under the
/// suffix) and nothing it asks for beyond them, and a real ssh trusts it under its private DNS name;
/// an instance whose profile holds another role gets nothing.
#[test]
fn a_host_gets_exactly_its_instance_names() {
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let role = format!("db-hosts-{id}");
    let role_arn = Ec2::LocalStack(Account::CA).create_instance_profile(&role);
    Ec2::Moto.create_instance_profile(&role);
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": format!("arn:aws:sts::000000000000:assumed-role/{role}/*"), "grant": "host", "session_name_set_by_aws": true,
         "principals": ["*.internal", "10.*", "172.*", "*.hosts.example.com"], "from_instance": {"name_suffix": "hosts.example.com"}},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let user_ca = world.init(
        ENV,
        &[
            "--allowed-host-principals",
            "*.internal,10.*,172.*,*.hosts.example.com",
            "--allowed-principals",
            "*",
            "--rules",
            rules_file.to_str().unwrap(),
        ],
    );
    let key = keygen(world.dir.path(), "ssh_host_ed25519_key", "ed25519", None, "");

    let db = Instance::run_in(Ec2::Moto, &format!("DB-{id}"), Some(&role));
    let host = Identity::session_of(&role_arn, &db.id);
    let asked_more = renew_in(Ec2::Moto, &world, &host, &key, &["-n", "other.hosts.example.com"]);
    refused(&asked_more, "other.hosts.example.com", "a name beyond the instance's");
    let renewed = renew_in(Ec2::Moto, &world, &host, &key, &[]);
    assert!(renewed.status.success(), "renew-host: {}", String::from_utf8_lossy(&renewed.stderr));
    let listing = ssh_keygen_list(&cert_path(&key));
    let lines: Vec<&str> = listing.lines().map(str::trim).collect();
    let start = lines.iter().position(|line| *line == "Principals:").expect("a principals section") + 1;
    let names: Vec<&str> = lines[start..].iter().take_while(|line| !line.starts_with("Critical Options:")).copied().collect();
    assert_eq!(names, [db.private_dns.as_str(), db.private_ip.as_str(), &format!("db-{id}.hosts.example.com")], "{listing}");
    assert!(listing.contains("host certificate"), "{listing}");

    let sshd = Sshd::start_with_host_certificate(&user_ca, &["deploy"], &key);
    let known_hosts = world.path("known_hosts");
    std::fs::write(&known_hosts, world.sshca_ok(&["config", ENV, "--only", "known-hosts", "--host-pattern", "*.internal"])).unwrap();
    let user_key = keygen(world.dir.path(), "deploy_key", "ed25519", None, "");
    let url = world.sshca_ok(&[
        "sign",
        "--local",
        "-e",
        ENV,
        "-u",
        "deploy",
        "--principal",
        "deploy",
        "-p",
        pub_path(&user_key).to_str().unwrap(),
        "-r",
        "host test",
    ]);
    std::fs::write(cert_path(&user_key), download(url.trim()).unwrap()).unwrap();
    let connect = |alias: &str| sshd.echo_checking_host(&known_hosts, alias, &user_key);
    let output = connect(&db.private_dns);
    assert!(String::from_utf8_lossy(&output.stdout).contains("host-trusted"), "{} {}", String::from_utf8_lossy(&output.stderr), sshd.log());
    let output = connect("other.internal");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("host-trusted"), "a name the instance does not have was trusted");

    let other_role = format!("other-hosts-{id}");
    Ec2::LocalStack(Account::CA).create_instance_profile(&other_role);
    Ec2::Moto.create_instance_profile(&other_role);
    let foreign = Instance::run_in(Ec2::Moto, &format!("web-{id}"), Some(&other_role));
    let key2 = keygen(world.dir.path(), "ssh_host_ed25519_key2", "ed25519", None, "");
    refused(
        &renew_in(Ec2::Moto, &world, &Identity::session_of(&role_arn, &foreign.id), &key2, &[]),
        "runs with another role",
        "another role's instance",
    );
}
