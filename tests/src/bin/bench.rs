//! sshca's benchmark harness: `scripts/bench.sh` (full) or `scripts/bench.sh --quick` (the CI
//! smoke run). Against LocalStack (KMS) and both S3 servers it prints one table of medians and
//! ratios measured side by side in one run: this machine is noisy, ratios are what count.
//!
//! 1. the floor: one KMS `Sign` and one S3 `PutObject` round trip, and the design's floor: a `Sign`
//!    then two concurrent `PutObject`s (an issuance keeps two objects: its record and the certificate);
//! 2. warm issuance p50/p99 in-process and through the Lambda binary under cargo-lambda's emulator,
//!    and where an in-process one's time goes (the issuer's `issue.<step>` spans, [`SpanTimes`]);
//! 3. throughput at 1/8/32/64 concurrent requests, with the count of distinct serials;
//! 4. cold start of the Lambda binary (exec → ready, exec → first response), its peak RSS, its size;
//! 5. `get_key` end to end vs one presigned GET;
//! 6. local signing vs `ssh-keygen -s` of the same certificate;
//! 7. the self-service path (`get_key request`: proof + invoke + install) vs STS GetCallerIdentity +
//!    Sign + PUT, and `get_key ensure` with a good certificate vs a process that does nothing.
//!
//! Nothing here asserts a time: the numbers go in the table, the targets beside them.
//!
//! `bench soak [--signers 64] [--certificates 1000]` is the concurrency soak instead (see [`soak`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::OsRng;
use serde_json::{json, Value};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{HashAlg, PrivateKey};
use sshca_aws::kms::KmsSigner;
use sshca_aws::s3::S3Store;
use sshca_core::store::Condition;
use sshca_core::{CaKeyRef, CertKind, Issuer, SignRequest, Signer, Store};
use sshca_tests::identities::{add_to_iam_group, Identity};
use sshca_tests::spans::SpanTimes;
use sshca_tests::{bin, default_audience, keygen, pub_path, LambdaEmulator, S3Server, World};

const ENVIRONMENT: &str = "bench";
/// The same, with a KMS-sealed Ed25519 CA key (signed in the container, as BLESS does).
const SEALED_ENVIRONMENT: &str = "bench-sealed";
/// The same, with proofs required and an access rule for the benchmark's IAM user.
const SELF_SERVICE_ENVIRONMENT: &str = "bench-self";

struct Budget {
    /// Sequential samples per latency figure.
    samples: usize,
    /// Certificates per throughput level.
    certificates: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("soak") {
        let number = |flag: &str, default: usize| {
            args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(|n| n.parse().expect("a number")).unwrap_or(default)
        };
        return soak(number("--signers", 64), number("--certificates", 1000));
    }
    let quick = args.iter().any(|arg| arg == "--quick");
    let budget = if quick { Budget { samples: 15, certificates: 128 } } else { Budget { samples: 300, certificates: 3000 } };
    let lambda_binary = std::env::var_os("SSHCA_BENCH_LAMBDA_BINARY").map(PathBuf::from).unwrap_or_else(|| bin("sign_key"));
    println!("# sshca benchmark ({} run; Lambda binary {})\n", if quick { "quick" } else { "full" }, lambda_binary.display());
    let spans = SpanTimes::install();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let mut table = Table::default();
    for server in S3Server::ALL {
        let world = World::new(server);
        world.init(ENVIRONMENT, &["--principals", "deploy", "--allow-unproven"]);
        world.init(SEALED_ENVIRONMENT, &["--principals", "deploy", "--key-spec", "ED25519_SEALED", "--allow-unproven"]);
        runtime.block_on(bench_server(&world, &budget, &lambda_binary, &spans, &mut table));
    }
    let world = World::new(S3Server::SeaweedFs);
    world.init(ENVIRONMENT, &["--principals", "deploy", "--allow-unproven"]);
    cold_start(&world, &lambda_binary, &mut table);
    runtime.block_on(local_signing(&world, &budget, &mut table));
    table.print();
}

