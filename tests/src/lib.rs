//! The test rig of sshca's integration tests: the real S3 servers (LocalStack, SeaweedFS) and
//! KMS (LocalStack) that `scripts/servers.sh start` runs, a real `sshd` per test, the real
//! `sshca` / `get_key` binaries, and OpenSSH's own tools to judge the results.
//!
//! A test that needs a server it cannot reach fails with a message saying how to start it: it
//! never passes by skipping.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

pub mod faults;
pub mod fleet;
pub mod fuzzing;
pub mod iam;
pub mod identities;
pub mod spans;

pub const KMS_ENDPOINT_DEFAULT: &str = "http://127.0.0.1:4566";

/// The S3 implementations storage tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Server {
    LocalStack,
    SeaweedFs,
    /// An old MinIO that ignores conditional creates: sshca must refuse it.
    MinIo,
}

impl S3Server {
    /// The servers sshca runs on; every storage test runs against each.
    pub const ALL: [S3Server; 2] = [S3Server::LocalStack, S3Server::SeaweedFs];

    pub fn endpoint(self) -> String {
        let (var, default) = match self {
            S3Server::LocalStack => ("SSHCA_TEST_LOCALSTACK", "http://127.0.0.1:4566"),
            S3Server::SeaweedFs => ("SSHCA_TEST_SEAWEEDFS", "http://127.0.0.1:8333"),
            S3Server::MinIo => ("SSHCA_TEST_MINIO", "http://127.0.0.1:9100"),
        };
        std::env::var(var).unwrap_or_else(|_| default.to_owned())
    }

    /// The access key and secret the server accepts (LocalStack's KMS and STS take any).
    pub fn credentials(self) -> (String, String) {
        match self {
            S3Server::MinIo => {
                let pair = std::env::var("SSHCA_TEST_MINIO_CREDENTIALS").unwrap_or_else(|_| "minioadmin:minioadmin123".into());
                let (key, secret) = pair.split_once(':').expect("SSHCA_TEST_MINIO_CREDENTIALS is KEY:SECRET");
                (key.to_owned(), secret.to_owned())
            }
            _ => ("test".to_owned(), "test".to_owned()),
        }
    }
}

pub fn kms_endpoint() -> String {
    std::env::var("SSHCA_TEST_LOCALSTACK").unwrap_or_else(|_| KMS_ENDPOINT_DEFAULT.to_owned())
}

/// moto's identity store (`scripts/servers.sh`): IAM Identity Center's users and groups.
pub fn identity_store_endpoint() -> String {
    std::env::var("SSHCA_TEST_IDENTITYSTORE").unwrap_or_else(|_| "http://127.0.0.1:5050".to_owned())
}

/// Panics unless something listens at `endpoint` (an `http://host:port` URL).
pub fn require_server(endpoint: &str) {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let address: SocketAddr = address.parse().unwrap_or_else(|_| panic!("bad endpoint {endpoint}"));
    if TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_err() {
        panic!("no server at {endpoint}: start the test servers with `scripts/servers.sh start` (scripts/test.sh does it for you)");
    }
}

/// Path of a binary of this workspace, built next to the running test (`target/<profile>/deps/`)
/// or binary (`target/<profile>/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let mut dir = exe.parent().expect("target/<profile>");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/<profile>");
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first (scripts/test.sh does)", path.display());
    path
}

/// One test's world: a fresh bucket name on one S3 server, KMS, and a scratch directory.
pub struct World {
    pub server: S3Server,
    /// Where this world's S3 server answers (`server`'s shared instance unless a test runs its own).
    pub s3_endpoint: String,
    pub bucket: String,
    pub dir: TempDir,
    /// Where `command` finds `sshca` and `get_key`: this build's (`None`) or an installed set.
    pub programs: Option<PathBuf>,
}

impl World {
    pub fn new(server: S3Server) -> Self {
        Self::on(server, &server.endpoint())
    }

    /// A world on an S3 server of `server`'s kind that the test runs itself at `s3_endpoint`.
    pub fn on(server: S3Server, s3_endpoint: &str) -> Self {
        require_server(s3_endpoint);
        require_server(&kms_endpoint());
        let bucket = format!("sshca-test-{}", uuid::Uuid::new_v4().simple());
        Self { server, s3_endpoint: s3_endpoint.to_owned(), bucket, dir: tempfile::tempdir().expect("temp dir"), programs: None }
    }

