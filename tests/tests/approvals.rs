//! Just-in-time access through the function, on both S3 servers: Jane's rule requires one approval
//! by Bob. Her ask is recorded as a request; Eve (no approver), Jane herself and an approval of
//! other content are refused; Bob's approval lets her claim the certificate once (of two claims
//! at once, exactly one wins) and log in to a real sshd; a denied request and an expired one yield
//! nothing; break glass issues at once and is listed by `sshca audit --break-glass`; every step's
//! notification arrives once on an SQS queue subscribed to the environment's SNS topic
//! (LocalStack's).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};
use sshca_tests::identities::{Account, Identity};
use sshca_tests::*;

const ENV: &str = "prod";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn refused(output: &Output, expected: &str, what: &str) {
    assert!(!output.status.success(), "{what}: accepted");
    assert!(stderr(output).contains(expected), "{what}: expected {expected:?} in {}", stderr(output));
}

/// An SNS topic and an SQS queue subscribed to it, on LocalStack.
struct Topic {
    arn: String,
    queue_url: String,
}

impl Topic {
    fn new(name: &str) -> Self {
        let aws = |args: &[&str]| Account::CA.aws(args);
        let arn = aws(&["sns", "create-topic", "--name", name])["TopicArn"].as_str().unwrap().to_owned();
        let queue_url = aws(&["sqs", "create-queue", "--queue-name", name])["QueueUrl"].as_str().unwrap().to_owned();
        let attributes = aws(&["sqs", "get-queue-attributes", "--queue-url", &queue_url, "--attribute-names", "QueueArn"]);
        let queue_arn = attributes["Attributes"]["QueueArn"].as_str().unwrap().to_owned();
        aws(&["sns", "subscribe", "--topic-arn", &arn, "--protocol", "sqs", "--notification-endpoint", &queue_arn]);
        Topic { arn, queue_url }
    }

    /// Every notice delivered so far (and taken off the queue).
    fn notices(&self) -> Vec<Value> {
        let mut notices = Vec::new();
        loop {
            let received = Account::CA.aws(&[
                "sqs",
                "receive-message",
                "--queue-url",
                &self.queue_url,
                "--max-number-of-messages",
                "10",
                "--wait-time-seconds",
                "1",
            ]);
            let Some(messages) = received["Messages"].as_array().filter(|m| !m.is_empty()) else { return notices };
            for message in messages {
                let envelope: Value = serde_json::from_str(message["Body"].as_str().unwrap()).unwrap();
                notices.push(serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap());
                Account::CA.aws(&[
                    "sqs",
                    "delete-message",
                    "--queue-url",
                    &self.queue_url,
                    "--receipt-handle",
                    message["ReceiptHandle"].as_str().unwrap(),
                ]);
            }
        }
    }
}

struct Rig {
    world: World,
    lambda: LambdaEmulator,
    audience: String,
}

impl Rig {
    /// `get_key request` as `who` with `key` (made when missing) and `extra`.
    fn request(&self, who: &Identity, key: &Path, extra: &[&str]) -> Output {
        let mut command = self.world.command("get_key");
        who.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", self.lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
        command.args(["request", "-e", ENV, "--create-key", "--no-agent", "--audience", &self.audience, "--key"]).arg(key);
        command.args(["-r", "INC-1234 payments 500s"]).args(extra).output().unwrap()
    }

    /// `sshca approve|deny ENV ID --digest D` as `who`, through the function.
    fn verdict(&self, who: &Identity, verb: &str, id: &str, digest: &str, extra: &[&str]) -> Output {
        let mut command = self.world.command("sshca");
        who.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", self.lambda.endpoint()).env("AWS_EC2_METADATA_DISABLED", "true");
        command.args([verb, ENV, id, "--digest", digest, "--audience", &self.audience]).args(extra).output().unwrap()
    }