async fn bench_server(world: &World, budget: &Budget, lambda_binary: &Path, spans: &SpanTimes, table: &mut Table) {
    let server = format!("{:?}", world.server);
    let aws = world.aws().await;
    let issuer = Arc::new(aws.issuer(&world.bucket, None).with_serial_block(sign_key::lambda::SERIAL_BLOCK, "bench"));
    let user_key = keygen(world.dir.path(), "id_ed25519", "ed25519", None, "");
    let public_key = std::fs::read_to_string(pub_path(&user_key)).expect("read the user key");
    let request = SignRequest {
        environment: ENVIRONMENT.into(),
        username: "bench".into(),
        public_key: Some(public_key.trim().to_owned()),
        reason: "benchmark".into(),
        ..Default::default()
    };

    // 1. the floor
    let key_id = match issuer.environment().policy(ENVIRONMENT).await.expect("policy").ca(CertKind::User).expect("user CA") {
        CaKeyRef::Kms { key_id } => key_id.clone(),
        other => panic!("the benchmark's CA is a KMS key, not {other:?}"),
    };
    let kms_signer = KmsSigner::connect(aws.kms.clone(), &key_id).await.expect("the CA key in KMS");
    let tbs = vec![7u8; 400];
    let sign = latencies(budget.samples, || async { kms_signer.sign(&tbs).await.expect("KMS Sign") }).await;
    let store = S3Store::new(aws.s3.clone(), world.bucket.clone());
    let body = vec![b'c'; 700];
    let mut n = 0;
    let put = latencies(budget.samples, || {
        n += 1;
        let key = format!("bench/floor/{n}");
        let body = body.clone();
        let store = &store;
        async move { store.put(&key, body, Condition::IfAbsent).await.expect("S3 PUT") }
    })
    .await;
    let floor = sign.p50() + put.p50();
    table.row(&server, "KMS Sign round trip", &sign, None, "");
    table.row(&server, "S3 PutObject round trip", &put, None, "");
    // the design's floor: an issuance signs, then keeps two objects at once (the audit record and
    // the certificate), which a server that serialises writes makes cost more than one PUT
    let design = latencies(budget.samples, || {
        n += 2;
        let (record, certificate) = (format!("bench/design/{n}"), format!("bench/design/{}", n + 1));
        let (body, store, kms_signer, tbs) = (body.clone(), &store, &kms_signer, &tbs);
        async move {
            kms_signer.sign(tbs).await.expect("KMS Sign");
            let (first, second) =
                tokio::join!(store.put(&record, body.clone(), Condition::IfAbsent), store.put(&certificate, body, Condition::IfAbsent));
            first.and(second).expect("S3 PUTs")
        }
    })
    .await;
    table.row(
        &server,
        "KMS Sign, then two concurrent PutObjects (an issuance's floor)",
        &design,
        Some(ratio(design.p50(), floor)),
        "vs Sign + PUT",
    );

    // 2. warm issuance, in-process and through the Lambda binary
    issue(&issuer, &request, 0).await;
    let in_process = latencies(budget.samples, || issue(&issuer, &request, 0)).await;
    table.row(&server, "issue, in-process (warm), vs Sign + PUT", &in_process, Some(ratio(in_process.p50(), floor)), "");
    table.row(
        &server,
        "issue, in-process (warm), vs the issuance's floor",
        &in_process,
        Some(ratio(in_process.p50(), design.p50())),
        "≤ 1.25 × (Sign + 2 concurrent PUTs)",
    );
    breakdown(&server, budget, spans, || issue(&issuer, &request, 0), table).await;
    let mut env = world.env();
    env.push(("RUST_LOG", "warn".into()));
    let emulator = LambdaEmulator::start_binary(lambda_binary, &env);
    let lambda = emulator.client().await;
    let payload = serde_json::to_vec(&request).expect("request JSON");
    invoke(&lambda, &payload).await;
    let through_lambda = latencies(budget.samples, || invoke(&lambda, &payload)).await;
    table.row(&server, "issue, Lambda binary via emulator", &through_lambda, Some(ratio(through_lambda.p50(), floor)), "");
    drop(emulator);

    // 3. throughput, and what bounds it: KMS Sign alone, and a KMS-sealed CA that signs locally
    for concurrency in [1usize, 8, 32, 64] {
        let (rate, serials, issued) = throughput(&issuer, &request, concurrency, budget.certificates.max(concurrency)).await;
        let target = if concurrency == 64 { "≥ 500/s, serials = certificates" } else { "" };
        table.line(
            &server,
            &format!("throughput, {concurrency} concurrent"),
            format!("{rate:.0} certificates/s"),
            format!("{serials} serials / {issued} certificates"),
            target,
        );
    }
    let kms_signer = Arc::new(kms_signer);
    let started = Instant::now();
    let signs: Vec<_> = (0..64)
        .map(|_| {
            let (signer, count) = (kms_signer.clone(), budget.certificates / 64);
            tokio::spawn(async move {
                for _ in 0..count {
                    signer.sign(&[7u8; 400]).await.expect("KMS Sign");
                }
            })
        })
        .collect();
    for task in signs {
        task.await.expect("a KMS task");
    }
    let rate = (budget.certificates / 64 * 64) as f64 / started.elapsed().as_secs_f64();
    table.line(&server, "KMS Sign alone, 64 concurrent (the ceiling above)", format!("{rate:.0} signatures/s"), String::new(), "");
    let sealed = SignRequest { environment: SEALED_ENVIRONMENT.into(), ..request.clone() };
    issue(&issuer, &sealed, 0).await;
    let (rate, serials, issued) = throughput(&issuer, &sealed, 64, budget.certificates).await;
    table.line(
        &server,
        "throughput, 64 concurrent, KMS-sealed Ed25519 CA",
        format!("{rate:.0} certificates/s"),
        format!("{serials} serials / {issued} certificates"),
        "≥ 500/s",
    );

    // 5. get_key end to end vs one presigned GET (its CA pin is the KMS key's)
    let url = issuer.issue(&request, &caller(0)).await.expect("issue").download_url;
    let get = latencies(budget.samples, || async { sshca_tests::download(&url).expect("presigned GET") }).await;
    table.row(&server, "one presigned GET", &get, None, "");
    let ssh_dir = world.path("ssh");
    std::fs::create_dir_all(&ssh_dir).expect("ssh dir");
    for file in ["id_ed25519", "id_ed25519.pub"] {
        std::fs::copy(world.path(file), ssh_dir.join(file)).expect("copy the key");
    }
    let get_key = latencies(budget.samples, || {
        let _ = std::fs::remove_file(ssh_dir.join("id_ed25519-cert.pub"));
        let output = world
            .command("get_key")
            .args([url.as_str(), "--no-agent", "-q", "--ca-fingerprint", &kms_signer.public_key().fingerprint(HashAlg::Sha256).to_string()])
            .arg("--ssh-dir")
            .arg(&ssh_dir)
            .output()
            .expect("run get_key");
        assert!(output.status.success(), "get_key failed: {}", String::from_utf8_lossy(&output.stderr));
        std::future::ready(())
    })
    .await;
    table.row(&server, "get_key end to end (process)", &get_key, Some(ratio(get_key.p50(), get.p50())), "≤ 3 × one GET");

    self_service(world, budget, lambda_binary, (floor, design.p50()), table).await;
}

