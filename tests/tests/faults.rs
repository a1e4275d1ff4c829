//! Faults on the issuing path, against the real servers: S3 and KMS fail at each step (through a
//! proxy that fails the requests a rule picks, or drops every connection as a stopped server
//! would), and a private SeaweedFS is restarted mid-run. Each time: the caller gets a clear error,
//! no URL is handed out without a durable audit record, a serial taken but not used is recorded as
//! void, and once the servers are back issuance works with serials still unique.
//!
//! Presigning is not on the list of steps that can fail here: it is computed locally from the
//! credentials (no request to S3), so no server fault reaches it.

use std::collections::{BTreeMap, BTreeSet};

use sshca_aws::Aws;
use sshca_core::audit::{AuditEntry, Event};
use sshca_core::{Caller, IssueError, SignRequest, SignResponse};
use sshca_tests::faults::{Fault, FaultProxy, PrivateSeaweedFs, Rule};
use sshca_tests::*;

const ENV: &str = "faults";

async fn aws_via(s3_endpoint: &str, kms_endpoint: &str) -> Aws {
    let config = sdk_config(None).await;
    let s3 = aws_sdk_s3::config::Builder::from(&config).endpoint_url(s3_endpoint).force_path_style(true).build();
    let kms = aws_sdk_kms::config::Builder::from(&config).endpoint_url(kms_endpoint).build();
    Aws {
        s3: aws_sdk_s3::Client::from_conf(s3),
        kms: aws_sdk_kms::Client::from_conf(kms),
        sts: aws_sdk_sts::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        identity_store: aws_sdk_identitystore::Client::new(&config),
        ec2: sshca_aws::ec2::Ec2::new(config.clone()),
        config,
    }
}

fn request(world: &World, reason: &str) -> SignRequest {
    let key = keygen(world.dir.path(), &format!("id-{}", uuid::Uuid::new_v4().simple()), "ed25519", None, "");
    SignRequest {
        environment: ENV.into(),
        username: "jane".into(),
        public_key: Some(std::fs::read_to_string(pub_path(&key)).unwrap().trim().to_owned()),
        reason: reason.into(),
        ..Default::default()
    }
}

fn put(path: String, fault: Fault, times: Option<usize>) -> Rule {
    Rule { method: "PUT", head_contains: path, fault, times }
}

/// Every audit record of the environment's issuance, by serial.
async fn audit_records(aws: &Aws, bucket: &str) -> BTreeMap<u64, Vec<AuditEntry>> {
    let store = sshca_aws::s3::S3Store::new(aws.s3.clone(), bucket);
    let mut records: BTreeMap<u64, Vec<AuditEntry>> = BTreeMap::new();
    for entry in sshca_core::audit::entries_since(&store, ENV, sshca_core::time::unix_now() - 86_400).await.unwrap() {
        records.entry(entry.serial).or_default().push(entry);
    }
    records
}

fn events(records: &BTreeMap<u64, Vec<AuditEntry>>, serial: u64) -> Vec<Event> {
    records.get(&serial).map(|r| r.iter().map(|e| e.event).collect()).unwrap_or_default()
}

fn fails(result: Result<SignResponse, IssueError>, what: &str, expected: &str) -> IssueError {
    let err = result.err().unwrap_or_else(|| panic!("{what}: a URL was handed out"));
    assert_eq!(err.error_type(), "Unavailable", "{what}: {err}");
    assert!(err.to_string().contains(expected), "{what}: expected {expected:?} in {err}");
    err
}