    /// The request the answer to a first ask recorded: its id, and its digest as `sshca requests` lists it.
    fn recorded(&self, asked: &Output) -> (String, String) {
        assert!(!asked.status.success(), "a first ask under an approval rule signs nothing");
        let text = stderr(asked);
        let id = text.split("access request ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("a request id").to_owned();
        let listing = self.world.sshca_ok(&["requests", ENV, "--all"]);
        let entry = listing.split(&id).nth(1).unwrap_or_else(|| panic!("{id} is not listed: {listing}"));
        let digest = entry.split("digest: ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        (id, digest)
    }
}

fn key_in(world: &World, name: &str) -> PathBuf {
    let dir = world.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("id_ed25519")
}

fn approvals_through_the_function(server: S3Server) {
    let world = World::new(server);
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (jane_name, bob_name, joe_name) = (format!("jane-{id}"), format!("bob-{id}"), format!("joe-{id}"));
    let user = |name: &str| format!("arn:aws:iam::000000000000:user/{name}");
    let approval =
        |expires_in: u64| json!({"by": [user(&bob_name), user(&jane_name)], "count": 1, "max_ttl": 7200, "expires_in": expires_in});
    let rules = json!([
        {"match": "arn:aws:iam::000000000000:root", "grant": "admin"},
        {"match": user(&jane_name), "grant": "user", "principals": ["{user}"], "max_ttl": 7200, "approval": approval(3600), "break_glass": true},
        {"match": user(&joe_name), "grant": "user", "principals": ["{user}"], "approval": approval(2)},
    ]);
    let rules_file = world.path("rules.json");
    std::fs::write(&rules_file, rules.to_string()).unwrap();
    let user_ca = world.init(ENV, &["--allowed-principals", "jane-*,joe-*", "--rules", rules_file.to_str().unwrap()]);
    let topic = Topic::new(&format!("sshca-{id}"));
    let mut function_env = world.env();
    function_env.push(("SSHCA_TOPIC_ARN", topic.arn.clone()));
    let rig = Rig { lambda: LambdaEmulator::start(&function_env), audience: default_audience(&world, ENV), world };
    let (jane, bob, eve, joe) = (
        Identity::iam_user(&jane_name),
        Identity::iam_user(&bob_name),
        Identity::iam_user(&format!("eve-{id}")),
        Identity::iam_user(&joe_name),
    );

    // a first ask records a request and signs nothing
    let key = key_in(&rig.world, "jane");
    let asked = rig.request(&jane, &key, &["-t", "2h"]);
    assert!(stderr(&asked).contains("an approver runs: sshca approve prod"), "{}", stderr(&asked));
    let (request, digest) = rig.recorded(&asked);
    assert!(!cert_path(&key).exists(), "nothing was installed before approval");
    let listing = rig.world.sshca_ok(&["requests", ENV]);
    assert!(
        listing.contains(&format!("{request}  pending  {}", user(&jane_name))) && listing.contains("INC-1234 payments 500s"),
        "{listing}"
    );
    refused(&rig.request(&jane, &key, &["--request-id", &request]), "has 0 of the 1 approvals", "a claim before approval");

    // who may not approve, and what is not this request
    refused(&rig.verdict(&eve, "approve", &request, &digest, &[]), "may not give a verdict", "an identity that is no approver");
    refused(&rig.verdict(&jane, "approve", &request, &digest, &[]), "someone else must approve", "self-approval");
    let altered = format!("{}{}", &digest[..63], if digest.ends_with('0') { '1' } else { '0' });
    refused(&rig.verdict(&bob, "approve", &request, &altered, &[]), "other content", "an approval of other content");

    let approved = rig.verdict(&bob, "approve", &request, &digest, &["-r", "go ahead"]);
    assert!(approved.status.success() && String::from_utf8_lossy(&approved.stdout).contains("1 of 1 approvals"), "{}", stderr(&approved));
    refused(&rig.verdict(&bob, "approve", &request, &digest, &[]), "already gave a verdict", "a second verdict");

    // of two claims at once (the same key, in two places), exactly one gets the certificate
    let twin = key_in(&rig.world, "jane-twin");
    std::fs::copy(&key, &twin).unwrap();
    std::fs::copy(pub_path(&key), pub_path(&twin)).unwrap();
    let (first, second) = std::thread::scope(|scope| {
        let (rig, jane, request) = (&rig, &jane, &request);
        let a = scope.spawn(|| rig.request(jane, &key, &["--request-id", request, "-t", "2h"]));
        let b = scope.spawn(|| rig.request(jane, &twin, &["--request-id", request, "-t", "2h"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let winners: Vec<&Output> = [&first, &second].into_iter().filter(|o| o.status.success()).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins: {} / {}", stderr(&first), stderr(&second));
    let loser = if first.status.success() { &second } else { &first };
    assert!(stderr(loser).contains("claimed already"), "{}", stderr(loser));
    let installed = if first.status.success() { &key } else { &twin };
    let listing = ssh_keygen_list(&cert_path(installed));
    assert!(listing.contains(&jane_name), "{listing}");
    let valid = listing.split("Valid: from ").nth(1).unwrap().lines().next().unwrap().to_owned();
    refused(&rig.request(&jane, &key, &["--request-id", &request]), "claimed already", "a claim after the one");
    let sshd = Sshd::start(&user_ca, &[&jane_name], "");
    assert!(sshd.login_with(installed), "the approved certificate logs in ({valid}): {}", sshd.log());

    // a denied request yields nothing
    let asked = rig.request(&jane, &key_in(&rig.world, "jane-2"), &[]);
    let (denied, denied_digest) = rig.recorded(&asked);
    refused(&rig.verdict(&bob, "deny", &denied, &denied_digest, &[]), "a denial says why", "a denial without a reason");
    let verdict = rig.verdict(&bob, "deny", &denied, &denied_digest, &["-r", "not during the freeze"]);
    assert!(verdict.status.success(), "{}", stderr(&verdict));
    refused(&rig.request(&jane, &key_in(&rig.world, "jane-2"), &["--request-id", &denied]), "was denied by", "a denied request");

    // an expired one neither: Joe's requests wait 2 s
    let joe_key = key_in(&rig.world, "joe");
    let (expired, expired_digest) = rig.recorded(&rig.request(&joe, &joe_key, &[]));
    std::thread::sleep(std::time::Duration::from_secs(3));
    refused(&rig.verdict(&bob, "approve", &expired, &expired_digest, &[]), "expired", "an approval after expiry");
    refused(&rig.request(&joe, &joe_key, &["--request-id", &expired]), "expired", "a claim after expiry");
    refused(&rig.request(&joe, &joe_key, &["--break-glass"]), "allows no break glass", "break glass where the rule has none");

    // break glass: at once, recorded, listed
    let glass = key_in(&rig.world, "jane-glass");
    let broke = rig.request(&jane, &glass, &["--break-glass"]);
    assert!(broke.status.success(), "break glass: {}", stderr(&broke));
    let listed = rig.world.sshca_ok(&["audit", ENV, "--break-glass"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("BREAK GLASS") && listed.contains(&jane_name), "{listed}");
    let all = rig.world.sshca_ok(&["audit", ENV]);
    assert!(all.contains(&format!("request {request} approved by [{}]", user(&bob_name))), "{all}");
    let verified = rig.world.sshca(&["verify", ENV]);
    assert!(verified.status.success(), "the books hold: {}{}", String::from_utf8_lossy(&verified.stdout), stderr(&verified));

    // every step was announced once
    let notices = topic.notices();
    let events: Vec<(&str, &str)> =
        notices.iter().map(|n| (n["event"].as_str().unwrap(), n["request_id"].as_str().unwrap_or("-"))).collect();
    let count = |event: &str, request: &str| events.iter().filter(|e| **e == (event, request)).count();
    assert_eq!([count("requested", &request), count("approved", &request), count("issued", &request)], [1, 1, 1], "{events:?}");
    assert_eq!([count("requested", &denied), count("denied", &denied), count("requested", &expired)], [1, 1, 1], "{events:?}");
    assert_eq!(count("break-glass", "-"), 1, "{events:?}");
    assert_eq!(events.len(), 7, "nothing else, nothing twice: {events:?}");
    let requested = notices.iter().find(|n| n["event"] == "requested" && n["request_id"] == request.as_str()).unwrap();
    assert!(requested["command"].as_str().unwrap().contains(&format!("sshca approve prod {request} --digest {digest}")), "{requested}");
    assert_eq!(requested["reason"], "INC-1234 payments 500s");
    assert_eq!(requested["valid_for"], 7200);
}

on_both_s3_servers!(approvals_through_the_function);