/// Item 7, the self-service path: `get_key request` (a process: proof + invoke + install) through
/// the Lambda binary, against STS GetCallerIdentity + KMS Sign + S3 PUT; and `get_key ensure` with
/// a good certificate against a process that does nothing.
async fn self_service(
    world: &World,
    budget: &Budget,
    lambda_binary: &Path,
    (floor, issuance_floor): (Duration, Duration),
    table: &mut Table,
) {
    let server = format!("{:?}", world.server);
    let sts = world.sts().await;
    let caller_identity =
        latencies(budget.samples, || async { sts.get_caller_identity().send().await.expect("STS GetCallerIdentity") }).await;
    table.row(&server, "STS GetCallerIdentity round trip", &caller_identity, None, "");
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (user_name, group) = (format!("bench-{id}"), format!("bench-sre-{id}"));
    let user = Identity::iam_user(&user_name);
    add_to_iam_group(&user_name, &group);
    let rules = world.path("rules.json");
    let rule = json!({"match": user.arn, "grant": "user", "principals": ["{user}"], "groups": {group: ["deploy"]}});
    std::fs::write(&rules, json!([rule]).to_string()).expect("rules");
    world.init(
        SELF_SERVICE_ENVIRONMENT,
        &["--principals", "deploy", "--allowed-principals", "deploy,bench-*", "--rules", rules.to_str().expect("a path")],
    );
    let audience = default_audience(world, SELF_SERVICE_ENVIRONMENT);
    proven_with_groups(world, budget, &user, &audience, (caller_identity.p50(), issuance_floor), table).await;
    let mut env = world.env();
    env.push(("RUST_LOG", "warn".into()));
    let emulator = LambdaEmulator::start_binary(lambda_binary, &env);
    let ssh_dir = world.path("self-service");
    std::fs::create_dir_all(&ssh_dir).expect("ssh dir");
    let key = keygen(&ssh_dir, "id_ed25519_bench", "ed25519", None, "");
    let get_key = |subcommand: &str, lambda: &str| {
        let mut command = world.command("get_key");
        user.apply(&mut command).env("AWS_ENDPOINT_URL_LAMBDA", lambda).env("AWS_EC2_METADATA_DISABLED", "true");
        command
            .args([subcommand, "-e", SELF_SERVICE_ENVIRONMENT, "--no-agent", "-q", "--force", "--audience", &audience])
            .arg("--key")
            .arg(&key);
        let output = command.output().expect("run get_key");
        assert!(output.status.success(), "get_key {subcommand}: {}", String::from_utf8_lossy(&output.stderr));
        std::future::ready(())
    };
    let endpoint = emulator.endpoint();
    get_key("request", &endpoint).await;
    let request = latencies(budget.samples, || get_key("request", &endpoint)).await;
    let self_floor = caller_identity.p50() + floor;
    table.row(
        &server,
        "self-service: get_key request (proof + invoke + install)",
        &request,
        Some(ratio(request.p50(), self_floor)),
        "≤ 1.25 × (STS + Sign + PUT)",
    );
    drop(emulator);
    // with a good certificate, ensure asks nobody: the endpoints it would use are closed
    let ensure = latencies(budget.samples, || get_key("ensure", "http://127.0.0.1:9")).await;
    let nothing = latencies(budget.samples, || {
        assert!(Command::new("true").status().expect("run true").success());
        std::future::ready(())
    })
    .await;
    let version = latencies(budget.samples, || {
        assert!(world.command("get_key").arg("--version").output().expect("run get_key").status.success());
        std::future::ready(())
    })
    .await;
    table.row(&server, "a process that does nothing (true)", &nothing, None, "");
    table.row(&server, "get_key --version (exec + argument parsing)", &version, Some(ratio(version.p50(), nothing.p50())), "");
    table.row(
        &server,
        "get_key ensure, certificate good (process)",
        &ensure,
        Some(ratio(ensure.p50(), nothing.p50())),
        "≤ 1.5 × a no-op process",
    );
}