fn faults_at_each_step(server: S3Server) {
    let world = World::new(server);
    // storage faults are the subject here, not identity: in-process requests without proofs
    world.init(ENV, &["--principals", "deploy", "--allow-unproven"]);
    let s3 = FaultProxy::start(&world.s3_endpoint);
    let kms = FaultProxy::start(&kms_endpoint());
    let bucket = format!("/{}/", world.bucket);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let aws = aws_via(&s3.endpoint(), &kms.endpoint()).await;
        let direct = aws_via(&world.s3_endpoint, &kms_endpoint()).await;
        // leases of one serial, so that every request passes the counter
        let issuer = aws.issuer(&world.bucket, None);
        let caller = Caller { request_id: "faults".into() };
        let mut handed_out = BTreeSet::new();
        let mut issue_ok = |response: SignResponse| {
            assert!(response.download_url.contains("X-Amz-Signature="));
            assert!(handed_out.insert(response.serial), "serial {} handed out twice", response.serial);
            response.serial
        };
        let first = issue_ok(issuer.issue(&request(&world, "warm up"), &caller).await.unwrap());

        // serial allocation: the counter cannot be written
        s3.fail(put(format!("{bucket}serial/"), Fault::S3(503, "SlowDown"), None));
        fails(issuer.issue(&request(&world, "serial"), &caller).await, "serial write fails", "503");
        s3.heal();

        // a 412 storm from a competing writer: the signer backs off and wins in the end
        s3.fail(put(format!("{bucket}serial/"), Fault::S3(412, "PreconditionFailed"), Some(25)));
        let after_storm = issue_ok(issuer.issue(&request(&world, "storm"), &caller).await.expect("issued after the storm"));
        assert_eq!(s3.injected(), 25 + 3, "every 412 of the storm was served (plus the 503 retries before)");

        // KMS Sign fails: the serial is void
        kms.fail(Rule {
            method: "POST",
            head_contains: "TrentService.Sign".into(),
            fault: Fault::Kms(500, "KMSInternalException"),
            times: None,
        });
        fails(issuer.issue(&request(&world, "kms"), &caller).await, "KMS Sign fails", "KMS");
        kms.heal();
        let kms_void = after_storm + 1;

        // the certificate object cannot be written: void (the record holds the certificate)
        s3.fail(put(format!("{bucket}certs/"), Fault::S3(503, "SlowDown"), None));
        fails(issuer.issue(&request(&world, "cert"), &caller).await, "certificate write fails", "503");
        s3.heal();
        let cert_void = kms_void + 1;

        // the issued record cannot be written: void, no URL
        s3.fail(put(format!("{bucket}audit/{ENV}/2"), Fault::Drop, Some(3)));
        fails(issuer.issue(&request(&world, "audit"), &caller).await, "audit write fails", "audit record could not be written");
        s3.heal();
        let audit_void = cert_void + 1;

        // the audit store is down for the record and the void alike: the void is written by the next request
        s3.fail(put(format!("{bucket}audit/{ENV}/2"), Fault::S3(503, "SlowDown"), None));
        fails(issuer.issue(&request(&world, "audit down"), &caller).await, "audit store down", "audit record could not be written");
        let late_void = audit_void + 1;
        assert!(events(&audit_records(&direct, &world.bucket).await, late_void).is_empty());
        s3.heal();

        // S3 stopped: nothing is taken
        s3.go_down();
        fails(issuer.issue(&request(&world, "s3 down"), &caller).await, "S3 stopped", "");
        s3.heal();

        // KMS stopped: a cold signer cannot load its CA key (no serial taken); a warm one voids
        kms.go_down();
        let cold = aws.issuer(&world.bucket, None);
        fails(cold.issue(&request(&world, "kms down, cold"), &caller).await, "KMS stopped (cold)", "");
        fails(issuer.issue(&request(&world, "kms down, warm"), &caller).await, "KMS stopped (warm)", "");
        kms.heal();

        // everything is back: issuance works, and the pending void was written first
        let last = issue_ok(issuer.issue(&request(&world, "recovered"), &caller).await.expect("issued after recovery"));
        let recovered_cold = issue_ok(cold.issue(&request(&world, "recovered cold"), &caller).await.expect("cold signer recovered"));

        let records = audit_records(&direct, &world.bucket).await;
        assert_eq!(events(&records, first), [Event::Issued]);
        assert_eq!(events(&records, after_storm), [Event::Issued]);
        assert_eq!(events(&records, kms_void), [Event::Void], "{records:?}");
        // the issued record was written beside the failed certificate write; the void overrides it
        assert_eq!(events(&records, cert_void), [Event::Issued, Event::Void], "certificate write failed");
        assert!(records[&cert_void].iter().any(|e| e.event == Event::Void && e.certificate.is_some()));
        assert_eq!(events(&records, audit_void), [Event::Void]);
        assert_eq!(events(&records, late_void), [Event::Void], "the pending void record was not written");
        let warm_void = late_void + 1;
        assert_eq!(events(&records, warm_void), [Event::Void], "KMS stopped on a warm signer");
        assert_eq!(events(&records, last), [Event::Issued]);
        assert_eq!(events(&records, recovered_cold), [Event::Issued]);
        // every serial the counter handed out is accounted for: issued, or void
        let counter =
            sshca_core::serial::issued_below(&sshca_aws::s3::S3Store::new(direct.s3.clone(), world.bucket.clone()), ENV).await.unwrap();
        let accounted: BTreeSet<u64> = records.keys().copied().collect();
        assert_eq!(accounted, (1..counter).collect(), "a serial was taken without an audit record");
        // no URL without a durable issued record
        for serial in &handed_out {
            assert!(events(&records, *serial).contains(&Event::Issued), "serial {serial} handed out unrecorded");
        }
    });
}

