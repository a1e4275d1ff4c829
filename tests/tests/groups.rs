//! Access that fits an organisation: principals from the caller's directory groups (IAM groups on
//! LocalStack, IAM Identity Center's identity store on moto), extensions whose values come from the
//! identity, and rules that sign only security keys (FIDO keys through OpenSSH's sk-dummy provider,
//! made by hand and by `get_key request --create-key --key-type ed25519-sk`, logging in to a real
//! sshd).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sshca_tests::identities::{add_to_iam_group, remove_from_iam_group, Identity, IdentityStore};
use sshca_tests::*;

const ENV: &str = "org";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `sshca sign --local -e org -p KEY …` as `who` (the issuer runs in the process, with the same
/// rules, directory lookups and records as the function).
fn sign(world: &World, who: &Identity, key: &Path, extra: &[&str]) -> Output {
    let mut command = world.command("sshca");
    who.apply(&mut command).env("AWS_EC2_METADATA_DISABLED", "true");
    let public_key = pub_path(key);
    command.args(["sign", "--local", "--json", "-e", ENV, "-r", "groups test", "-p", public_key.to_str().unwrap()]);
    command.args(extra).output().unwrap()
}

/// The certificate of a successful `sign`, written next to `key`, and what `ssh-keygen -L` says of it.
fn certificate(output: &Output, key: &Path) -> (Value, String) {
    assert!(output.status.success(), "sign: {}", stderr(output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    std::fs::write(cert_path(key), response["certificate"].as_str().unwrap()).unwrap();
    (response, ssh_keygen_list(&cert_path(key)))
}

/// The principals `ssh-keygen -L` lists.
fn principals(listing: &str) -> Vec<String> {
    let lines: Vec<&str> = listing.lines().map(str::trim).collect();
    let start = lines.iter().position(|line| *line == "Principals:").expect("a principals section") + 1;
    lines[start..].iter().take_while(|line| !line.contains(':')).map(|line| (*line).to_owned()).collect()
}

fn refused(output: &Output, expected: &str, what: &str) {
    assert!(!output.status.success(), "{what}: accepted");
    assert!(stderr(output).contains(expected), "{what}: expected {expected:?} in {}", stderr(output));
}

fn record(world: &World, serial: u64) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let s3 = world.s3().await;
        for key in world.objects().await.iter().filter(|k| k.ends_with("-issued.json")) {
            let object = s3.get_object().bucket(&world.bucket).key(key).send().await.unwrap();
            let record: Value = serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap();
            if record["serial"] == serial {
                return record;
            }
        }
        panic!("no issued record of serial {serial}")
    })
}