/// `bench soak`: `signers` concurrent signers (each its own issuer with its own serial leases, as
/// separate Lambda containers are) × `per_signer` certificates on each S3 server; then every serial
/// must be unique and have exactly one `issued` record, and the audit count must equal the
/// certificate count.
fn soak(signers: usize, per_signer: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    println!("| S3 server | certificates | seconds | certificates/s | distinct serials | issued records | void records | certificate objects | leases (serials leased) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for server in S3Server::ALL {
        let world = World::new(server);
        world.init(ENVIRONMENT, &["--principals", "deploy", "--allow-unproven"]);
        let key = keygen(world.dir.path(), "soak", "ed25519", None, "");
        let public_key = std::fs::read_to_string(pub_path(&key)).expect("key").trim().to_owned();
        runtime.block_on(async {
            let aws = world.aws().await;
            let started = Instant::now();
            let tasks: Vec<_> = (0..signers)
                .map(|signer| {
                    let issuer =
                        aws.issuer(&world.bucket, None).with_serial_block(sign_key::lambda::SERIAL_BLOCK, format!("soak-{signer}"));
                    let request = SignRequest {
                        environment: ENVIRONMENT.into(),
                        username: format!("user{signer}"),
                        public_key: Some(public_key.clone()),
                        reason: "soak".into(),
                        ..Default::default()
                    };
                    tokio::spawn(async move {
                        let mut serials = Vec::with_capacity(per_signer);
                        for n in 0..per_signer {
                            serials.push(issue(&issuer, &request, signer * per_signer + n).await);
                        }
                        serials
                    })
                })
                .collect();
            let (serials, certificates) = gather(tasks).await;
            let seconds = started.elapsed().as_secs_f64();
            let objects = world.objects().await;
            let count = |prefix: &str, suffix: &str| objects.iter().filter(|k| k.starts_with(prefix) && k.ends_with(suffix)).count();
            let issued = count(&format!("audit/{ENVIRONMENT}/2"), "-issued.json");
            let void = count(&format!("audit/{ENVIRONMENT}/2"), "-void.json");
            let stored = count(&format!("certs/{ENVIRONMENT}/"), "-cert.pub");
            let store = S3Store::new(aws.s3.clone(), world.bucket.clone());
            let (leases, _) = sshca_core::serial::lease_records(&store, ENVIRONMENT).await.expect("lease records");
            let leased: u64 = leases.iter().map(|l| l.last + 1 - l.first).sum();
            println!(
                "| {server:?} | {certificates} | {seconds:.1} | {:.0} | {} | {issued} | {void} | {stored} | {} ({leased}) |",
                certificates as f64 / seconds,
                serials.len(),
                leases.len()
            );
            assert_eq!(serials.len(), certificates, "duplicate serials");
            assert_eq!((issued, stored), (certificates, certificates), "audit or certificate count differs from the certificates issued");
            let (books, findings) =
                sshca_core::books::verify(&aws.environment(&world.bucket, None), ENVIRONMENT).await.expect("sshca verify");
            println!(
                "|   sshca verify after the soak: {} issued, {} gaps, {} finding(s) {findings:?} |",
                books.issued,
                books.gaps,
                findings.len()
            );
            assert!(findings.is_empty(), "the books do not balance after the soak: {findings:?}");
        });
    }
}

