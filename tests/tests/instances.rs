//! Hosts named as users type them: a host rule whose names come from the instance looks the
//! instance up in EC2 (LocalStack's) and refuses what is not the host's own running instance.
//! LocalStack's EC2 cannot attach an instance profile (it looks profiles up where LocalStack's IAM
//! does not keep them), so the certificate of a genuine instance is shown by `decide`'s unit test
//! (`an_instance_host_gets_exactly_its_instance_names_within_the_rule`), not here.

use std::process::Output;

use serde_json::json;
use sshca_tests::identities::{Identity, Instance};
use sshca_tests::*;

const ENV: &str = "fleet";

fn renew(world: &World, host: &Identity, key: &std::path::Path, extra: &[&str]) -> Output {
    let mut command = world.command("sshca");
    host.apply(&mut command).env("AWS_EC2_METADATA_DISABLED", "true");
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