    /// The AWS environment the binaries run with: LocalStack's KMS, this world's S3 server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let (access_key, secret_key) = self.server.credentials();
        vec![
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL_KMS", kms_endpoint()),
            ("AWS_ENDPOINT_URL_STS", kms_endpoint()),
            ("AWS_ENDPOINT_URL_IAM", kms_endpoint()),
            ("AWS_ENDPOINT_URL_EC2", kms_endpoint()),
            ("AWS_ENDPOINT_URL_SNS", kms_endpoint()),
            ("AWS_ENDPOINT_URL_IDENTITYSTORE", identity_store_endpoint()),
            ("AWS_ENDPOINT_URL_S3", self.s3_endpoint.clone()),
            ("SSHCA_BUCKET", self.bucket.clone()),
        ]
    }

    /// This world with the `sshca` and `get_key` installed in `dir` (e.g. `/usr/bin`, by a package).
    pub fn with_programs_in(self, dir: &Path) -> Self {
        Self { programs: Some(dir.to_owned()), ..self }
    }

    /// A `sshca`/`get_key` command with this world's environment and nothing from the caller's AWS setup.
    pub fn command(&self, binary: &str) -> Command {
        let program = self.programs.as_ref().map_or_else(|| bin(binary), |dir| dir.join(binary));
        let mut command = Command::new(program);
        for var in ["AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "SSH_AUTH_SOCK"] {
            command.env_remove(var);
        }
        command.envs(self.env()).env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        command
    }

    /// Runs `sshca ARGS…` and returns its output.
    pub fn sshca(&self, args: &[&str]) -> Output {
        self.command("sshca").args(args).output().expect("run sshca")
    }

    /// Runs `sshca ARGS…`, panicking with its stderr unless it succeeds; returns its stdout.
    pub fn sshca_ok(&self, args: &[&str]) -> String {
        let output = self.sshca(args);
        assert!(output.status.success(), "sshca {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// `sshca init ENV --create-bucket --create-keys …` with the given extra flags; returns the
    /// user CA's public key line.
    pub fn init(&self, environment: &str, extra: &[&str]) -> String {
        let mut args = vec!["init", environment, "--create-bucket", "--create-keys"];
        args.extend_from_slice(extra);
        let out = self.sshca_ok(&args);
        out.lines().next().expect("init prints the user CA key").to_owned()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// AWS SDK configuration for direct checks of what landed in the bucket.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(Some(&self.s3_endpoint)).await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let (access_key, secret_key) = self.server.credentials();
        let credentials = aws_sdk_s3::config::Credentials::new(access_key, secret_key, None, None, "sshca-tests");
        let config =
            aws_sdk_s3::config::Builder::from(&self.sdk_config().await).credentials_provider(credentials).force_path_style(true).build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub async fn kms(&self) -> aws_sdk_kms::Client {
        aws_sdk_kms::Client::new(&sdk_config(Some(&kms_endpoint())).await)
    }

    /// LocalStack's STS (and IAM) answer at the KMS endpoint.
    pub async fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&sdk_config(Some(&kms_endpoint())).await)
    }

    /// LocalStack's IAM.
    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&sdk_config(Some(&kms_endpoint())).await)
    }

    /// moto's identity store.
    pub async fn identity_store(&self) -> aws_sdk_identitystore::Client {
        require_server(&identity_store_endpoint());
        aws_sdk_identitystore::Client::new(&sdk_config(Some(&identity_store_endpoint())).await)
    }

    /// sshca's clients for this world, as a process here would build them.
    pub async fn aws(&self) -> sshca_aws::Aws {
        let config = sdk_config(Some(&kms_endpoint())).await;
        sshca_aws::Aws {
            ec2: sshca_aws::ec2::Ec2::new(config.clone()),
            config,
            s3: self.s3().await,
            kms: self.kms().await,
            sts: self.sts().await,
            iam: self.iam().await,
            identity_store: self.identity_store().await,
        }
    }

    /// Every object key in the bucket (empty when the bucket does not exist).
    pub async fn objects(&self) -> Vec<String> {
        let s3 = self.s3().await;
        let mut keys = Vec::new();
        let mut pages = s3.list_objects_v2().bucket(&self.bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned))),
                Err(_) => break,
            }
        }
        keys
    }
}

/// `body` with a proof of identity made with the test credentials (LocalStack's account root) for
/// `audience`, as `sshca sign` attaches one; a body that is not a request is returned as it is.
pub async fn with_proof(body: &[u8], audience: &str) -> Vec<u8> {
    let Ok(mut request) = serde_json::from_slice::<sshca_core::SignRequest>(body) else {
        return body.to_vec();
    };
    sshca_client::prove(&sdk_config(None).await, audience, &mut request).await.expect("a proof is made");
    serde_json::to_vec(&request).expect("a request serializes")
}