/// `count` certificates from `concurrency` tasks sharing one issuer: (certificates/s, distinct
/// serials, certificates).
async fn throughput(issuer: &Arc<Issuer>, request: &SignRequest, concurrency: usize, count: usize) -> (f64, usize, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (issuer, request) = (issuer.clone(), request.clone());
            tokio::spawn(async move {
                let mut serials = Vec::new();
                for n in (worker..count).step_by(concurrency) {
                    serials.push(issue(&issuer, &request, n).await);
                }
                serials
            })
        })
        .collect();
    let (serials, issued) = gather(tasks).await;
    (issued as f64 / started.elapsed().as_secs_f64(), serials.len(), issued)
}

/// The serials the signer tasks handed out: the distinct ones, and how many in all.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> (BTreeSet<u64>, usize) {
    let (mut distinct, mut all) = (BTreeSet::new(), 0);
    for task in tasks {
        for serial in task.await.expect("a signer task") {
            all += 1;
            distinct.insert(serial);
        }
    }
    (distinct, all)
}

fn caller(n: usize) -> sshca_core::Caller {
    sshca_core::Caller { request_id: format!("bench-{n}") }
}

async fn issue(issuer: &Issuer, request: &SignRequest, n: usize) -> u64 {
    issuer.issue(request, &caller(n)).await.expect("issue").serial
}

async fn invoke(lambda: &aws_sdk_lambda::Client, payload: &[u8]) {
    let output = lambda
        .invoke()
        .function_name("sign_key")
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send()
        .await
        .expect("invoke sign_key");
    let body: Value = serde_json::from_slice(output.payload().map(|p| p.as_ref()).unwrap_or_default()).expect("JSON answer");
    assert!(body["serial"].is_u64(), "sign_key failed: {body}");
}