/// IAM users get the union of their IAM groups' principals, read from IAM at issuance and again
/// once the groups' time is up; a user in none is refused; the request cannot name groups, and
/// a value the rule sets from the identity cannot be asked for.
#[test]
fn principals_come_from_iam_groups() {
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (sre, dba) = (format!("sre-{id}"), format!("dba-{id}"));
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": "arn:aws:iam::000000000000:user/*", "grant": "user",
         "groups": {sre.clone(): ["root-oncall", "deploy"], dba.clone(): ["postgres"]},
         "extension_values": {"login@github.com": "{user}"}},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    // the groups exist before the rule that maps them is written: init binds it to their ids
    let (alice_name, bob_name) = (format!("alice-{id}"), format!("bob-{id}"));
    let (alice, bob) = (Identity::iam_user(&alice_name), Identity::iam_user(&bob_name));
    add_to_iam_group(&alice_name, &sre);
    add_to_iam_group(&alice_name, &dba);
    let unknown = json!([{"match": "arn:aws:iam::000000000000:user/*", "grant": "user", "groups": {format!("typo-{id}"): ["deploy"]}}]);
    let unknown_file = world.path("unknown.json");
    std::fs::write(&unknown_file, unknown.to_string()).unwrap();
    let refused_init = world.sshca(&["init", ENV, "--create-bucket", "--create-keys", "--rules", unknown_file.to_str().unwrap()]);
    assert!(!refused_init.status.success(), "a rule mapping a group that does not exist is written");
    assert!(
        String::from_utf8_lossy(&refused_init.stderr).contains("which IAM does not have"),
        "{}",
        String::from_utf8_lossy(&refused_init.stderr)
    );
    world
        .init(ENV, &["--allowed-principals", "deploy,root-oncall,postgres", "--groups-ttl", "1s", "--rules", rules_file.to_str().unwrap()]);
    let key = keygen(world.dir.path(), "alice", "ed25519", None, "");
    // the servers' side: each login user's principals file, as the rules imply
    let files = world.sshca_ok(&["config", ENV, "--principals-files", "--login-for", "root-oncall=root"]);
    for (file, line) in [("root", format!("root-oncall\t# rule 2 group {sre}")), ("postgres", format!("postgres\t# rule 2 group {dba}"))] {
        let section =
            files.split(&format!("# /etc/ssh/auth_principals/{file}\n")).nth(1).unwrap_or_else(|| panic!("no file for {file}: {files}"));
        assert!(section.starts_with(&line), "{file}: {files}");
    }
    assert!(files.contains(&format!("deploy\t# rule 2 group {sre}")), "{files}");

    let (response, listing) = certificate(&sign(&world, &alice, &key, &[]), &key);
    assert_eq!(principals(&listing), ["postgres", "root-oncall", "deploy"], "{listing}");
    // OpenSSH shows an extension it does not know as its data: the user's name, as an SSH string
    let data: String = format!("{:08x}", alice_name.len()) + &alice_name.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(listing.contains(&format!("login@github.com UNKNOWN OPTION: {data}")), "the extension's value is the user: {listing}");
    let audit = record(&world, response["serial"].as_u64().unwrap());
    assert_eq!(audit["groups"], json!([dba.clone(), sre.clone()]), "the record names the groups: {audit}");
    let shown = world.sshca_ok(&["audit", ENV]);
    assert!(shown.contains(&format!("groups [{dba}, {sre}]")), "{shown}");
    assert!(world.sshca_ok(&["show-policy", ENV]).contains(&format!("group \"{sre}\" → principals [\"root-oncall\", \"deploy\"]")));

    // out of a group in IAM: the next certificate after the groups' time has none of its principals
    remove_from_iam_group(&alice_name, &dba);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (_, listing) = certificate(&sign(&world, &alice, &key, &[]), &key);
    assert_eq!(principals(&listing), ["root-oncall", "deploy"], "{listing}");

    refused(&sign(&world, &bob, &key, &[]), "in none of the groups", "bob, in no group");
    refused(&sign(&world, &alice, &key, &["-n", "postgres"]), "\"postgres\" is not allowed", "alice asks for another group's principal");

    // the request names no groups and no value of a templated extension
    let forged = json!({"environment": ENV, "reason": "r", "public_key": std::fs::read_to_string(pub_path(&key)).unwrap().trim(),
                        "groups": [dba.clone()]});
    let extension = json!({"environment": ENV, "reason": "r", "public_key": std::fs::read_to_string(pub_path(&key)).unwrap().trim(),
                           "extensions": {"login@github.com": bob_name, "permit-pty": ""}});
    for (body, expected, what) in
        [(forged, "unknown field `groups`", "a request naming groups"), (extension, "sets the extension", "a chosen login")]
    {
        let file = world.path("request.json");
        std::fs::write(&file, body.to_string()).unwrap();
        let mut command = world.command("sshca");
        alice.apply(&mut command).args(["sign", "--local", "--request", file.to_str().unwrap()]);
        refused(&command.output().unwrap(), expected, what);
    }
}

/// IAM Identity Center users (sessions of an Identity Center role, named by AWS after the user)
/// get their identity-store groups' principals; a store that does not know the user refuses.
#[test]
fn principals_come_from_identity_center_groups() {
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let store = IdentityStore::new();
    let role = format!("AWSReservedSSO_Eng_{id}");
    let role_arn = Identity::create_role(&role, "/aws-reserved/sso.amazonaws.com/");
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": format!("arn:aws:sts::000000000000:assumed-role/{role}/*"), "grant": "user", "session_name_set_by_aws": true,
         "principals": ["{user}"], "groups": {"sre": ["root-oncall"]}},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let jane_name = format!("jane-{id}");
    let jane_id = store.user(&jane_name);
    store.add(&jane_id, &store.group("sre"));
    world.init(
        ENV,
        &["--allowed-principals", "jane-*,root-oncall", "--identity-store-id", &store.id, "--rules", rules_file.to_str().unwrap()],
    );
    let key = keygen(world.dir.path(), "jane", "ed25519", None, "");

    let jane = Identity::session_of(&role_arn, &jane_name);
    let (_, listing) = certificate(&sign(&world, &jane, &key, &[]), &key);
    assert_eq!(principals(&listing), [jane_name.as_str(), "root-oncall"], "{listing}");
    let stranger = Identity::session_of(&role_arn, &format!("nobody-{id}"));
    refused(&sign(&world, &stranger, &key, &[]), "is not a user of identity store", "a user the identity store does not know");
}

/// A rule that signs only security keys: a FIDO key made with OpenSSH's sk-dummy provider is
/// signed (its application kept) and logs in to a real sshd; a software key is refused.
#[test]
fn a_rule_can_require_security_keys() {
    let sk_dummy = tool("SSHCA_SK_DUMMY");
    assert!(sk_dummy.exists(), "{} is missing: scripts/servers.sh start builds it", sk_dummy.display());
    let world = World::new(S3Server::LocalStack);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": format!("arn:aws:iam::000000000000:user/carol-{id}"), "grant": "user", "principals": ["{user}"],
         "key_types": ["sk-ssh-ed25519@openssh.com"]},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let user_ca = world.init(
        ENV,
        &[
            "--allowed-principals",
            "carol-*",
            "--key-types",
            "ssh-ed25519,sk-ssh-ed25519@openssh.com",
            "--rules",
            rules_file.to_str().unwrap(),
        ],
    );
    let carol_name = format!("carol-{id}");
    let carol = Identity::iam_user(&carol_name);

    let software = keygen(world.dir.path(), "software", "ed25519", None, "");
    refused(&sign(&world, &carol, &software, &[]), "signs only sk-ssh-ed25519@openssh.com keys", "a software key where sk is required");

    let fido = world.path("fido");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519-sk", "-N", "", "-O", "application=ssh:sshca-test", "-w"])
        .arg(&sk_dummy)
        .arg("-f")
        .arg(&fido)
        .output()
        .unwrap();
    assert!(made.status.success(), "ssh-keygen -t ed25519-sk: {}", String::from_utf8_lossy(&made.stderr));
    let (_, listing) = certificate(&sign(&world, &carol, &fido, &[]), &fido);
    assert!(listing.contains("sk-ssh-ed25519-cert-v01@openssh.com"), "{listing}");
    assert!(!listing.contains("no-touch-required"), "the rule does not waive the touch: {listing}");
    let certified = ssh_key::Certificate::from_openssh(std::fs::read_to_string(cert_path(&fido)).unwrap().trim()).unwrap();
    assert!(matches!(certified.public_key(), ssh_key::public::KeyData::SkEd25519(key) if key.application() == "ssh:sshca-test"));

    // get_key makes such a key itself and gets it certified through the function
    let lambda = LambdaEmulator::start(&world.env());
    let ssh_dir = world.path("carol-ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let made_key = ssh_dir.join("id_sk");
    let audience = default_audience(&world, ENV);
    let mut command = world.command("get_key");
    carol.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
    command.env("SSH_SK_PROVIDER", &sk_dummy);
    command.args(["request", "-e", ENV, "--create-key", "--key-type", "ed25519-sk", "--no-agent", "--audience", &audience, "--key"]);
    let requested = command.arg(&made_key).output().unwrap();
    assert!(requested.status.success(), "get_key request --key-type ed25519-sk: {}", String::from_utf8_lossy(&requested.stderr));
    assert!(std::fs::read_to_string(pub_path(&made_key)).unwrap().starts_with("sk-ssh-ed25519@openssh.com "));
    assert!(ssh_keygen_list(&cert_path(&made_key)).contains("sk-ssh-ed25519-cert-v01@openssh.com"));

    let sshd = Sshd::start(&user_ca, &[&carol_name], "");
    let login = sshd
        .ssh()
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o"])
        .arg(format!("SecurityKeyProvider={}", sk_dummy.display()))
        .arg("-i")
        .arg(&fido)
        .arg(format!("{}@127.0.0.1", current_user()))
        .arg("echo sshca-login-ok")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&login.stdout).contains("sshca-login-ok"), "sk login: {} {}", stderr(&login), sshd.log());
}