/// SeaweedFS is restarted (same data directory) while 8 signers issue: everything acknowledged
/// is still there afterwards, and serials stay unique.
#[test]
fn seaweedfs_restart_loses_nothing_acknowledged() {
    let mut seaweedfs = PrivateSeaweedFs::start();
    let world = World::on(S3Server::SeaweedFs, &seaweedfs.endpoint());
    let mut init = None;
    for _ in 0..40 {
        // the fresh server takes a moment before it accepts a bucket
        let output = world.sshca(&["init", ENV, "--create-bucket", "--create-keys", "--principals", "deploy", "--allow-unproven"]);
        if output.status.success() {
            init = Some(output);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(init.is_some(), "init on the private SeaweedFS failed: {}", seaweedfs.log());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(aws_via(&seaweedfs.endpoint(), &kms_endpoint()));
    let run = |count: usize| {
        let signers: Vec<_> = (0..8)
            .map(|signer| {
                let issuer = std::sync::Arc::new(aws.issuer(&world.bucket, None).with_serial_block(16, format!("signer-{signer}")));
                let request = request(&world, "restart");
                runtime.spawn(async move {
                    let mut acknowledged = Vec::new();
                    for n in 0..count {
                        let caller = Caller { request_id: format!("{signer}-{n}") };
                        if let Ok(response) = issuer.issue(&request, &caller).await {
                            acknowledged.push(response);
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        signers
    };
    let during = run(40);
    std::thread::sleep(std::time::Duration::from_millis(300));
    seaweedfs.restart();
    let mut acknowledged = Vec::new();
    for signer in during {
        acknowledged.extend(runtime.block_on(signer).unwrap());
    }
    for signer in run(5) {
        let after = runtime.block_on(signer).unwrap();
        assert_eq!(after.len(), 5, "issuance after the restart failed");
        acknowledged.extend(after);
    }
    let serials: BTreeSet<u64> = acknowledged.iter().map(|r| r.serial).collect();
    assert_eq!(serials.len(), acknowledged.len(), "a serial was handed out twice");
    runtime.block_on(async {
        let records = audit_records(&aws, &world.bucket).await;
        let objects: BTreeSet<String> = world.objects().await.into_iter().collect();
        for response in &acknowledged {
            assert!(
                events(&records, response.serial).contains(&Event::Issued),
                "serial {} acknowledged but its record is lost",
                response.serial
            );
            let object = format!("certs/{ENV}/jane/{:020}-cert.pub", response.serial);
            assert!(objects.contains(&object), "certificate {object} acknowledged but lost");
            assert_eq!(download(&response.download_url).expect("the URL still works"), format!("{}\n", response.certificate).into_bytes());
        }
    });
}

on_both_s3_servers!(faults_at_each_step);