/// Item 4: starts the Lambda binary against a stand-in of the Lambda runtime API (so no emulator is
/// timed) and clocks exec → first poll for work (initialised, no network yet) and exec → first
/// response (which includes the cold container's S3 and KMS reads).
fn cold_start(world: &World, lambda_binary: &Path, table: &mut Table) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("runtime API stand-in");
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let user_key = keygen(world.dir.path(), "cold", "ed25519", None, "");
    let event = json!({
        "environment": ENVIRONMENT, "username": "cold", "reason": "cold start",
        "public_key": std::fs::read_to_string(pub_path(&user_key)).expect("key").trim(),
    });
    let started = Instant::now();
    let mut child = Command::new(lambda_binary)
        .envs(world.env())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "sign_key")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("exec the Lambda binary");
    let (mut ready, mut answered, mut peak_rss_kib) = (None, None, 0);
    while answered.is_none() {
        let mut request = server.recv_timeout(Duration::from_secs(30)).expect("runtime API").expect("the function polls within 30 s");
        let url = request.url().to_owned();
        if url.ends_with("/invocation/next") {
            ready.get_or_insert(started.elapsed());
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() + 60_000;
            let headers = [
                ("Lambda-Runtime-Aws-Request-Id", "cold-start-1".to_owned()),
                ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:sign_key".to_owned()),
                ("Content-Type", "application/json".to_owned()),
            ];
            let mut response = tiny_http::Response::from_string(event.to_string());
            for (name, value) in headers {
                response.add_header(tiny_http::Header::from_bytes(name, value).expect("header"));
            }
            request.respond(response).expect("answer /next");
        } else {
            let mut body = String::new();
            std::io::Read::read_to_string(request.as_reader(), &mut body).expect("response body");
            assert!(url.ends_with("/response"), "the function reported an error on {url}: {body}");
            answered = Some(started.elapsed());
            peak_rss_kib = peak_rss(child.id());
            request.respond(tiny_http::Response::empty(202)).expect("acknowledge");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (ready, answered) = (ready.expect("polled"), answered.expect("answered"));
    let size = std::fs::metadata(lambda_binary).expect("binary").len();
    let server = "—";
    table.line(server, "cold start: exec → ready for work (no network)", ms(ready), String::new(), "≤ 30 ms");
    table.line(server, "cold start: exec → first response (SeaweedFS + KMS)", ms(answered), String::new(), "");
    table.line(
        server,
        "Lambda binary peak RSS after first response",
        format!("{:.1} MB", peak_rss_kib as f64 / 1024.0),
        String::new(),
        "≤ 40 MB",
    );
    table.line(server, "Lambda binary size", format!("{:.1} MB", size as f64 / 1_048_576.0), String::new(), "≤ 15 MB");
}

/// VmHWM of a process, in KiB.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Item 6: the certificate sshca signs locally (an Ed25519 CA in memory, as a sealed CA key is used)
/// against `ssh-keygen -s` signing the same certificate, the original tool's approach.
async fn local_signing(world: &World, budget: &Budget, table: &mut Table) {
    let ca_path = keygen(world.dir.path(), "local_ca", "ed25519", None, "");
    let ca = PrivateKey::read_openssh_file(&ca_path).expect("CA key");
    let user_key = keygen(world.dir.path(), "local_user", "ed25519", None, "");
    let subject = ssh_key::PublicKey::read_openssh_file(&pub_path(&user_key)).expect("user key");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let ours = latencies(budget.samples, || {
        let mut builder = Builder::new_with_random_nonce(&mut OsRng, subject.key_data().clone(), now, now + 3600).expect("builder");
        builder.serial(42).and_then(|b| b.key_id("bench#42")).and_then(|b| b.cert_type(CertType::User)).expect("fields");
        builder.valid_principal("deploy").expect("principal");
        builder.extension("permit-pty", "").expect("extension");
        let certificate = builder.sign(&ca).expect("sign");
        std::future::ready(certificate.to_openssh().expect("encode"))
    })
    .await;
    let theirs = latencies(budget.samples, || {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca_path)
            .args(["-I", "bench#42", "-z", "42", "-n", "deploy", "-V", "+1h", "-O", "clear", "-O", "permit-pty"])
            .arg(pub_path(&user_key))
            .stderr(Stdio::null())
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        std::future::ready(())
    })
    .await;
    table.row("—", "sign locally (ssh-key, Ed25519 CA)", &ours, Some(ratio(ours.p50(), theirs.p50())), "vs ssh-keygen -s");
    table.row("—", "ssh-keygen -s (same certificate)", &theirs, None, "");
}