/// The audience `sshca init` gives `environment` in `world`'s bucket.
pub fn default_audience(world: &World, environment: &str) -> String {
    format!("sshca:{}:{environment}", world.bucket)
}

/// sshca's AWS configuration with the test servers' credentials (`test`/`test`, us-east-1), for
/// every service at `endpoint` when given.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let loader = sshca_aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "sshca-tests"));
    match endpoint {
        Some(endpoint) => loader.endpoint_url(endpoint).load().await,
        None => loader.load().await,
    }
}

/// Creates a key pair with `ssh-keygen` (`kind`: ed25519, ecdsa, rsa); returns the private key path.
pub fn keygen(dir: &Path, name: &str, kind: &str, bits: Option<u32>, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut command = Command::new("ssh-keygen");
    command.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"]).arg(&path);
    if let Some(bits) = bits {
        command.args(["-b", &bits.to_string()]);
    }
    let output = command.output().expect("ssh-keygen is installed (scripts/servers.sh installs openssh-client)");
    assert!(output.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&output.stderr));
    path
}

pub fn pub_path(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pub", key.display()))
}

pub fn cert_path(key: &Path) -> PathBuf {
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

/// `ssh-keygen -L -f CERT`: OpenSSH's own reading of a certificate (times in UTC).
pub fn ssh_keygen_list(cert: &Path) -> String {
    let output = Command::new("ssh-keygen").env("TZ", "UTC").arg("-L").arg("-f").arg(cert).output().expect("ssh-keygen");
    assert!(output.status.success(), "ssh-keygen -L refused {}: {}", cert.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The name of the account the tests log in as (the current user).
pub fn current_user() -> String {
    let output = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

/// A real OpenSSH server on a loopback port, trusting the given user CA keys; stopped on drop.
pub struct Sshd {
    pub port: u16,
    pub dir: TempDir,
    child: Child,
}

impl Sshd {
    /// `principals`: what `AuthorizedPrincipalsFile` lists for the current user.
    pub fn start(trusted_ca_keys: &str, principals: &[&str], extra_config: &str) -> Self {
        Self::launch(trusted_ca_keys, principals, None, extra_config)
    }

    /// Like [`Sshd::start`], presenting `host_key` with its certificate `<host_key>-cert.pub`.
    pub fn start_with_host_certificate(trusted_ca_keys: &str, principals: &[&str], host_key: &Path) -> Self {
        Self::launch(trusted_ca_keys, principals, Some(host_key), "")
    }

    fn launch(trusted_ca_keys: &str, principals: &[&str], host_key: Option<&Path>, extra_config: &str) -> Self {
        let host_certificate = host_key.map(|key| format!("HostCertificate {}\n", cert_path(key).display())).unwrap_or_default();
        let policy = format!(
            "{host_certificate}TrustedUserCAKeys {{dir}}/trusted_ca.pub\nAuthorizedPrincipalsFile {{dir}}/principals/%u\n\
             AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n{extra_config}\n"
        );
        Self::with_config(trusted_ca_keys, principals, host_key, &policy)
    }

    /// A server whose configuration after `Port`, `ListenAddress`, `HostKey` and `PidFile` is
    /// exactly `config` (`{dir}` is the server's directory, which holds `trusted_ca.pub` and
    /// `principals/<user>`): for configurations that leave out what [`Sshd::start`] sets. It logs
    /// at `LogLevel VERBOSE` (every login's key, certificate and CA) to [`Sshd::log_path`].
    pub fn with_config(trusted_ca_keys: &str, principals: &[&str], host_key: Option<&Path>, config: &str) -> Self {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(sshd.exists(), "/usr/sbin/sshd is missing: install openssh-server (scripts/servers.sh start does)");
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let host_key = match host_key {
            Some(key) => key.to_owned(),
            None => keygen(dir.path(), "host_ed25519", "ed25519", None, ""),
        };
        std::fs::write(dir.path().join("trusted_ca.pub"), trusted_ca_keys).expect("write CA keys");
        std::fs::create_dir(dir.path().join("principals")).expect("principals dir");
        std::fs::write(dir.path().join("principals").join(current_user()), principals.join("\n") + "\n").expect("write principals");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {d}/sshd.pid\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n{}",
            config.replace("{dir}", &dir.path().display().to_string()),
            host_key = host_key.display(),
            d = dir.path().display(),
        );
        let config_path = dir.path().join("sshd_config");
        std::fs::write(&config_path, config).expect("write sshd_config");
        // -e: every sshd process logs to standard error, which is the log file (with -E, the
        // per-connection processes log to syslog instead)
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("create the sshd log");
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { port, dir, child };
        sshd.wait_until_listening();
        sshd
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("sshd did not listen on port {} in 10 s: {}", self.port, self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Base `ssh` command to this server as the current user: no prompts, no host key checks, no
    /// configuration or agent of the caller's.
    pub fn ssh(&self) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// `ssh` to this server that checks the host key against `known_hosts` only (no prompts), as
    /// if the server were called `host_name`.
    pub fn ssh_checking_host(&self, known_hosts: &Path, host_name: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", &format!("HostKeyAlias={host_name}"), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// [`Sshd::ssh_checking_host`] as `host_name`, logged in with `key` as the current user,
    /// running `echo host-trusted`.
    pub fn echo_checking_host(&self, known_hosts: &Path, host_name: &str, key: &Path) -> std::process::Output {
        self.ssh_checking_host(known_hosts, host_name)
            .arg("-i")
            .arg(key)
            .arg(format!("{}@127.0.0.1", current_user()))
            .arg("echo host-trusted")
            .output()
            .expect("run ssh")
    }

    /// Logs in with `key` (OpenSSH picks up `<key>-cert.pub` itself) and runs `echo`; true when
    /// the command ran.
    pub fn login_with(&self, key: &Path) -> bool {
        let output = self
            .ssh()
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i"])
            .arg(key)
            .arg(format!("{}@127.0.0.1", current_user()))
            .arg("echo sshca-login-ok")
            .output()
            .expect("run ssh");
        String::from_utf8_lossy(&output.stdout).contains("sshca-login-ok")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A real ssh-agent on a socket of its own; stopped on drop.
pub struct Agent {
    pub socket: PathBuf,
    child: Child,
}

impl Agent {
    pub fn start(dir: &Path) -> Self {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent is installed (openssh-client)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not create its socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { socket, child }
    }

    /// `ssh-add -l`: what the agent holds.
    pub fn list(&self) -> String {
        let output = Command::new("ssh-add").arg("-l").env("SSH_AUTH_SOCK", &self.socket).output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool the test servers script installs, named by the variable `scripts/servers.sh env` sets.
pub fn tool(var: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var} is not set: run `eval \"$(scripts/servers.sh env)\"` after `scripts/servers.sh start` (scripts/test.sh does both)")
    });
    assert!(path.exists(), "{} ({var}) is missing: run `scripts/servers.sh start`", path.display());
    path
}

/// The workspace root (where `cargo lambda` finds the function's manifest).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_owned()
}

/// The real `sign_key` binary behind cargo-lambda's emulator of the Lambda Invoke API; stopped on drop.
pub struct LambdaEmulator {
    pub port: u16,
    emulator: Child,
    function: Child,
    logs: TempDir,
}

impl LambdaEmulator {
    /// Starts the emulator and the function with `env` (bucket, AWS endpoints…).
    pub fn start(env: &[(&'static str, String)]) -> Self {
        Self::start_binary(&bin("sign_key"), env)
    }

    /// Like [`LambdaEmulator::start`] with another build of the function (e.g. the release one).
    pub fn start_binary(binary: &Path, env: &[(&'static str, String)]) -> Self {
        let port = free_port();
        let emulator = Command::new(tool("SSHCA_CARGO_LAMBDA"))
            .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs = tempfile::tempdir().expect("temp dir");
        let log = |name: &str| std::fs::File::create(logs.path().join(name)).expect("create a log file");
        let function = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/sign_key"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "sign_key")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .spawn()
            .expect("start the sign_key function");
        LambdaEmulator { port, emulator, function, logs }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Lambda client of this emulator's Invoke API.
    pub async fn client(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&sdk_config(Some(&self.endpoint())).await)
    }

    /// Everything the function wrote so far: stdout (metrics) then stderr (logs), as CloudWatch
    /// would keep it.
    pub fn logs(&self) -> String {
        ["stdout", "stderr"].iter().map(|name| std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default()).collect()
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.emulator] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Downloads a presigned URL with the same client `get_key` uses.
pub fn download(url: &str) -> Result<Vec<u8>, get_key::download::DownloadError> {
    get_key::download::fetch(url)
}

/// Runs each named `fn(S3Server)` as two tests, `NAME::localstack` and `NAME::seaweedfs`:
/// every storage test runs against both S3 implementations.
#[macro_export]
macro_rules! on_both_s3_servers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn localstack() {
                super::$name($crate::S3Server::LocalStack);
            }
            #[test]
            fn seaweedfs() {
                super::$name($crate::S3Server::SeaweedFs);
            }
        }
    )*};
}