/// A warm in-process issuance for a proven IAM user whose rule maps groups (read once, then from
/// the container's copy): against STS GetCallerIdentity + the issuance's floor.
async fn proven_with_groups(
    world: &World,
    budget: &Budget,
    user: &Identity,
    audience: &str,
    (sts, issuance_floor): (Duration, Duration),
    table: &mut Table,
) {
    let server = format!("{:?}", world.server);
    let aws = world.aws().await;
    let issuer = aws.issuer(&world.bucket, None).with_serial_block(sign_key::lambda::SERIAL_BLOCK, "bench-groups");
    let key = keygen(world.dir.path(), "id_ed25519_groups", "ed25519", None, "");
    let mut request = SignRequest {
        environment: SELF_SERVICE_ENVIRONMENT.into(),
        public_key: Some(std::fs::read_to_string(pub_path(&key)).expect("the key").trim().to_owned()),
        reason: "benchmark".into(),
        ..Default::default()
    };
    // one proof for every sample: it is valid for 5 minutes, and each issuance still asks STS
    let config = sshca_tests::sdk_config(Some(&sshca_tests::kms_endpoint())).await;
    sshca_client::proof::prove_with(&config, user.sdk_credentials(), audience, &mut request).expect("a proof");
    issue(&issuer, &request, 0).await;
    let proven = latencies(budget.samples, || issue(&issuer, &request, 0)).await;
    table.row(
        &server,
        "issue, in-process, proven IAM user with cached groups, vs STS + the issuance's floor",
        &proven,
        Some(ratio(proven.p50(), sts + issuance_floor)),
        "≤ 1.25 × (STS + Sign + 2 concurrent PUTs)",
    );
}

/// Where the time of `operation` (a warm issuance) goes: each of the issuer's steps (the sum of its
/// spans' wall time in one issuance) and what lies outside them, with its share of the whole.
async fn breakdown<F, Fut, T>(server: &str, budget: &Budget, spans: &SpanTimes, mut operation: F, table: &mut Table)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut steps: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let (mut outside, mut wholes) = (Vec::new(), Vec::new());
    spans.start();
    for _ in 0..budget.samples {
        let started = Instant::now();
        operation().await;
        let elapsed = started.elapsed();
        let times = spans.take();
        outside.push(elapsed.saturating_sub(times.values().sum()));
        wholes.push(elapsed);
        for (name, time) in times {
            steps.entry(name).or_default().push(time);
        }
    }
    spans.stop();
    let whole = Samples::of(wholes).p50();
    let share = |part: Duration| format!("{:.0} %", 100.0 * part.as_secs_f64() / whole.as_secs_f64());
    for (name, times) in steps {
        let samples = Samples::of(times);
        table.row(server, &format!("… of which {name}"), &samples, Some(share(samples.p50())), "");
    }
    let outside = Samples::of(outside);
    table.row(server, "… of which outside the issuer's spans", &outside, Some(share(outside.p50())), "");
}

/// Sequential samples of an async operation.
async fn latencies<F, Fut, T>(samples: usize, mut operation: F) -> Samples
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        operation().await;
        times.push(started.elapsed());
    }
    Samples::of(times)
}

struct Samples(Vec<Duration>);

impl Samples {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        Self(times)
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[index]
    }
    fn p50(&self) -> Duration {
        self.percentile(0.50)
    }
    fn p99(&self) -> Duration {
        self.percentile(0.99)
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn ratio(value: Duration, base: Duration) -> String {
    format!("{:.2} ×", value.as_secs_f64() / base.as_secs_f64())
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn row(&mut self, server: &str, what: &str, samples: &Samples, ratio: Option<String>, target: &str) {
        let value = format!("p50 {} · p99 {}", ms(samples.p50()), ms(samples.p99()));
        self.line(server, what, value, ratio.unwrap_or_default(), target);
    }

    fn line(&mut self, server: &str, what: &str, value: String, ratio: String, target: &str) {
        self.rows.push([server.to_owned(), what.to_owned(), value, ratio, target.to_owned()]);
    }

    fn print(&self) {
        println!("| S3 server | measure | value | ratio | target |");
        println!("|---|---|---|---|---|");
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}
